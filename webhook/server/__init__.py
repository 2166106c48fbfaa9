"""The HTTPS admission webhook: Flask app factory, gunicorn runner, TLS, metrics.

`create_app` and `ServerConfig` are imported lazily, so `plugin-guard` subcommands that
do not serve (and `serve` itself, before it configures prometheus_client's
multiprocess mode) do not import Flask and prometheus_client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook.server.app import create_app
    from webhook.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from webhook.server.app import create_app

        return create_app
    if name == "ServerConfig":
        from webhook.server.config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
