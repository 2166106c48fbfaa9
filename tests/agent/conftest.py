"""Fixtures for the in-cluster agent: the fake API server (`tests/support/kubefake.py`, real loopback
HTTP spoken to by the real `kubernetes` client), scripted plugin servers, and agents
started in-process with small intervals and injected sleeps."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubefake as fakeapi
from webhook.agent import Agent, AgentConfig, PatchBackoff
from webhook.dispatch import ManualScheduler, PluginClient, PluginEndpoint
from webhook.kube import Cluster, kinds

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def agent_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log call of the agent runs (and is formatted as JSON) in every test, and no
    token ever appears in a log line."""
    from webhook.server.logs import JsonFormatter

    caplog.set_level(logging.DEBUG, logger="webhook")
    formatter = JsonFormatter()
    yield caplog
    text = "\n".join(formatter.format(record) for record in caplog.records)
    for secret in ("tok", "fake-api-bearer-token"):
        assert f'"{secret}' not in text and f"Bearer {secret}" not in text


@pytest.fixture
def kube() -> Iterator[Any]:
    with fakeapi.FakeKubeApi() as api:
        yield api


@pytest.fixture
def kubeconfig(kube: Any, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig.json"
    path.write_text(kube.kubeconfig(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- plugins


@dataclass
class Call:
    headers: dict[str, str]
    body: Any


@dataclass
class PluginServer:
    """Answers `template.execute` with the next reply (the last one repeats); a reply is
    `(status, body)` or `(status, body, delay_seconds)`. Records every call."""

    replies: list[tuple[Any, ...]]
    calls: list[Call] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PluginServer:
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode()
                with plugin._lock:
                    plugin.calls.append(Call(dict(self.headers.items()), body))
                    reply = plugin.replies[min(len(plugin.calls), len(plugin.replies)) - 1]
                if len(reply) > 2:
                    time.sleep(reply[2])
                payload = reply[1] if isinstance(reply[1], bytes) else json.dumps(reply[1]).encode()
                self.send_response(reply[0])
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.calls)


@pytest.fixture
def plugin_server() -> Iterator[Callable[..., PluginServer]]:
    started: list[PluginServer] = []

    def start(*replies: tuple[Any, ...]) -> PluginServer:
        server = PluginServer(list(replies) or [(200, {})]).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


HELLO_REPLY = {
    "node": {
        "phase": "Succeeded",
        "message": "Hello template!",
        "outputs": {"parameters": [{"name": "foo", "value": "bar"}]},
    }
}


class Sleeps:
    """An injected `sleep`: records instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def run_agent(kubeconfig: Path) -> Iterator[Callable[..., Agent]]:
    """`run_agent(plugin_servers..., namespaces=("argo",), scheduler=None, ...)` starts an
    agent in this process on the fake API; every agent is shut down after the test."""
    agents: list[Agent] = []
    clusters: list[Cluster] = []

    def start(
        *plugins: PluginServer | PluginEndpoint,
        namespaces: tuple[str, ...] = ("argo",),
        scheduler: ManualScheduler | None = None,
        sleeps: Sleeps | None = None,
        patch_interval: float = 0.02,
        **config: Any,
    ) -> Agent:
        endpoints = [
            p if isinstance(p, PluginEndpoint) else PluginEndpoint(p.address, "tok", "hello")
            for p in plugins
        ]
        clients = [PluginClient(e, sleep=lambda s: None) for e in endpoints]
        defaults: dict[str, Any] = {
            "workers": 4,
            "patch_backoff": PatchBackoff(),
            "relist_backoff": (0.01, 0.05),
            "shutdown_timeout": 5.0,
        }
        settings = AgentConfig(
            namespaces=namespaces, patch_interval=patch_interval, **{**defaults, **config}
        )
        cluster = Cluster.connect(str(kubeconfig))
        clusters.append(cluster)
        agent = Agent(
            cluster.resource(kinds.WORKFLOW_TASKSET),
            clients,
            settings,
            scheduler=scheduler,
            sleep=sleeps if sleeps is not None else Sleeps(),
            jitter=lambda: 0.0,
        )
        agent.start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.shutdown()
    for cluster in clusters:
        cluster.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(0.01)


@pytest.fixture
def until() -> Callable[..., Any]:
    return wait_until


@pytest.fixture
def hello_reply() -> dict[str, Any]:
    return json.loads(json.dumps(HELLO_REPLY))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
