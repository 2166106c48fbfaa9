"""Start the real `plugin-guard serve` (gunicorn, TLS, real sockets) for end-to-end tests.

Every server gets a free loopback port, its own state folder and process group; the
fixture stops it with SIGTERM (then SIGKILL to the group if it hangs) and the tests can
read its log afterwards: stderr (the JSON log) and stdout (the "try it" lines) are kept
in two files.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

SERVE = [sys.executable, "-c", "from webhook.cli import main; main()", "serve"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_context(ca_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = True
    return context


class Client:
    """A keep-alive HTTPS client (http.client: far cheaper per request than requests)."""

    def __init__(self, port: int, ca_file: Path, timeout: float = 15.0) -> None:
        self.port = port
        self.context = client_context(ca_file)
        self.timeout = timeout
        self.conn: http.client.HTTPSConnection | None = None

    def _connection(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.context, timeout=self.timeout
            )
        return self.conn

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        retry: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed a kept-alive connection (e.g. after an error
                # answer with "Connection: close"): reconnect once.
                self.close()
                if attempt or not retry:
                    raise
                continue
            except BaseException:
                self.close()  # never reuse a connection in an unknown state
                raise
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    def post_json(self, path: str, payload: Any) -> tuple[int, Any]:
        status, _, data = self.request("POST", path, json.dumps(payload).encode())
        return status, json.loads(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Server:
    def __init__(
        self,
        tmp: Path,
        args: Sequence[str] = (),
        *,
        state_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.state_dir = state_dir or tmp / "state"
        self.log_path = tmp / f"server-{self.port}.log"  # stderr
        self.stdout_path = tmp / f"server-{self.port}.out"
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca_file = self.state_dir / "ca.crt"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, *, ca_file: Path | None = None, wait: float = 30.0) -> Server:
        if ca_file is not None:
            self.ca_file = ca_file
        cmd = [
            *SERVE,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state_dir),
            *self.args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with open(self.log_path, "ab") as log, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=log, env=env, start_new_session=True
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self.ca_file.exists():
                try:
                    status, _, _ = Client(self.port, self.ca_file, timeout=2).request(
                        "GET", "/healthz"
                    )
                    if status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server did not come up:\n{self.log()}")

    def client(self) -> Client:
        return Client(self.port, self.ca_file)

    def stderr(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stdout(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def log(self) -> str:
        """Both streams, stderr first."""
        return self.stderr() + self.stdout()

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Workers share the group: make sure none outlives the master.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def start(args: Sequence[str] = (), **kwargs: Any) -> Server:
        ca_file = kwargs.pop("ca_file", None)
        server = Server(tmp_path, args, **kwargs)
        servers.append(server)
        return server.start(ca_file=ca_file)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server (bundled policies, 2 workers) for the read-only tests of a module."""
    srv = Server(tmp_path_factory.mktemp("server"), ["--workers", "2"])
    srv.start()
    yield srv
    srv.stop()
