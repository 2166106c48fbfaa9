"""`plugin-guard agent` against the real API server, with exactly the README's RBAC
(list/watch workflowtasksets, patch workflowtasksets/status) for its ServiceAccount: the
unmodified corpus hello plugin answers, and the result lands in the TaskSet's status
through the status subresource of Argo's CRD."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from webhook.dispatch.localplugin import LaunchSpec, LocalPlugin

from .controlplane import ControlPlane, ManagedProcess, free_port, json_log_lines, wait_until
from .guard import AGENT_NAMESPACE, AGENT_USER, ensure_namespace, plugin_guard_binary

pytestmark = pytest.mark.realapi

HELLO_SERVER = Path(__file__).resolve().parents[3] / "shared/corpora/argo-plugins/hello/server.py"
SERVICE_ACCOUNT = AGENT_USER.name.rsplit(":", 1)[1]
# The corpus server.py listens on 4355; the file runs unmodified, this shim moves its port.
PORT_SHIM = """
import http.server, runpy, sys
port, path = int(sys.argv[1]), sys.argv[2]
class Server(http.server.HTTPServer):
    def __init__(self, address, handler, *args, **kwargs):
        super().__init__((address[0], port), handler, *args, **kwargs)
http.server.HTTPServer = Server
sys.argv = [path]
runpy.run_path(path, run_name="__main__")
"""
README_RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "argo-plugin-guard-agent", "namespace": AGENT_NAMESPACE},
        "rules": [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtasksets"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtasksets/status"],
                "verbs": ["patch"],
            },
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "argo-plugin-guard-agent", "namespace": AGENT_NAMESPACE},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "argo-plugin-guard-agent",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": AGENT_NAMESPACE}
        ],
    },
]


def taskset(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": {
            "name": name,
            "namespace": AGENT_NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Workflow",
                    "name": name,
                    "uid": "0b1e2f3a-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
                }
            ],
        },
        "spec": {
            "tasks": {
                f"{name}-3213": {
                    "name": "hello",
                    "inputs": {},
                    "outputs": {},
                    "plugin": {"hello": {}},
                }
            }
        },
    }


def test_the_agent_with_the_readme_rbac_patches_the_taskset_status(
    argo_crds: ControlPlane, tmp_path: Path
) -> None:
    ensure_namespace(argo_crds, AGENT_NAMESPACE)
    argo_crds.apply(README_RBAC, check=True)
    # exactly that: the agent cannot write the TaskSet itself, only its status
    for verb, resource, expected in (
        ("watch", ["workflowtasksets"], "yes"),
        ("patch", ["workflowtasksets", "--subresource=status"], "yes"),
        ("patch", ["workflowtasksets"], "no"),
        ("get", ["workflowtasksets"], "no"),
    ):
        can = argo_crds.kubectl(
            "auth", "can-i", verb, *resource, "-n", AGENT_NAMESPACE, user=AGENT_USER
        )
        assert can.stdout.strip() == expected, (verb, resource, can.stderr)

    port = free_port()
    spec = LaunchSpec(
        "hello",
        [sys.executable, "-c", PORT_SHIM, str(port), str(HELLO_SERVER)],
        port=port,
        cwd=str(HELLO_SERVER.parent),
    )
    with LocalPlugin(spec, startup_timeout=20) as hello:
        token_file = tmp_path / "hello.token"
        token_file.write_text(hello.token)
        agent = ManagedProcess(
            "plugin-guard agent",
            [
                str(plugin_guard_binary()),
                "agent",
                "--namespace",
                AGENT_NAMESPACE,
                "--plugin",
                f"http://127.0.0.1:{port}#hello-executor-plugin=@{token_file}",
                "--patch-interval",
                "200ms",
            ],
            tmp_path / "agent.log",
            env=argo_crds.environment(AGENT_USER),
            separate_stdout=True,
        )
        try:
            argo_crds.apply([taskset("hello-wf")], check=True)

            def nodes() -> dict[str, Any]:
                stored = argo_crds.kubectl(
                    "get", "wfts", "hello-wf", "-n", AGENT_NAMESPACE, "-o", "json", check=True
                ).json()
                return dict(stored.get("status", {}).get("nodes", {}))

            wait_until(
                lambda: bool(nodes()),
                60,
                "the agent's status patch",
                interval=0.3,
                alive=lambda: None if agent.alive() else agent.log_tail(),
            )
        finally:
            code = agent.stop()
        assert code == 0, agent.log_tail()
        log = agent.log_file.read_text()

    assert nodes() == {
        "hello-wf-3213": {
            "phase": "Succeeded",
            "message": "Hello template!",
            "outputs": {"parameters": [{"name": "foo", "value": "bar"}]},
        }
    }
    assert "Patched TaskSet" in log
    assert any(line["msg"] == "Agent stopped" for line in json_log_lines(agent.log_file))
    assert hello.token not in log and AGENT_USER.token not in log
