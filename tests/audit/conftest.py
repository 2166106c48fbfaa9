"""`plugin-guard audit` against the loopback fake API server (tests/support/kubefake.py),
through the real `kubernetes` client; plugin ConfigMaps written here from the format."""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook.kube import Cluster

HERE = Path(__file__).resolve().parent
TYPE_LABEL = "workflows.argoproj.io/configmap-type"


def _load_fakeapi() -> Any:
    # importlib import mode: sibling modules are not importable by name
    spec = importlib.util.spec_from_file_location(
        "audit_fakeapi", HERE.parent / "support" / "kubefake.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fakeapi = _load_fakeapi()

COMPLIANT_SIDECAR = """\
name: {name}
image: example/{name}:1.0
ports: [{{containerPort: {port}}}]
resources: {{requests: {{cpu: 100m, memory: 32Mi}}, limits: {{cpu: 200m, memory: 64Mi}}}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {{drop: [ALL]}}
  seccompProfile: {{type: RuntimeDefault}}
"""
# no resources, root: Enforce policies fail, the read-only root filesystem warns
BARE_SIDECAR = """\
name: {name}
image: example/{name}:1.0
ports: [{{containerPort: {port}}}]
securityContext: {{runAsUser: 0}}
"""


def plugin_configmap(
    name: str, namespace: str = "argo", *, port: int = 4355, compliant: bool = True
) -> dict[str, Any]:
    sidecar = (COMPLIANT_SIDECAR if compliant else BARE_SIDECAR).format(name=name, port=port)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{name}-executor-plugin",
            "namespace": namespace,
            "labels": {TYPE_LABEL: "ExecutorPlugin"},
        },
        "data": {
            "sidecar.automountServiceAccountToken": "false",
            "sidecar.container": sidecar,
        },
    }


def fixed(configmap: dict[str, Any]) -> dict[str, Any]:
    name = configmap["metadata"]["name"].removesuffix("-executor-plugin")
    out = copy.deepcopy(configmap)
    port = int(re.search(r"containerPort: (\d+)", out["data"]["sidecar.container"])[1])  # type: ignore[index]
    out["data"]["sidecar.container"] = COMPLIANT_SIDECAR.format(name=name, port=port)
    return out


@pytest.fixture
def kube() -> Iterator[Any]:
    with fakeapi.FakeKubeApi() as api:
        yield api


@pytest.fixture
def kubeconfig(kube: Any, tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig.json"
    path.write_text(kube.kubeconfig(), encoding="utf-8")
    return str(path)


@pytest.fixture
def cluster(kubeconfig: str) -> Iterator[Cluster]:
    with Cluster.connect(kubeconfig, request_timeout=(2.0, 5.0)) as connected:
        yield connected
