"""The real API server tier: etcd + kube-apiserver (+ kubectl) from KUBEBUILDER_ASSETS or
the project's cache folder (tests/e2e/assets.py), one pair per test session.

Every test here carries the `realapi` marker. Without the binaries the tests are skipped
with one reason saying how to get them (`make test` does not collect this tier at all and
prints that line itself); with PLUGIN_GUARD_E2E=require (`make e2e`, `.ci/run`) a missing
binary fails the run instead. docs/e2e.md describes the fixtures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .assets import find_assets, missing_message
from .controlplane import ControlPlane, User
from .guard import USERS, GuardServer

HERE = Path(__file__).resolve().parent
ARGO_CRDS = HERE / "manifests" / "argo-crds.yaml"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    assets = find_assets()
    missing = assets.missing()
    required = os.environ.get("PLUGIN_GUARD_E2E") == "require"
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.realapi)
        if missing and not required:
            item.add_marker(pytest.mark.skip(reason=missing_message(assets)))


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver on loopback, RBAC on; users: the admin (`ADMIN`, the
    default of every helper) and `tests/e2e/guard.py` USERS (the chart's ServiceAccount,
    the README agent's ServiceAccount, an unprivileged `e2e-nobody`)."""
    assets = find_assets()
    if assets.missing():
        pytest.fail(missing_message(assets), pytrace=False)
    plane = ControlPlane(assets, USERS)
    try:
        plane.start()
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"the API server did not start: {exc}\n{plane.logs()}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def argo_crds(control_plane: ControlPlane) -> ControlPlane:
    """The minimal Argo CRDs (manifests/argo-crds.yaml), established."""
    control_plane.kubectl("apply", "-f", str(ARGO_CRDS), check=True)
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        str(ARGO_CRDS),
        check=True,
    )
    return control_plane


@pytest.fixture
def make_namespace(control_plane: ControlPlane) -> Callable[..., str]:
    """`make_namespace(prefix="t", labels={...}) -> name`: a fresh namespace per call.
    Namespaces are never deleted (no namespace controller finalizes them): fresh names
    keep tests apart."""

    def make(prefix: str = "e2e", labels: Mapping[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        doc: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        control_plane.apply([doc], check=True)
        return name

    return make


@pytest.fixture
def start_guard(control_plane: ControlPlane) -> Iterator[Callable[..., GuardServer]]:
    """`start_guard(args=(), user=None) -> GuardServer`: a real `plugin-guard serve` on a
    loopback port (stopped after the test). With `user`, its KUBECONFIG is that user's
    (for `--plugins-from-cluster`)."""
    servers: list[GuardServer] = []

    def start(args: Sequence[str] = (), user: User | None = None, **kwargs: Any) -> GuardServer:
        server = GuardServer(control_plane, args, user=user, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
