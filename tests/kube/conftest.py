"""The generic client (`webhook.kube`) against the loopback fake API server
(`tests/support/kubefake.py`), spoken to over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubefake as fakeapi
from webhook.kube import Cluster

HERE = Path(__file__).resolve().parent


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
