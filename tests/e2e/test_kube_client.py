"""The generic client (`webhook.kube`) against the real kube-apiserver: the answers the
loopback fake (tests/support/kubefake.py) imitates, checked at the source."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from webhook.kube import Cluster, KubeApiError, kinds

from .controlplane import ControlPlane

pytestmark = pytest.mark.realapi


@pytest.fixture
def cluster(control_plane: ControlPlane) -> Iterator[Cluster]:
    with Cluster.connect(str(control_plane.kubeconfig())) as connected:
        yield connected


def test_a_lease_create_conflicts_and_a_stale_update_is_a_conflict(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace("kube")
    leases = cluster.resource(kinds.LEASE)
    lease = {"metadata": {"name": "guard"}, "spec": {"holderIdentity": "a"}}
    created = leases.create(lease, namespace)
    assert created["kind"] == "Lease" and created["metadata"]["uid"]
    with pytest.raises(KubeApiError) as caught:
        leases.create(lease, namespace)
    assert caught.value.already_exists and caught.value.code == 409
    assert caught.value.message == 'leases.coordination.k8s.io "guard" already exists'
    assert caught.value.status["details"]["name"] == "guard"

    renewed = leases.update({**created, "spec": {"holderIdentity": "b"}}, namespace)
    with pytest.raises(KubeApiError) as caught:
        leases.update({**created, "spec": {"holderIdentity": "c"}}, namespace)
    assert caught.value.conflict and caught.value.reason == "Conflict"
    assert "the object has been modified" in caught.value.message
    assert leases.get("guard", namespace)["spec"] == renewed["spec"]

    with pytest.raises(KubeApiError) as caught:
        leases.delete("guard", namespace, resource_version=created["metadata"]["resourceVersion"])
    assert caught.value.conflict
    leases.delete("guard", namespace)
    with pytest.raises(KubeApiError) as caught:
        leases.get("guard", namespace)
    assert caught.value.not_found


def test_pages_selectors_and_patches_on_secrets(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace("kube")
    secrets = cluster.resource(kinds.SECRET)
    for index in range(5):
        secrets.create(
            {"metadata": {"name": f"s-{index}", "labels": {"tier": "a" if index % 2 else "b"}}},
            namespace,
        )
    listing = secrets.list(namespace, label_selector="tier", limit=2)
    assert sorted(s["metadata"]["name"] for s in listing.items) == [f"s-{i}" for i in range(5)]
    assert {(s["apiVersion"], s["kind"]) for s in listing.items} == {("v1", "Secret")}
    assert [
        len(page.items) for page in secrets.pages(namespace, label_selector="tier", limit=2)
    ] == [2, 2, 1]
    odd = secrets.list(namespace, label_selector="tier in (a)")
    assert sorted(s["metadata"]["name"] for s in odd.items) == ["s-1", "s-3"]

    merged = secrets.patch("s-0", {"stringData": {"k": "v"}}, namespace)
    assert merged["data"] == {"k": "dg=="}
    ops = [{"op": "add", "path": "/metadata/labels/extra", "value": "1"}]
    assert (
        secrets.patch("s-0", ops, namespace, patch_type="json")["metadata"]["labels"]["extra"]
        == "1"
    )
    applied = secrets.patch(
        "s-9", {"data": {"x": "eQ=="}}, namespace, patch_type="apply", field_manager="e2e"
    )
    assert applied["data"] == {"x": "eQ=="}
    assert applied["metadata"]["managedFields"][0]["manager"] == "e2e"


def test_status_subresource_and_strategic_merge_on_a_custom_resource(
    cluster: Cluster, argo_crds: ControlPlane, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace("kube")
    tasksets = cluster.resource(kinds.WORKFLOW_TASKSET)
    created = tasksets.create(
        {"metadata": {"name": "wf"}, "spec": {"tasks": {}}, "status": {"nodes": {}}}, namespace
    )
    assert "status" not in created
    node = {"phase": "Succeeded", "message": "ok"}
    patched = tasksets.patch_status(
        "wf", {"spec": {"tasks": {"x": {}}}, "status": {"nodes": {"n": node}}}, namespace
    )
    assert patched["spec"] == {"tasks": {}} and patched["status"]["nodes"] == {"n": node}
    main = tasksets.patch("wf", {"status": {"nodes": {}}, "spec": {"tasks": {"t": {}}}}, namespace)
    assert main["status"]["nodes"] == {"n": node} and "t" in main["spec"]["tasks"]
    with pytest.raises(KubeApiError) as caught:
        tasksets.patch("wf", {"spec": {}}, namespace, patch_type="strategic")
    assert caught.value.code == 415


def test_watch_from_a_list_version(cluster: Cluster, make_namespace: Callable[..., str]) -> None:
    namespace = make_namespace("kube")
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    configmaps.create({"metadata": {"name": "before", "labels": {"p": "1"}}}, namespace)
    listing = configmaps.list(namespace, label_selector="p")
    watch = configmaps.watch(
        namespace, resource_version=listing.resource_version, timeout=30, label_selector="p"
    )

    def change() -> None:
        time.sleep(0.3)
        configmaps.create({"metadata": {"name": "new", "labels": {"p": "1"}}}, namespace)
        configmaps.patch("new", {"data": {"k": "v"}}, namespace)
        configmaps.patch("before", {"metadata": {"labels": {"p": None}}}, namespace)  # leaves

    threading.Thread(target=change, daemon=True).start()
    seen: list[tuple[str, str]] = []
    for event in watch:
        if event.type != "BOOKMARK":
            seen.append((event.type, event.object["metadata"]["name"]))
        if len(seen) == 3:
            watch.stop()
    assert seen == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "before")]


def test_a_watch_ends_at_its_server_side_timeout(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    """The server ends the watch (no error): the caller re-watches from the last version.
    (410 on a compacted version is the fake's: a fresh API server's watch cache cannot be
    made to forget on demand.)"""
    namespace = make_namespace("kube")
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    version = configmaps.list(namespace).resource_version
    started = time.monotonic()
    events = list(configmaps.watch(namespace, resource_version=version, timeout=1))
    assert [e.type for e in events if e.type != "BOOKMARK"] == []
    assert time.monotonic() - started < 10
