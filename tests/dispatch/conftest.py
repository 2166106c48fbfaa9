"""Scripted plugin servers on real loopback sockets, for the dispatcher conformance suite.

A `ScriptedPlugin` answers `POST /api/v1/template.execute` with the next step of its
script (the last step repeats), and records every request it received. Steps:
`Reply(status, body)`, `Hang(seconds)` (no answer until the client gives up) and
`Drop()` (close the connection without an answer).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | None = b"{}"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class Hang:
    seconds: float = 5.0


@dataclass(frozen=True)
class Drop:
    pass


Step = Reply | Hang | Drop


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # sixteen workers connect at once
    daemon_threads = True


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ScriptedPlugin:
    script: list[Step]
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedPlugin:
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like most real plugins
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with plugin._lock:
                    plugin.requests.append(
                        Received(self.path, dict(self.headers.items()), json.loads(raw or b"null"))
                    )
                    index = min(len(plugin.requests), len(plugin.script)) - 1
                step = plugin.script[index]
                if isinstance(step, Hang):
                    plugin._released.wait(step.seconds)
                    self.close_connection = True
                    return
                if isinstance(step, Drop):
                    self.close_connection = True
                    return
                payload = step.payload()
                self.send_response(step.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def calls(self) -> int:
        return len(self.requests)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def scripted() -> Iterator[Any]:
    """`scripted(step, ...)` starts a plugin server; all are stopped after the test."""
    started: list[ScriptedPlugin] = []

    def start(*script: Step, port: int = 0) -> ScriptedPlugin:
        plugin = ScriptedPlugin(list(script) or [Reply()], port=port).start()
        started.append(plugin)
        return plugin

    yield start
    for plugin in started:
        plugin.stop()


class RecordingSleep:
    """An injected `sleep`: records the delays instead of waiting; can run a hook."""

    def __init__(self, hook: Any = None) -> None:
        self.delays: list[float] = []
        self.hook = hook

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hook is not None:
            self.hook(len(self.delays))


@pytest.fixture
def no_sleep() -> RecordingSleep:
    return RecordingSleep()


# Exposed to test modules through fixtures (importlib mode: no sibling imports).
@pytest.fixture
def steps() -> Any:
    return type("Steps", (), {"Reply": Reply, "Hang": Hang, "Drop": Drop})


@pytest.fixture
def make_sleep() -> Any:
    return RecordingSleep


@pytest.fixture
def unused_port() -> int:
    return free_port()
