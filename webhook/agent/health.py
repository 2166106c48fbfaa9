"""The agent's probe and metrics listener (`plugin-guard agent --metrics-port`).

Plain HTTP on a port of its own (kubelet probes and Prometheus scrapes from inside the
cluster; it serves no secrets), every answer JSON or Prometheus text:

- `GET /healthz`: 200 while the agent is alive (the watches of a holder and the Lease
  renewals keep working), else 503; a liveness probe restarts a wedged replica;
- `GET /readyz`: 200 while holding the Lease or standing by, 503 while starting or
  stepping down (draining after losing the Lease);
- `GET /metrics`: `AgentMetrics` in the Prometheus text format.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Metrics(Protocol):
    """What the listener serves on /metrics (`AgentMetrics`, `AuditMetrics`)."""

    def render(self) -> tuple[bytes, str]: ...


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe's answer: ok or not, the state in one word, and the reasons."""

    ok: bool
    state: str
    problems: tuple[str, ...] = field(default=())

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok" if self.ok else "unavailable", "state": self.state}
        if self.problems:
            body["problems"] = list(self.problems)
        return body


class HealthServer:
    """Serves the three routes on `host:port` in a daemon thread until `stop()`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], Probe],
        ready: Callable[[], Probe],
        metrics: Metrics,
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/healthz": lambda: _probe(health()),
            "/readyz": lambda: _probe(ready()),
            "/metrics": lambda: (200, *metrics.render()),
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would flood the logs

            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self._send(404, _json({"error": f"no route {self.path}"}), _JSON)
                    return
                try:
                    self._send(*route())
                except Exception:
                    log.exception("health listener failed", extra={"path": self.path})
                    self._send(500, _json({"error": "internal error"}), _JSON)

            def do_POST(self) -> None:
                self._send(405, _json({"error": "only GET"}), _JSON)

            do_PUT = do_DELETE = do_PATCH = do_POST

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="agent-health",
            daemon=True,
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_JSON = "application/json"


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _probe(probe: Probe) -> tuple[int, bytes, str]:
    return (200 if probe.ok else 503), _json(probe.body()), _JSON
