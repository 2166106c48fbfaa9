"""`/mutate` called by the API server: an Argo agent pod that opted in is stored with the
registry's plugin injected, and Pod Security admission ("restricted", enforced on the
namespace) accepts the stored pod, because of the hardened defaults the injection adds."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .controlplane import ControlPlane, wait_until
from .guard import GuardServer, Installation, installed, wait_for_webhook

pytestmark = pytest.mark.realapi

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_REVIEW = REPO_ROOT / "tests" / "inject" / "data" / "agent-pod-review.json"
HELLO = REPO_ROOT.parent / "shared" / "corpora" / "argo-plugins" / "hello"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
PLUGIN = "hello-executor-plugin"


def registry_plugin() -> dict[str, Any]:
    """The corpus hello plugin with a bare securityContext (non-root only): Argo accepts it,
    and only the injected defaults (no privilege escalation, capabilities dropped) make
    a pod carrying it pass "restricted"."""
    doc = yaml.safe_load((HELLO / "hello-executor-plugin-configmap.yaml").read_text())
    container = yaml.safe_load(doc["data"]["sidecar.container"])
    container["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000}
    doc["data"]["sidecar.container"] = yaml.safe_dump(container)
    return dict(doc)


def agent_pod(namespace: str, name: str, opted_in: bool = True) -> dict[str, Any]:
    """The agent pod Argo v4.1's controller creates (tests/inject/data), in `namespace`."""
    pod = copy.deepcopy(json.loads(AGENT_REVIEW.read_text())["request"]["object"])
    pod["metadata"]["namespace"] = namespace
    pod["metadata"]["name"] = name
    if not opted_in:
        del pod["metadata"]["labels"]["argo-plugin-guard/inject"]
    return dict(pod)


@pytest.fixture(scope="module")
def chart(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    registry = tmp_path_factory.mktemp("registry")
    (registry / "hello.yaml").write_text(yaml.safe_dump(registry_plugin()))
    server = GuardServer(control_plane, ["--plugins", str(registry)])
    values = {"mutating": {"enabled": True}, "plugins": {"registry": "e2e-plugin-registry"}}
    try:
        with installed(control_plane, server, values) as installation:
            probe = dict(registry_plugin(), data={})
            wait_for_webhook(control_plane, probe, "default")
            yield installation
    finally:
        server.stop()


def injected_on_dry_run(control_plane: ControlPlane, namespace: str) -> bool:
    result = control_plane.kubectl(
        "create",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps(agent_pod(namespace, "probe-agent")),
    )
    if result.returncode != 0:
        return False
    annotations = result.json()["metadata"].get("annotations", {})
    return bool(annotations.get("argo-plugin-guard/inject-status") == "injected")


def test_an_opted_in_agent_pod_is_stored_injected_and_passes_restricted(
    chart: Installation, control_plane: ControlPlane, make_namespace
) -> None:
    ns = make_namespace("agents", RESTRICTED)
    wait_until(
        lambda: injected_on_dry_run(control_plane, ns), 30, "the mutating webhook", interval=0.2
    )
    created = control_plane.kubectl(
        "create", "-f", "-", input=json.dumps(agent_pod(ns, "wf-agent"))
    )
    assert created.returncode == 0, created.stderr
    assert "pod/wf-agent created" in created.stdout
    assert "would violate PodSecurity" not in created.stderr

    pod = control_plane.kubectl("get", "pod", "wf-agent", "-n", ns, "-o", "json", check=True).json()
    annotations = pod["metadata"]["annotations"]
    assert annotations["argo-plugin-guard/inject-status"] == "injected"
    assert annotations["argo-plugin-guard/injected-plugins"] == PLUGIN
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert [c["name"] for c in pod["spec"]["containers"]] == [PLUGIN, "main"]
    sidecar = containers[PLUGIN]
    assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
    assert sidecar["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert sidecar["securityContext"]["runAsUser"] == 1000  # the plugin's own, kept
    assert {
        "name": "var-run-argo",
        "mountPath": "/var/run/argo",
        "readOnly": True,
        "subPath": PLUGIN,
    } in sidecar["volumeMounts"]
    for container in (pod["spec"]["initContainers"][0], containers["main"]):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert json.loads(env["ARGO_PLUGIN_ADDRESSES"]) == ["http://localhost:4355"]
        assert json.loads(env["ARGO_PLUGIN_NAMES"]) == [PLUGIN]
    # no token anywhere in the stored pod: argoexec writes it inside the pod
    assert "token" not in json.dumps(sidecar.get("env", [])).lower()

    reviews = {r["webhook"]: r for r in chart.server.reviews() if r.get("name") == "wf-agent"}
    assert reviews["mutate"]["injection"] == "injected"
    assert reviews["mutate"]["injected"] == [PLUGIN]
    # the validating pair saw the pod after injection, and let it through
    assert reviews["validate"]["allowed"] is True


def test_without_the_injected_defaults_restricted_refuses_the_same_pod(
    chart: Installation, control_plane: ControlPlane, make_namespace
) -> None:
    """The control: the plugin container attached as it is (as Argo's controller would),
    in a pod that did not opt in, is refused by Pod Security admission."""
    ns = make_namespace("agents", RESTRICTED)
    pod = agent_pod(ns, "raw-agent", opted_in=False)
    container = yaml.safe_load(registry_plugin()["data"]["sidecar.container"])
    pod["spec"]["containers"].insert(0, container)
    refused = control_plane.kubectl("create", "-f", "-", input=json.dumps(pod))
    assert refused.returncode == 1
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert f'allowPrivilegeEscalation != false (container "{PLUGIN}"' in refused.stderr
    assert [r for r in chart.server.reviews() if r.get("name") == "raw-agent"] == []
