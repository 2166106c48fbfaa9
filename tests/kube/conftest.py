"""The generic client (`webhook.kube`) against the loopback fake API server
(`tests/support/kubefake.py`), spoken to over real HTTP."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook.kube import Cluster

HERE = Path(__file__).resolve().parent


def _load_fakeapi() -> Any:
    # importlib import mode: sibling modules are not importable by name
    spec = importlib.util.spec_from_file_location(
        "kube_fakeapi", HERE.parent / "support" / "kubefake.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fakeapi = _load_fakeapi()


@pytest.fixture
def kube() -> Iterator[Any]:
    with fakeapi.FakeKubeApi() as api:
        yield api


@pytest.fixture
def cluster(kube: Any, tmp_path: Path) -> Iterator[Cluster]:
    path = tmp_path / "kubeconfig.json"
    path.write_text(kube.kubeconfig(), encoding="utf-8")
    with Cluster.connect(str(path), request_timeout=(2.0, 5.0)) as connected:
        yield connected
