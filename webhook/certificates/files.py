"""The certificate files the server's TLS reloader reads, and the status workers report.

The controller (in the gunicorn master) writes `tls.key`, `tls.crt` and `ca.crt` into a
folder by temp file + rename, key first: `webhook.server.tls.CertificateReloader` sees
the change with its stat per connection and builds a new context; if it catches the new
key with the old certificate, that pair does not load and it keeps the last good context
until the certificate follows a moment later. Workers learn everything else from
`status.json` (written the same way), which `/readyz` reads: whether a certificate from
the Secret is in place, and what went wrong last.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook.certificates.issuing import issue_serving, new_ca
from webhook.certificates.material import CA_CRT, TLS_CRT, TLS_KEY, Material

STATUS = "status.json"
PLACEHOLDER_VALIDITY = dt.timedelta(days=1)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Temp file + rename in the same folder: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    """What `/readyz` says about the certificate."""

    serving: bool  # a certificate from the Secret is in place
    problem: str | None = None
    secret: str = ""
    not_after: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serving": self.serving,
            "problem": self.problem,
            "secret": self.secret,
            "notAfter": self.not_after,
        }


class ServingFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cert = folder / TLS_CRT
        self.key = folder / TLS_KEY
        self.ca = folder / CA_CRT
        self.status_path = folder / STATUS

    def write(self, material: Material) -> bool:
        """Put the Secret's serving pair and bundle in place; True when a file changed."""
        if material.serving is None:
            raise ValueError("no serving certificate to write")
        wanted = [
            (self.key, material.serving.key_pem, 0o600),
            (self.cert, material.serving.cert_pem, 0o644),
            (self.ca, material.bundle_pem(), 0o644),
        ]
        changed = False
        for path, data, mode in wanted:
            if _read(path) != data:
                write_atomic(path, data, mode)
                changed = True
        return changed

    def write_placeholder(self, names: Sequence[str], now: dt.datetime) -> None:
        """A throwaway self-signed pair so the server can listen (and answer /healthz and
        a 503 /readyz) before the Secret can be read. Nothing trusts it."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca = new_ca(now=now, validity=PLACEHOLDER_VALIDITY, common_name="placeholder (not trusted)")
        pair = issue_serving(ca, list(names), now=now, validity=PLACEHOLDER_VALIDITY)
        write_atomic(self.key, pair.key_pem)
        write_atomic(self.cert, pair.cert_pem, 0o644)

    def set_status(self, status: CertificateStatus) -> None:
        data = json.dumps(status.to_json(), sort_keys=True).encode()
        if _read(self.status_path) != data:
            write_atomic(self.status_path, data, 0o644)

    def status(self) -> CertificateStatus:
        """The last status the controller wrote (workers call this for /readyz)."""
        raw = _read(self.status_path)
        if raw is None:
            return CertificateStatus(
                serving=False, problem="the certificate controller has not started"
            )
        with contextlib.suppress(ValueError):
            data = json.loads(raw)
            if isinstance(data, dict):
                return CertificateStatus(
                    serving=bool(data.get("serving")),
                    problem=data.get("problem") or None,
                    secret=str(data.get("secret") or ""),
                    not_after=data.get("notAfter") or None,
                )
        return CertificateStatus(serving=False, problem=f"{self.status_path} is not readable")
