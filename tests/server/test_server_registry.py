"""`serve --plugins-from-cluster`: the real server, the real `kubernetes` client, and a
loopback fake of the ConfigMap list/watch API (tests/support/kubefake.py)."""

from __future__ import annotations

import copy
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubefake as fakecore

from .conftest import SERVE, Server, free_port

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared"
if not SHARED.is_dir():  # only outside CI: tests/conftest.py fails a CI run without it
    pytest.skip("shared/ is missing: this module reads its bench payloads", allow_module_level=True)
PAYLOAD_A = json.loads(
    (SHARED / "bench" / "payloads" / "a-plugin-configmap-compliant.json").read_text()
)


def installed_plugin(name: str = "other-executor-plugin", namespace: str = "argo") -> Any:
    """The reviewed plugin's ConfigMap under another name: the same port (4355)."""
    obj = copy.deepcopy(PAYLOAD_A["request"]["object"])
    obj["metadata"] = {
        "name": name,
        "namespace": namespace,
        "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
    }
    return obj


def verdict_text(srv: Server) -> str:
    review = copy.deepcopy(PAYLOAD_A)
    review["request"]["uid"] = str(uuid.uuid4())
    client = srv.client()
    status, answer = client.post_json("/validate", review)
    client.close()  # a new connection each time: every worker gets asked
    assert status == 200
    return json.dumps(answer["response"])


def readyz(srv: Server) -> dict[str, Any]:
    client = srv.client()
    status, _, data = client.request("GET", "/readyz")
    client.close()
    assert status == 200
    body: dict[str, Any] = json.loads(data)
    return body


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def kubeconfig(tmp_path: Path, api: Any) -> dict[str, str]:
    path = tmp_path / "kubeconfig"
    path.write_text(api.kubeconfig(namespace=None))
    return {"KUBECONFIG": str(path)}


def everywhere(srv: Server, check: Any, tries: int = 6) -> bool:
    """True when `check` holds for several answers in a row (each worker, likely)."""
    return all(check() for _ in range(tries))


def test_cluster_plugins_drive_unique_ports(start_server: Any, tmp_path: Path) -> None:
    with fakecore.FakeKubeApi() as api:
        api.apply(installed_plugin("unrelated", namespace="other"))  # another namespace
        memo = installed_plugin("memo-cache")
        memo["metadata"]["labels"]["workflows.argoproj.io/configmap-type"] = "Cache"
        api.apply(memo)  # same label key, not a plugin (spec 3.2): never registered
        srv: Server = start_server(
            ["--workers", "2", "--plugins-from-cluster", "--plugins-namespace", "argo"],
            env=kubeconfig(tmp_path, api),
        )
        wait_for(lambda: everywhere(srv, lambda: readyz(srv)["status"] == "ready"))
        assert readyz(srv)["plugins"] == 0
        assert "[plugin-unique-ports]" not in verdict_text(srv)

        api.apply(installed_plugin())
        wait_for(lambda: everywhere(srv, lambda: readyz(srv)["plugins"] == 1))
        assert everywhere(srv, lambda: "[plugin-unique-ports]" in verdict_text(srv))

        api.delete("other-executor-plugin")
        wait_for(lambda: everywhere(srv, lambda: readyz(srv)["plugins"] == 0))
        assert everywhere(srv, lambda: "[plugin-unique-ports]" not in verdict_text(srv))

        # A compacted history: the watch gets 410 and the registry lists again.
        api.compact()
        api.close_watches()
        api.apply(installed_plugin())
        wait_for(lambda: everywhere(srv, lambda: readyz(srv)["plugins"] == 1))
        assert everywhere(srv, lambda: "[plugin-unique-ports]" in verdict_text(srv))

    lines = [line for line in srv.log_lines() if line.get("msg", "").startswith("executor plugin")]
    assert {"executor plugin added", "executor plugin removed"} <= {line["msg"] for line in lines}
    for line in lines:
        assert line["namespace"] == "argo" and line["configmap"] == "other-executor-plugin"
    assert "sidecar" not in json.dumps(lines)  # never the ConfigMap's content
    assert "Traceback" not in srv.log()


def test_api_down_at_start_is_degraded_then_ready(start_server: Any, tmp_path: Path) -> None:
    api = fakecore.FakeKubeApi(port=free_port())
    srv: Server = start_server(
        ["--workers", "1", "--plugins-from-cluster"], env=kubeconfig(tmp_path, api)
    )
    body = readyz(srv)
    assert body["status"] == "degraded" and body["plugins"] == 0
    assert any(problem.startswith("plugins (cluster)") for problem in body["problems"])
    assert "[plugin-unique-ports]" not in verdict_text(srv)  # reviews are served meanwhile
    api.apply(installed_plugin())
    with api:
        wait_for(lambda: readyz(srv)["status"] == "ready", timeout=20)
        assert readyz(srv)["plugins"] == 1
        assert "[plugin-unique-ports]" in verdict_text(srv)


def test_plugins_dir_and_cluster_are_exclusive(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SERVE, "--plugins", str(tmp_path), "--plugins-from-cluster"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--plugins-from-cluster are exclusive" in done.stderr


def test_unloadable_kubeconfig_is_one_line_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("{not: [a kubeconfig")
    done = subprocess.run(
        [*SERVE, "--plugins-from-cluster", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(broken)},
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "kubeconfig" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
