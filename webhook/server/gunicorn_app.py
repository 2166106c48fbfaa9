"""gunicorn in-process: `WebhookApplication` (a `BaseApplication`) and JSON logging."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from webhook.server import gunicorn_conf, logs
from webhook.server.app import status_body


class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, with JSON lines (same shape as the app's) on its handlers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = logs.JsonFormatter()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(formatter)
        logs.configure(cfg.loglevel)


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Replaces gunicorn's HTML error page (bad request line, headers too large, ...)."""
    body = status_body(status_int, mesg or reason, reason.replace(" ", ""))
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


def settings_from_module(module: ModuleType) -> dict[str, Any]:
    """The module's names that are gunicorn settings (as gunicorn reads a config file)."""
    return {k: v for k, v in vars(module).items() if not k.startswith("_")}


class WebhookApplication(BaseApplication):  # type: ignore[misc]
    """Runs a WSGI app factory under gunicorn's arbiter, configured from a dict."""

    def __init__(self, factory: Callable[[], Any], options: Mapping[str, Any]) -> None:
        self.factory = factory
        self.options = {**settings_from_module(gunicorn_conf), **options}
        super().__init__()

    def load_config(self) -> None:
        known = self.cfg.settings
        for key, value in self.options.items():
            if key in known and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker after fork: gunicorn's own error responses become JSON too.
        gunicorn_util.write_error = _write_json_error
        logging.getLogger("webhook.server").debug("worker loading the app")
        return self.factory()
