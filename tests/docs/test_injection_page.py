"""docs/injection.md's "real answer" is re-made by the real server: `plugin-guard serve
--plugins examples/hardened-plugin` (gunicorn, TLS, loopback) answers the page's agent pod
review with exactly the patch the page shows, and logs and counts what it says."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = (REPO_ROOT / "docs" / "injection.md").read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Served:
    def __init__(self, port: int, ca_file: Path, log: Path) -> None:
        self.port, self.ca_file, self.log = port, ca_file, log

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[_Served]:
    command = re.search(r"`plugin-guard (serve --plugins [^`]+)`", PAGE)
    assert command, "docs/injection.md no longer names the serve command of its example"
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "webhook", *command.group(1).split()),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
                *("--state-dir", str(tmp_path / "state"), "--reload-interval", "0"),
            ],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            start_new_session=True,
        )
    server = _Served(port, tmp_path / "state" / "ca.crt", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"serve did not come up:\n{log.read_text()}"
            with contextlib.suppress(OSError):
                if server.ca_file.exists() and server.request("GET", "/healthz")[0] == 200:
                    break
            time.sleep(0.1)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def _example() -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    block = re.search(r"^```console\n(.*?)^```", PAGE, flags=re.M | re.S)
    assert block, "docs/injection.md no longer shows the /mutate example"
    lines = block.group(1).splitlines()
    review_file = re.search(r"-d @(\S+)", block.group(1))
    assert review_file
    answer = json.loads(lines[2])
    ops = [json.loads(line) for line in lines[4:]]
    return review_file.group(1), answer, ops


def test_the_mutate_example_is_what_the_server_answers(served: _Served) -> None:
    review_file, shown, shown_ops = _example()
    review = (REPO_ROOT / review_file).read_bytes()
    status, body = served.request("POST", "/mutate", review)
    assert status == 200
    answer = json.loads(body)
    patch = answer["response"].pop("patch")
    shown_patch = shown["response"].pop("patch")
    assert shown_patch.endswith("...") and patch.startswith(shown_patch.removesuffix("..."))
    assert answer == shown
    assert json.loads(base64.b64decode(patch)) == shown_ops

    logged = re.search(r"`(\"injection\": [^`]*)`", PAGE)
    assert logged, "docs/injection.md no longer shows the log fields"
    expected = json.loads(
        "{" + logged.group(1).replace('"injected": [...]', '"injected": []') + "}"
    )
    lines = [
        json.loads(line) for line in served.log.read_text().splitlines() if line.startswith("{")
    ]
    reviews = [line for line in lines if line.get("msg") == "admission review"]
    assert len(reviews) == 1
    assert reviews[0]["injection"] == expected["injection"]
    assert reviews[0]["patchOps"] == expected["patchOps"] == len(shown_ops)
    assert reviews[0]["injected"] == ["greet-executor-plugin"]

    status, metrics = served.request("GET", "/metrics")
    assert status == 200
    counted = re.findall(
        r"^(plugin_guard_inject\w+_total)\{([^}]*)\} (\S+)$", metrics.decode(), re.M
    )
    namespace = json.loads(review)["request"]["namespace"]
    assert sorted(counted) == [
        (
            "plugin_guard_injected_plugins_total",
            f'namespace="{namespace}",result="injected"',
            "1.0",
        ),
        ("plugin_guard_injections_total", f'namespace="{namespace}",result="injected"', "1.0"),
    ]
