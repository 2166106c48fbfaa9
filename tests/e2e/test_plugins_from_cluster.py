"""`serve --plugins-from-cluster` as the chart's ServiceAccount, with the chart's read-only
RBAC (`plugins.fromCluster.enabled`): the registry is the cluster's own plugin
ConfigMaps, listed and watched through the real API server, and the cross-plugin check
(`plugin-unique-ports`) sees what is installed, and what is removed."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .controlplane import ControlPlane, wait_until
from .guard import CORPUS, GUARD_USER, GuardServer, Installation, corpus_plugin, installed

pytestmark = pytest.mark.realapi

# Both listen on 4355 (README: "hello and argocd both listen on 4355").
HELLO = CORPUS / "hello" / "hello-executor-plugin-configmap.yaml"
ARGOCD = CORPUS / "argocd" / "argocd-executor-plugin-configmap.yaml"


def readiness(server: GuardServer) -> dict[str, Any]:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=server.client_context()),
    )
    with opener.open(f"{server.url}/readyz", timeout=5) as response:
        return dict(json.loads(response.read()))


@pytest.fixture(scope="module")
def chart(control_plane: ControlPlane) -> Iterator[Installation]:
    server = GuardServer(control_plane, ["--plugins-from-cluster"], user=GUARD_USER)
    values = {"plugins": {"fromCluster": {"enabled": True}}}
    try:
        with installed(control_plane, server, values) as installation:
            # the registry lists once the chart's RBAC exists (it retries until then)
            wait_until(
                lambda: "problems" not in readiness(server), 60, "the cluster registry", 0.25
            )
            yield installation
    finally:
        server.stop()


def dry_run(control_plane: ControlPlane, doc: dict[str, Any]) -> Any:
    return control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc))


def test_the_chart_rbac_is_read_only_for_the_server(
    chart: Installation, control_plane: ControlPlane
) -> None:
    def can(verb: str) -> str:
        result = control_plane.kubectl(
            "auth",
            "can-i",
            verb,
            "configmaps",
            "--all-namespaces",
            f"--as={GUARD_USER.name}",
            *[f"--as-group={g}" for g in GUARD_USER.groups],
        )
        return result.stdout.strip()

    assert [can(v) for v in ("list", "watch")] == ["yes", "yes"]
    assert [can(v) for v in ("get", "create", "update", "delete")] == ["no", "no", "no", "no"]


def test_an_installed_plugin_takes_its_port_until_it_is_removed(
    chart: Installation, control_plane: ControlPlane, make_namespace
) -> None:
    ns = make_namespace("registry")
    argocd = corpus_plugin(ARGOCD, ns)
    assert dry_run(control_plane, argocd).returncode == 0  # alone, it is allowed

    control_plane.apply([corpus_plugin(HELLO, ns)], check=True)

    def port_taken() -> bool:
        result = dry_run(control_plane, argocd)
        return result.returncode == 1 and "[plugin-unique-ports]" in result.stderr

    # the server learns of hello through its watch, not through this request
    wait_until(port_taken, 30, "the registry to see hello-executor-plugin", interval=0.2)
    denied = control_plane.apply([argocd])
    assert denied.returncode == 1
    assert "denied the request" in denied.stderr
    assert "[plugin-unique-ports]" in denied.stderr
    assert "port 4355 is already used by plugin 'hello'" in denied.stderr, denied.stderr
    assert readiness(chart.server)["plugins"] >= 1

    control_plane.kubectl("delete", "configmap", "hello-executor-plugin", "-n", ns, check=True)
    wait_until(
        lambda: dry_run(control_plane, argocd).returncode == 0,
        30,
        "the registry to forget hello-executor-plugin",
        interval=0.2,
    )
    control_plane.apply([argocd], check=True)
