"""`plugin-guard agent --leader-elect` processes on one real Lease, with exactly the chart's
agent RBAC (agent.enabled): SIGTERM hands the Lease over at once (long before it would
expire); the holder killed with SIGKILL while a task runs is replaced within the lease
duration, and the task that was in flight is run once more and ends final."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane, child_environment, json_log_lines, wait_until
from .guard import CHART_AGENT_USER, RELEASE_NAMESPACE, helm_template

CLI = [sys.executable, "-c", "from webhook.cli import main; main()"]
LEASE = "plugin-guard-agent"


class SlowPlugin:
    """Answers Succeeded after `delay` seconds; counts the calls."""

    def __init__(self, delay: float) -> None:
        self.calls = 0
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                plugin.calls += 1
                time.sleep(delay)
                body = json.dumps({"node": {"phase": "Succeeded", "message": "ok"}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def holder(cp: ControlPlane) -> str:
    result = cp.kubectl("get", "lease", LEASE, "-n", RELEASE_NAMESPACE, "-o", "json")
    return str(result.json()["spec"].get("holderIdentity") or "") if result.returncode == 0 else ""


def test_two_agents_on_a_real_lease_with_the_charts_rbac(
    argo_crds: ControlPlane, make_namespace, tmp_path: Path
) -> None:
    cp = argo_crds
    ns = make_namespace("wf")
    cp.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE}}])
    docs = helm_template(
        {"certManager": {"enabled": True}, "agent": {"enabled": True, "namespaces": [ns]}},
        tmp_path,
        cp.server_version(),
    )
    rbac = [
        d
        for d in docs
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")
        and d["metadata"]["name"].endswith(("-agent", "-agent-lease"))
    ]
    assert {d["kind"] for d in rbac} == {"ServiceAccount", "Role", "RoleBinding"}
    cp.apply(rbac, check=True)

    plugin = SlowPlugin(delay=3.0)
    kubeconfig = cp.kubeconfig(CHART_AGENT_USER)
    env = child_environment({"KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)})
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, lease_seconds: int) -> None:
        processes[name] = subprocess.Popen(
            [
                *CLI,
                "agent",
                "-n",
                ns,
                "--plugin",
                f"{plugin.url}#hello-executor-plugin=tok",
                "--leader-elect",
                "--leader-elect-identity",
                name,
                "--leader-elect-namespace",
                RELEASE_NAMESPACE,
                "--leader-elect-lease-duration",
                f"{lease_seconds}s",
                "--leader-elect-renew-deadline",
                f"{lease_seconds * 2 // 3}s",
                "--leader-elect-retry-period",
                "0.5s",
                "--patch-interval",
                "0.2s",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"{name}.log").open("wb"),
        )

    try:
        # SIGTERM: agent-a holds a 60 s Lease; without the release agent-b would wait for it
        # to expire, with it agent-b takes it at its next attempt (retry period 0.5 s).
        start("agent-a", lease_seconds=60)
        wait_until(lambda: holder(cp) == "agent-a", timeout=30, what="agent-a leads")
        start("agent-b", lease_seconds=3)
        start("agent-c", lease_seconds=3)
        time.sleep(1.5)
        assert holder(cp) == "agent-a"
        processes["agent-a"].send_signal(signal.SIGTERM)
        assert processes["agent-a"].wait(timeout=30) == 0
        wait_until(  # far below the 60 s the Lease would take to expire
            lambda: holder(cp) in ("agent-b", "agent-c"), timeout=20, what="a standby takes over"
        )
        a_log = (tmp_path / "agent-a.log").read_text().splitlines()
        assert any("released the Lease" in line for line in a_log)
        leader, standby = (
            ("agent-b", "agent-c") if holder(cp) == "agent-b" else ("agent-c", "agent-b")
        )

        # SIGKILL while a task runs: the standby takes over when the 3 s Lease expires and
        # runs the task that was in flight once more.
        cp.apply(
            [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "WorkflowTaskSet",
                    "metadata": {"name": "wf", "namespace": ns},
                    "spec": {"tasks": {"n0": {"name": "t0", "plugin": {"hello": {}}}}},
                }
            ],
            check=True,
        )
        wait_until(lambda: plugin.calls >= 1, timeout=30, what="the holder calls the plugin")

        def published() -> bool:
            got = cp.kubectl("get", "lease", LEASE, "-n", RELEASE_NAMESPACE, "-o", "json").json()
            annotations = got["metadata"].get("annotations") or {}
            return bool(annotations.get("argo-plugin-guard/in-flight"))

        wait_until(published, timeout=5, what="a renewal publishes the call in flight")
        processes[leader].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: holder(cp) == standby, timeout=20, what=f"{standby} takes over")
        assert time.monotonic() - killed < 3 + 0.5 * 2.2 + 3  # lease + retry + slack

        def node() -> dict[str, Any]:
            got = cp.kubectl("get", "workflowtasksets", "wf", "-n", ns, "-o", "json").json()
            return dict(((got.get("status") or {}).get("nodes") or {}).get("n0") or {})

        wait_until(lambda: node().get("phase") == "Succeeded", timeout=30, what="n0 final")
        assert plugin.calls == 2  # in flight on the killed holder, run once more by the standby
        lines = (tmp_path / f"{standby}.log").read_text().splitlines()
        assert any("running a task again" in line for line in lines)
        for name in processes:  # every stderr line one JSON object, the killed one's too
            assert json_log_lines(tmp_path / f"{name}.log")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        plugin.server.shutdown()
