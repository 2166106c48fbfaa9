"""Every stderr line of the real server (master, gunicorn's arbiter, workers) is one JSON
object, from the start-up facts to the shutdown; only the "try it" lines are on stdout."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

from webhook.policy import bundled_policies_dir

from .conftest import Server

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()
RISKY_REVIEW = (REPO_ROOT / "examples" / "review-risky-plugin.json").read_bytes()


def wait_for_line(server: Server, words: str, count: int = 1, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.stderr().count(words) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {words!r} ({count}x) in the log:\n{server.stderr()}")


def json_objects(text: str) -> list[dict[str, Any]]:
    """Each line parsed; a line that is not one JSON object fails with the line shown."""
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"stderr line {number} is not JSON: {line!r}") from None
        assert isinstance(entry, dict), f"stderr line {number} is not an object: {line!r}"
        objects.append(entry)
    return objects


def test_every_stderr_line_is_one_json_object(start_server: Any, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(bundled_policies_dir(), policies)
    srv: Server = start_server(
        [
            "--workers",
            "2",
            "--policies",
            str(policies),
            "--reload-interval",
            "0.2",
            "--log-level",
            "debug",  # gunicorn's multi-line "Current configuration" dump too
        ]
    )
    client = srv.client()
    assert client.request("POST", "/validate", RISKY_REVIEW)[0] == 200  # denied: a log line
    assert client.request("POST", "/validate", b"{")[0] == 400
    # Plain HTTP on the TLS port: the worker's TLS error path.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.recv(100)
    # A policy file that does not load: the reload error is logged, the last good set kept.
    (policies / "zz-broken.yaml").write_text("apiVersion: argo-plugin-guard/v1\nkind: Policy\n")
    wait_for_line(srv, "reload failed")
    # A worker killed: the arbiter notices and boots another one.
    booted = [e["msg"] for e in srv.log_lines() if "Booting worker" in e.get("msg", "")]
    worker = int(re.findall(r"pid: (\d+)", booted[0])[0])
    os.kill(worker, signal.SIGKILL)
    wait_for_line(srv, "Booting worker", count=3)
    srv.stop()

    entries = json_objects(srv.stderr())
    messages = [e["msg"] for e in entries]
    for expected in (
        "created local CA",
        "serving",
        "admission review",
        "reload failed",
        "Shutting down: Master",
    ):
        assert any(m.startswith(expected) for m in messages), (expected, messages)
    assert any(m.startswith("Current configuration") for m in messages)  # one line, not many
    assert any(f"Worker (pid:{worker})" in m for m in messages)  # the arbiter's own line
    assert all({"ts", "level", "msg"} <= set(e) for e in entries)
    shown = srv.stdout().splitlines()
    assert shown[0] == "try it:" and [line.split()[0] for line in shown[1:]] == ["curl", "curl"]


def _readme_run_block() -> list[str]:
    block = README.split("$ make run\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_the_readme_shows_what_make_run_prints(start_server: Any, tmp_path: Path) -> None:
    srv: Server = start_server()  # make run's options: bundled policies, 2 workers
    srv.stop()
    actual = {e["msg"]: e for e in json_objects(srv.stderr())}
    shown = [json.loads(line) for line in _readme_run_block() if line.startswith("{")]
    assert [e["msg"] for e in shown][:2] == ["created local CA", "serving"]
    readme_state = "/root/.local/state/argo-plugin-guard"
    for entry in shown:
        real = dict(actual[entry["msg"]])
        text = json.dumps(real).replace(str(srv.state_dir), readme_state)
        real = json.loads(text.replace(f":{srv.port}/", ":8443/"))
        assert set(real) == set(entry), (entry, real)
        assert {k: v for k, v in real.items() if k != "ts"} == {
            k: v for k, v in entry.items() if k != "ts"
        }
    first_curl = next(line for line in _readme_run_block() if "curl" in line)
    assert first_curl.strip() == (
        srv.stdout().splitlines()[1].strip().replace(str(srv.state_dir), readme_state)
    ).replace(f":{srv.port}/", ":8443/")
