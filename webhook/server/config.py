"""What `create_app` needs; `plugin-guard serve` fills it from its options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

# The API server's own request limit is 3 MiB (1.5 MiB object + review envelope + old object).
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024
DEFAULT_RELOAD_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of one webhook app (one per gunicorn worker). The objects built from
    them are `webhook.server.services.Services`."""

    policies_dir: Path | None = None
    plugins_dir: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    reload_interval: float = DEFAULT_RELOAD_INTERVAL
    cert_file: Path | None = None
    key_file: Path | None = None
    review_log: bool = True
    log_fd: int | None = None
    fast_path: bool = True
    # serve --plugins-from-cluster: a `webhook.kube.ClusterConfig` (loaded in the master,
    # so a broken kubeconfig fails before any worker starts) and the namespaces to
    # watch (empty: all).
    plugins_cluster: Any = None
    plugins_namespaces: tuple[str, ...] = ()
    # serve --tls-secret-name: the folder whose status.json the certificate controller (in
    # the master) writes; /readyz is 503 until it says a certificate is in place.
    tls_status_dir: Path | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ServerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown ServerConfig fields: {', '.join(unknown)}")
        return replace(cls(), **dict(values))
