"""TLS for gunicorn: 1.2 or newer, and certificate files re-read when they change.

gunicorn's gthread worker calls the `ssl_context` hook for every accepted connection.
Its default factory re-reads the files each time (not a documented contract,
benoitc/gunicorn#3182), which costs a key parse per connection and fails a handshake
if it catches a rotation half-written. `CertificateReloader` instead keeps one context
per worker and rebuilds it when a `stat` of the files shows a change (mounted Secrets
and cert-manager rotate by replacing files or an atomic symlink; no inotify events are
guaranteed, so a stat per new connection is the reliable check). If the new files do
not load (a key that does not match its certificate yet), the last good context is
kept and the next connection tries again.

`serve` builds one `CertificateReloader` in the gunicorn master and hands it to gunicorn
(the `ssl_context` setting) and to each worker's app (`certificate_probe`, for `/readyz`);
after the fork each worker has its own copy.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webhook.server.readiness import READY, Condition, Probe

log = logging.getLogger("webhook.server.tls")

Signature = tuple[tuple[int, int, int, int], ...]


def _signature(paths: tuple[str, ...]) -> Signature:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0, 0))
        else:
            out.append((st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size))
    return tuple(out)


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 minimum (the API server speaks 1.2 and 1.3), no renegotiation."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


class CertificateReloader:
    """The gunicorn `ssl_context(conf, factory)` hook, with a per-process cache."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: Signature | None = None
        self._context: ssl.SSLContext | None = None
        self.reloads = 0
        self.last_error: str | None = None

    def __call__(self, conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        paths = tuple(p for p in (conf.certfile, conf.keyfile, conf.ca_certs) if p)
        signature = _signature(paths)
        context = self._context
        if context is not None and signature == self._signature:
            return context
        with self._lock:
            if self._context is not None and signature == self._signature:
                return self._context
            try:
                fresh = harden(factory())
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self._context is None:
                    raise
                log.warning(
                    "certificate files changed but do not load yet; keeping the previous ones",
                    extra={"error": self.last_error},
                )
                return self._context
            if self._context is not None:
                self.reloads += 1
                log.info("certificate reloaded", extra={"certfile": conf.certfile})
            self._context = fresh
            self._signature = signature
            self.last_error = None
            return fresh


def certificate_probe(
    cert_file: Path, key_file: Path | None, reloader: CertificateReloader | None
) -> Probe:
    """The readiness probe of served certificate files: present, and (when a reloader
    serves them) the last change loaded. A problem degrades; the last good context
    keeps serving."""

    def probe() -> Condition:
        if not (cert_file.is_file() and (key_file or cert_file).is_file()):
            return Condition(problem=f"{cert_file} or its key is missing")
        if reloader is not None and reloader.last_error:
            return Condition(problem=reloader.last_error)
        return READY

    return probe
