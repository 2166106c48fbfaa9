"""Python warnings reach stderr as JSON log lines, once per category.

A kubeconfig with `insecure-skip-tls-verify: true` makes urllib3 raise an
`InsecureRequestWarning` on every API call; Python would print each as two plain-text
lines in the middle of the agent's JSON log. The agent here talks to a real TLS server
on loopback (a self-signed certificate, so verification must be off) that answers every
request with a JSON Status 500, so the agent keeps retrying its list: many calls, many
warnings, one JSON line for them.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from webhook.server.certs import issue_server_cert, make_ca

CLI = [sys.executable, "-c", "from webhook.cli import main; main()"]


class _FailingApi(BaseHTTPRequestHandler):
    requests = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests += 1
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 500,
                "reason": "InternalError",
                "message": "test server always fails",
            }
        ).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[str]:
    ca_cert, ca_key = make_ca()
    cert, key = issue_server_cert(ca_cert, ca_key, ["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingApi)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_insecure_request_warnings_are_one_json_line(tmp_path: Path, tls_api: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": tls_api, "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}
    log = tmp_path / "agent.log"
    _FailingApi.requests = 0
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*CLI, "agent", "--namespace", "argo", "--plugin", "http://127.0.0.1:9=tok"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 30
            while _FailingApi.requests < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert _FailingApi.requests >= 3, "the agent did not retry against the failing API"

    lines = log.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every stderr line is one JSON object
    warned = [e for e in entries if e.get("category") == "InsecureRequestWarning"]
    assert len(warned) == 1, entries
    assert warned[0]["level"] == "warning"
    assert "Unverified HTTPS request" in warned[0]["msg"]
    assert "not-a-real-token" not in log.read_text()
