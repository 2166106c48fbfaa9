"""/mutate end to end: the real `plugin-guard serve --plugins DIR` (gunicorn, TLS) attaches
the registry's plugins to an opted-in Argo agent pod, answers the patched pod with no
patch, logs one JSON line per review and counts injections in /metrics."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import jsonpatch

from .conftest import Server

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_REVIEW = REPO_ROOT / "tests" / "inject" / "data" / "agent-pod-review.json"
PLUGINS = ("hello", "slack", "python")


def registry_dir(tmp_path: Path, plugin_corpus: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name in PLUGINS:
        source = plugin_corpus / name / f"{name}-executor-plugin-configmap.yaml"
        shutil.copy(source, folder / source.name)
    return folder


def agent_review() -> dict[str, Any]:
    review: dict[str, Any] = json.loads(AGENT_REVIEW.read_text())
    review["request"]["uid"] = str(uuid.uuid4())
    return review


def env_list(container: dict[str, Any], name: str) -> Any:
    return json.loads(next(v["value"] for v in container["env"] if v["name"] == name))


def test_mutate_injects_registry_plugins_through_the_real_server(
    start_server: Any, tmp_path: Path, plugin_corpus: Path
) -> None:
    plugins = registry_dir(tmp_path, plugin_corpus)
    server: Server = start_server(["--plugins", str(plugins), "--workers", "1"])
    client = server.client()

    review = agent_review()
    uid = review["request"]["uid"]
    status, answer = client.post_json("/mutate", review)
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    response = answer["response"]
    assert response["uid"] == uid and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert "warnings" not in response
    ops = json.loads(base64.b64decode(response["patch"], validate=True))
    assert {op["op"] for op in ops} == {"add"}
    pod = review["request"]["object"]
    patched = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    names = ["hello-executor-plugin", "python-executor-plugin", "slack-executor-plugin"]
    containers = patched["spec"]["containers"]
    assert sorted(c["name"] for c in containers[:-1]) == names
    assert containers[-1]["name"] == "main"
    order = [c["name"] for c in containers[:-1]]
    ports = {
        "hello-executor-plugin": 4355,
        "python-executor-plugin": 7984,
        "slack-executor-plugin": 7522,
    }
    for container in (patched["spec"]["initContainers"][0], containers[-1]):
        assert env_list(container, "ARGO_PLUGIN_NAMES") == order
        assert env_list(container, "ARGO_PLUGIN_ADDRESSES") == [
            f"http://localhost:{ports[n]}" for n in order
        ]
    for sidecar in containers[:-1]:
        assert sidecar["volumeMounts"][-1] == {
            "name": "var-run-argo",
            "mountPath": "/var/run/argo",
            "readOnly": True,
            "subPath": sidecar["name"],
        }
        assert sidecar["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    annotations = patched["metadata"]["annotations"]
    assert annotations["argo-plugin-guard/inject-status"] == "injected"

    # The patched pod (a reinvocation, a retry): nothing more to do.
    again = agent_review()
    again["request"]["object"] = patched
    status, answer = client.post_json("/mutate", again)
    assert status == 200
    assert answer["response"] == {"uid": again["request"]["uid"], "allowed": True}

    # v1beta1 is answered in v1beta1 with the same patch.
    beta = agent_review()
    beta["apiVersion"] = "admission.k8s.io/v1beta1"
    status, answer = client.post_json("/mutate", beta)
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert json.loads(base64.b64decode(answer["response"]["patch"])) == ops

    # A pod that did not opt in, and a plugin ConfigMap: allowed, no patch.
    plain = agent_review()
    del plain["request"]["object"]["metadata"]["labels"]["argo-plugin-guard/inject"]
    status, answer = client.post_json("/mutate", plain)
    assert answer["response"] == {"uid": plain["request"]["uid"], "allowed": True}

    status, _, body = client.request("GET", "/metrics")
    metrics = body.decode()
    assert 'plugin_guard_injections_total{namespace="argo",result="injected"} 2.0' in metrics
    assert (
        'plugin_guard_injections_total{namespace="argo",result="already-injected"} 1.0' in metrics
    )
    assert 'plugin_guard_injections_total{namespace="argo",result="not-opted-in"} 1.0' in metrics
    assert 'plugin_guard_injected_plugins_total{namespace="argo",result="injected"} 6.0' in metrics
    client.close()
    server.stop()

    lines = [e for e in server.log_lines() if e.get("msg") == "admission review"]
    (line,) = [e for e in lines if e["uid"] == uid]
    assert line["webhook"] == "mutate" and line["allowed"] is True
    assert line["injection"] == "injected"
    assert sorted(line["injected"]) == names
    assert line["patchOps"] == len(ops)
    # No plugin script or container spec in the log, only identifiers.
    assert "BaseHTTPRequestHandler" not in server.log()


def test_mutate_warns_and_admits_when_a_plugin_cannot_be_attached(
    start_server: Any, tmp_path: Path, plugin_corpus: Path
) -> None:
    plugins = registry_dir(tmp_path, plugin_corpus)
    server: Server = start_server(["--plugins", str(plugins), "--workers", "1"])
    client = server.client()
    review = agent_review()
    containers = review["request"]["object"]["spec"]["containers"]
    containers.insert(0, {"name": "proxy", "image": "proxy:1", "ports": [{"containerPort": 4355}]})
    status, answer = client.post_json("/mutate", review)
    response = answer["response"]
    assert status == 200 and response["allowed"] is True
    assert response["warnings"] == [
        "[inject] plugin hello-executor-plugin not injected: port 4355 is already used by "
        "container proxy"
    ]
    ops = json.loads(base64.b64decode(response["patch"]))
    added = [op["value"]["name"] for op in ops if re.fullmatch(r"/spec/containers/\d+", op["path"])]
    assert sorted(added) == ["python-executor-plugin", "slack-executor-plugin"]
    status, _, body = client.request("GET", "/metrics")
    assert (
        'plugin_guard_injected_plugins_total{namespace="argo",result="skipped"} 1.0'
        in body.decode()
    )
    client.close()
