"""Request headers of an HTTP template: `value`, or `valueFrom.secretKeyRef` read from
the workflow's namespace (Argo: `util.GetSecrets` with the agent's service account,
which needs `get` on `secrets` there).

A secret's value goes into the request and nowhere else: not into a message, a log
line, a node or the condition's `request.headers` (Argo's `ToHeader` leaves those
headers out too). Errors name the header, the Secret and the key, never the value.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from webhook.kube import KubeApiError

SECRET_READ_ATTEMPTS = 3  # Argo retries transient errors (retry.DefaultRetry) too
SECRET_RETRY_DELAY = 0.2  # seconds, doubled each attempt


class SecretReader(Protocol):
    """What is needed of the cluster: `webhook.kube`'s ResourceClient for kinds.SECRET."""

    def get(self, name: str, *, namespace: str) -> Mapping[str, Any]: ...


class HeaderError(Exception):
    """A header that cannot be sent; the message names no secret value."""


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: bytes
    from_secret: bool = False


def resolve_headers(
    spec: Mapping[str, Any],
    namespace: str,
    secrets: SecretReader | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Header]:
    """Every header of `spec.headers`, in order, with secret values read."""
    resolved: list[Header] = []
    for index, header in enumerate(spec.get("headers") or []):
        if not isinstance(header, Mapping) or not header.get("name"):
            continue
        name = str(header["name"])
        value_from = header.get("valueFrom")
        ref = value_from.get("secretKeyRef") if isinstance(value_from, Mapping) else None
        if not isinstance(ref, Mapping):
            resolved.append(Header(name, str(header.get("value") or "").encode()))
            continue
        where = f"http.headers[{index}] ({name})"
        value = _secret_value(ref, namespace, secrets, where, sleep)
        _check_value(value, where, ref)
        resolved.append(Header(name, value, from_secret=True))
    return resolved


def _secret_value(
    ref: Mapping[str, Any],
    namespace: str,
    secrets: SecretReader | None,
    where: str,
    sleep: Callable[[float], None],
) -> bytes:
    secret_name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
    if not secret_name or not key:
        raise HeaderError(f"{where}: valueFrom.secretKeyRef needs a name and a key")
    label = f'secret "{secret_name}" key "{key}" in namespace "{namespace}"'
    if secrets is None:
        raise HeaderError(
            f"{where}: cannot read {label}: this agent has no cluster connection for secrets"
        )
    delay = SECRET_RETRY_DELAY
    for attempt in range(SECRET_READ_ATTEMPTS):
        try:
            secret = secrets.get(secret_name, namespace=namespace)
            break
        except KubeApiError as exc:
            if exc.code == 404:
                raise HeaderError(
                    f'{where}: secret "{secret_name}" not found in namespace "{namespace}"'
                ) from None
            if exc.code == 403:
                raise HeaderError(
                    f"{where}: cannot read {label}: forbidden (the agent's service account "
                    'needs "get" on secrets in that namespace)'
                ) from None
            if not exc.transient or attempt == SECRET_READ_ATTEMPTS - 1:
                raise HeaderError(f"{where}: cannot read {label}: {exc}") from None
            sleep(delay)
            delay *= 2
    data = secret.get("data") or {}
    if key not in data:
        # Argo's words: secret '<name>' does not have the key '<key>'
        raise HeaderError(f"{where}: secret '{secret_name}' does not have the key '{key}'")
    try:
        return base64.b64decode(str(data[key]), validate=True)
    except (binascii.Error, ValueError):
        raise HeaderError(f"{where}: {label} is not valid base64 in the API's answer") from None


def _check_value(value: bytes, where: str, ref: Mapping[str, Any]) -> None:
    """Go's http client refuses CR, LF and NUL in a header value; so does this, without
    showing the value. A trailing newline is the usual cause (`echo` without `-n`)."""
    if not any(c in value for c in (b"\r", b"\n", b"\0")):
        return
    hint = (
        " (it ends with a newline: create the Secret with --from-literal or `echo -n`)"
        if value.rstrip(b"\r\n") and value.endswith((b"\n", b"\r"))
        else ""
    )
    raise HeaderError(
        f'{where}: the value of secret "{ref.get("name")}" key "{ref.get("key")}" contains a '
        f"CR, LF or NUL character, which no HTTP header may hold{hint}"
    )


def request_headers(headers: list[Header]) -> dict[str, bytes]:
    """Headers as `requests` takes them. Repeated names are joined with ", " (RFC 9110
    5.3: the same meaning as Go's `Header.Add` sending them as separate lines); `Host`
    sets the request's host, the last one written wins (Go: `request.Host = value`)."""
    merged: dict[str, bytes] = {}
    by_lower: dict[str, str] = {}
    for header in headers:
        existing = by_lower.setdefault(header.name.lower(), header.name)
        if existing in merged and header.name.lower() != "host":  # Host: the last one wins
            merged[existing] = merged[existing] + b", " + header.value
        else:
            merged[existing] = header.value
    return merged
