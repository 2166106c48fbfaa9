"""HTTP templates, the agent's other task type (spec section 6.7), as Argo's
`executeHTTPTemplate` runs them:

- the request: `http.method` (default GET), `url`, `body` (or `bodyFrom.bytes`,
  base64 in JSON as Go marshals `[]byte`), `headers[]` with a `value` or a
  `valueFrom.secretKeyRef` (read from the workflow's namespace, `headers.py`); a header
  named `Host` (any case) sets the request's host;
- `timeoutSeconds` bounds the whole call; `insecureSkipVerify` turns TLS checks off;
- success: `successCondition` (an expr-lang expression, `condition.py`) when given,
  else a 2xx status ("received non-2xx response code: <code>"); a false condition is
  Failed "successCondition '<expr>' evaluated false", an error in it Failed with the
  error; a transport error Failed with its text. No retries, never a requeue;
- `outputs.result` is the response body.

One difference from Argo, on purpose: a condition that does not compile (bad syntax,
an unknown name) fails the node before the request is sent, not after: the node could
never succeed, and the request may have effects.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import requests

from webhook.dispatch.executor import Execution, WorkflowMeta
from webhook.dispatch.rpc import NodeResult
from webhook.expression import ExpressionSyntaxError
from webhook.expression.success_condition import (
    check_condition,
    condition_holds,
    header_map,
    request_scope,
)
from webhook.httptemplate.headers import (
    HeaderError,
    SecretReader,
    request_headers,
    resolve_headers,
)


def _error(message: str) -> Execution:
    return Execution(NodeResult(phase="Error", message=message))


def _failed(message: str, outputs: dict[str, Any] | None = None) -> Execution:
    return Execution(NodeResult(phase="Failed", message=message, outputs=outputs))


class HTTPTemplateRunner:
    """Runs `template.http` (spec 6.7) with `requests`; `secrets` reads Secrets for
    `valueFrom.secretKeyRef` headers (None: such a header fails its node)."""

    def __init__(
        self, session: requests.Session | None = None, secrets: SecretReader | None = None
    ) -> None:
        self._session = session or requests.Session()
        self._secrets = secrets

    def execute(self, workflow: WorkflowMeta, template: Mapping[str, Any]) -> Execution:
        spec = template.get("http")
        if not isinstance(spec, Mapping):
            return _error("error processing task: http: expected an object")
        url = spec.get("url")
        if not isinstance(url, str) or not url:
            return _error("error processing task: http.url is required")
        condition = spec.get("successCondition")
        if condition is not None and not isinstance(condition, str):
            return _failed("successCondition must be a string")
        if condition:
            try:
                check_condition(condition)
            except ExpressionSyntaxError as exc:
                return _failed(f"invalid successCondition '{condition}': {exc}")
        body: bytes | None = None
        body_bytes: bytes | None = None
        if spec.get("body"):
            body = str(spec["body"]).encode()
        else:
            raw = (spec.get("bodyFrom") or {}).get("bytes")
            if raw:
                try:
                    body = body_bytes = base64.b64decode(str(raw), validate=True)
                except (binascii.Error, ValueError):
                    return _error("error processing task: http.bodyFrom.bytes is not base64")
        try:
            headers = resolve_headers(spec, workflow.namespace, self._secrets)
        except HeaderError as exc:
            return _failed(str(exc))
        timeout = spec.get("timeoutSeconds")
        try:
            response = self._session.request(
                str(spec.get("method") or "GET"),
                url,
                headers=request_headers(headers),
                data=body,
                timeout=float(timeout) if timeout else None,
                verify=not spec.get("insecureSkipVerify"),
            )
        except requests.exceptions.InvalidHeader:
            # its text quotes the header value, which may come from a Secret
            return _failed("a request header has an invalid name or value")
        except requests.RequestException as exc:
            return _failed(str(exc))
        text = response.content.decode("utf-8", "replace")  # Go: string(bodyBytes)
        outputs = {"result": text}
        if condition:
            success, message = condition_holds(
                condition,
                request_scope(spec, body_bytes),
                response.status_code,
                text,
                header_map(_response_header_pairs(response), canonical=True),
            )
            if success:
                return Execution(NodeResult(phase="Succeeded", outputs=outputs))
            if message.startswith("successCondition '"):
                return _failed(message, outputs)
            return _failed(message)  # an evaluation error: Argo returns no outputs
        if not 200 <= response.status_code < 300:
            return _failed(f"received non-2xx response code: {response.status_code}", outputs)
        return Execution(NodeResult(phase="Succeeded", outputs=outputs))


def _response_header_pairs(response: requests.Response) -> list[tuple[str, str]]:
    """Every (name, value) the server sent, repeated headers included (urllib3 keeps
    them apart; `response.headers` would have joined them)."""
    raw = getattr(response.raw, "headers", None)
    if raw is not None and hasattr(raw, "getlist"):
        return [(name, value) for name in raw for value in raw.getlist(name)]
    return list(response.headers.items())
