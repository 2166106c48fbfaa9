"""Leader election end to end: real `plugin-guard agent --leader-elect` processes, one
Lease on the loopback fake API (optimistic concurrency with resourceVersions), a slow
plugin server. Durations are shortened by flags (lease 2 s, renew 1.5 s, retry 0.25 s)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-c", "from webhook.cli import main; main()"]
LEASE = "plugin-guard-agent"
LEASE_DURATION, RENEW_DEADLINE, RETRY = 2.0, 1.5, 0.25
FINAL = {"Succeeded", "Failed", "Error"}


def task(name: str) -> dict[str, Any]:
    return {"name": name, "inputs": {}, "outputs": {}, "plugin": {"hello": {}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [
                *CLI,
                "agent",
                "--leader-elect",
                "--leader-elect-identity",
                name,
                "--leader-elect-lease-duration",
                f"{LEASE_DURATION}s",
                "--leader-elect-renew-deadline",
                f"{RENEW_DEADLINE}s",
                "--leader-elect-retry-period",
                f"{RETRY}s",
                "--metrics-port",
                str(self.port),
                "--metrics-host",
                "127.0.0.1",
                "--patch-interval",
                "0.2s",
                *args,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._file,
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as a:
                return a.status, a.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def state(self) -> str:
        code, body = self.get("/readyz")
        return json.loads(body)["state"] if code else ""

    def metric(self, name: str) -> float:
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=40)
        self._file.close()
        return code


@pytest.fixture
def replica(kube, plugin_server, tmp_path) -> Iterator[Callable[..., Replica]]:  # type: ignore[no-untyped-def]
    started: list[Replica] = []
    config = tmp_path / "kubeconfig.json"
    config.write_text(kube.kubeconfig(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env.update(HOME=str(tmp_path), KUBECONFIG=str(config))

    def start(name: str, plugin: Any) -> Replica:
        args = ["-n", "argo", "--plugin", f"{plugin.address}#hello-executor-plugin=tok"]
        started.append(Replica(name, args, env, tmp_path / f"{name}.log"))
        return started[-1]

    yield start
    for r in started:
        if r.process.poll() is None:
            r.process.kill()
            r.process.wait()


def wait(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__name__}")
        time.sleep(0.05)
    return value


def holder(kube: Any) -> str:
    try:
        lease = kube.get(LEASE, namespace="argo", plural="leases")
    except (KeyError, ValueError):
        return ""
    return str(lease["spec"].get("holderIdentity") or "")


def calls_by_template(plugin: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in list(plugin.calls):
        name = call.body["template"]["name"]
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_the_holder_killed_mid_tasks_the_standby_takes_over_and_reruns_only_the_in_flight(
    kube, plugin_server, replica
):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}, 2.0))
    # already final before anything starts: never run by any replica
    kube.create(
        "wf-done",
        {"done-1": task("done")},
        status={"nodes": {"done-1": {"phase": "Succeeded"}}},
        workflow_uid="wf-uid-0",
    )
    a = replica("pod-a", plugin)
    wait(lambda: a.state() == "leading")
    b = replica("pod-b", plugin)
    wait(lambda: b.state() == "standing-by")
    assert holder(kube) == "pod-a"

    kube.create("wf", {f"n{i}": task(f"t{i}") for i in range(4)})
    wait(lambda: plugin.count == 4)  # all four in flight on pod-a (2 s each)

    def published() -> bool:
        lease = kube.get(LEASE, namespace="argo", plural="leases")
        keys = lease["metadata"].get("annotations", {}).get("argo-plugin-guard/in-flight", "")
        return len(keys.split(",")) == 4

    wait(published, timeout=5)  # a renewal has published them
    a.stop(signal.SIGKILL)
    killed = time.monotonic()
    wait(lambda: b.state() == "leading")
    took = time.monotonic() - killed
    # expiry counts from b's last sight of a renewal: at most one lease duration after
    # it, plus b's jittered retry wait
    assert took < LEASE_DURATION + RETRY * 2.2 + 1.5, took
    assert holder(kube) == "pod-b"

    wait(lambda: len([n for n in kube.nodes("wf").values() if n.get("phase") in FINAL]) == 4)
    time.sleep(0.5)  # a late extra run would show now
    counts = calls_by_template(plugin)
    # each in-flight task ran exactly once more; the final one never ran
    assert counts == {"t0": 2, "t1": 2, "t2": 2, "t3": 2}
    assert b.metric("plugin_guard_agent_failover_reruns_total") == 4
    assert b.metric("plugin_guard_agent_leader") == 1
    reruns = [
        line
        for line in b.lines()
        if line["msg"].startswith("running a task again that was in flight")
    ]
    assert sorted(line["node"] for line in reruns) == ["n0", "n1", "n2", "n3"]
    assert b.stop() == 0


def test_sigterm_drains_releases_and_the_standby_takes_over_at_once(kube, plugin_server, replica):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}, 1.0))
    a = replica("pod-a", plugin)
    wait(lambda: a.state() == "leading")
    b = replica("pod-b", plugin)
    wait(lambda: b.state() == "standing-by")
    kube.create("wf", {"n0": task("t0")})
    wait(lambda: plugin.count == 1)
    assert a.stop(signal.SIGTERM) == 0
    stopped = time.monotonic()
    # drained: the call in flight finished and was patched before the Lease was let go
    assert kube.nodes("wf")["n0"]["phase"] == "Succeeded"
    wait(lambda: b.state() == "leading")
    assert time.monotonic() - stopped < LEASE_DURATION  # released, not expired
    assert any(line["msg"] == "released the Lease" for line in a.lines())
    time.sleep(0.5)
    assert calls_by_template(plugin) == {"t0": 1}  # final: not run again by pod-b
    assert b.metric("plugin_guard_agent_failover_reruns_total") == 0
    assert b.stop() == 0


def test_a_holder_whose_renewals_fail_steps_down(kube, plugin_server, replica):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    a = replica("pod-a", plugin)
    wait(lambda: a.state() == "leading")
    kube.fail("PUT", f"/leases/{LEASE}", 500, "etcdserver: leader changed", times=10_000)
    failed = time.monotonic()
    wait(lambda: a.state() == "standing-by")
    assert time.monotonic() - failed < RENEW_DEADLINE + RETRY + 1.5
    assert a.metric("plugin_guard_agent_leader") == 0
    kube.create("wf", {"n0": task("t0")})
    time.sleep(0.5)
    assert plugin.count == 0  # standing by: nothing runs
    assert any(line["msg"] == "stopped leading" for line in a.lines())
    kube.failures.clear()  # the API server recovers: pod-a leads again
    wait(lambda: a.state() == "leading")
    wait(lambda: kube.nodes("wf").get("n0", {}).get("phase") == "Succeeded")
    assert a.stop() == 0
