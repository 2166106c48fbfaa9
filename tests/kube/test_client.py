"""The generic resource client on real HTTP: reads, writes, pages, watches and errors."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from webhook.kube import Cluster, Kind, KubeApiError, kinds

PLUGIN_LABEL = "workflows.argoproj.io/configmap-type"


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


# --------------------------------------------------------------------------- kinds


def test_paths_follow_the_api_servers_layout() -> None:
    assert kinds.CONFIG_MAP.path("argo", "x") == "/api/v1/namespaces/argo/configmaps/x"
    assert kinds.CONFIG_MAP.path() == "/api/v1/configmaps"  # every namespace
    assert (
        kinds.WORKFLOW_TASKSET.path("argo", "wf", "status")
        == "/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtasksets/wf/status"
    )
    assert (
        kinds.VALIDATING_WEBHOOK_CONFIGURATION.path(name="guard")
        == "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/guard"
    )
    assert kinds.LEASE.api_version == "coordination.k8s.io/v1"
    assert kinds.SECRET.api_version == "v1"
    assert kinds.POLICY_REPORT.resource == "policyreports.wgpolicyk8s.io"


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "subresource"),
    [
        (kinds.SECRET, None, "s", ""),  # a namespaced object needs its namespace
        (kinds.CLUSTER_POLICY_REPORT, "argo", None, ""),  # cluster-scoped: no namespace
        (kinds.SECRET, "argo", "a/b", ""),  # a name is one path segment
        (kinds.SECRET, "..", "s", ""),
        (kinds.SECRET, "argo", None, "status"),  # a subresource of what?
    ],
)
def test_impossible_paths_are_programming_errors(
    kind: Kind, namespace: str | None, name: str | None, subresource: str
) -> None:
    with pytest.raises(ValueError):
        kind.path(namespace, name, subresource)


# --------------------------------------------------------------------------- a new kind in a few lines


def test_a_lease_create_conflicts_then_reads_back(cluster: Cluster, kube: Any) -> None:
    """Leader election's first step: create the Lease; a second create is AlreadyExists,
    with the API server's Status kept whole."""
    leases = cluster.resource(kinds.LEASE)
    lease = {"metadata": {"name": "plugin-guard"}, "spec": {"holderIdentity": "pod-a"}}
    created = leases.create(lease, namespace="argo")
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    assert created["apiVersion"] == "coordination.k8s.io/v1" and created["kind"] == "Lease"

    with pytest.raises(KubeApiError) as caught:
        leases.create({**lease, "spec": {"holderIdentity": "pod-b"}}, namespace="argo")
    error = caught.value
    assert error.already_exists and not error.conflict and not error.transient
    assert (error.code, error.reason) == (409, "AlreadyExists")
    assert error.message == 'leases.coordination.k8s.io "plugin-guard" already exists'
    assert error.status["details"] == {
        "name": "plugin-guard",
        "group": "coordination.k8s.io",
        "kind": "leases",
    }
    assert leases.get("plugin-guard", namespace="argo")["spec"] == {"holderIdentity": "pod-a"}
    [post, _] = kube.requests_matching("POST", "/namespaces/argo/leases")
    assert post.headers["authorization"] == "Bearer fake-api-bearer-token"


def test_a_secret_update_with_a_stale_version_is_a_conflict(cluster: Cluster) -> None:
    secrets = cluster.resource(kinds.SECRET)
    first = secrets.create(
        {"metadata": {"name": "tls", "namespace": "argo"}, "data": {"ca.crt": "QQ=="}}
    )
    second = secrets.update({**first, "data": {"ca.crt": "Qg=="}})  # from the object's namespace
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert second["metadata"]["uid"] == first["metadata"]["uid"]

    with pytest.raises(KubeApiError) as caught:
        secrets.update({**first, "data": {"ca.crt": "Qw=="}}, namespace="argo")  # stale
    assert caught.value.conflict and not caught.value.already_exists
    assert (caught.value.code, caught.value.reason) == (409, "Conflict")
    assert "the object has been modified" in caught.value.message
    assert secrets.get("tls", "argo")["data"] == {"ca.crt": "Qg=="}

    # Without a resourceVersion, an update is unconditional (the API server allows it).
    unconditional = {"metadata": {"name": "tls"}, "data": {"ca.crt": "RA=="}}
    assert secrets.update(unconditional, namespace="argo")["data"] == {"ca.crt": "RA=="}


def test_cluster_scoped_webhook_configuration_caBundle_patch(cluster: Cluster) -> None:
    hooks = cluster.resource(kinds.VALIDATING_WEBHOOK_CONFIGURATION)
    hooks.create({"metadata": {"name": "guard"}, "webhooks": [{"name": "v.guard.io"}]})
    patch = [{"op": "add", "path": "/webhooks/0/clientConfig", "value": {"caBundle": "Q0E="}}]
    patched = hooks.patch("guard", patch, patch_type="json")
    assert patched["webhooks"][0]["clientConfig"] == {"caBundle": "Q0E="}
    assert "namespace" not in patched["metadata"]
    assert [h["metadata"]["name"] for h in hooks.list().items] == ["guard"]


# --------------------------------------------------------------------------- reads


def test_list_follows_pages_and_fills_in_the_kind(cluster: Cluster, kube: Any) -> None:
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    for index in range(7):
        configmaps.create(configmap(f"cm-{index}", {PLUGIN_LABEL: "ExecutorPlugin"}), "argo")
    configmaps.create(configmap("unlabelled"), "argo")
    configmaps.create(configmap("elsewhere", {PLUGIN_LABEL: "x"}), "other")

    listing = configmaps.list("argo", label_selector=PLUGIN_LABEL, limit=3)
    assert [item["metadata"]["name"] for item in listing.items] == [f"cm-{i}" for i in range(7)]
    assert listing.resource_version == kube.resource_version
    assert {(item["apiVersion"], item["kind"]) for item in listing.items} == {("v1", "ConfigMap")}
    gets = kube.requests_matching("GET", "/namespaces/argo/configmaps")
    assert [r.query.get("limit") for r in gets] == ["3", "3", "3"]
    assert "continue" not in gets[0].query and gets[1].query["continue"]

    pages = list(configmaps.pages(label_selector=PLUGIN_LABEL, limit=4))  # every namespace
    assert [len(page.items) for page in pages] == [4, 4]
    assert pages[0].continue_token and not pages[1].continue_token


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier=web", ["a"]),
        ("tier==web,app=x", ["a"]),
        ("tier!=web", ["b", "c"]),
        ("tier in (db, cache)", ["b"]),
        ("tier notin (db)", ["a", "c"]),
    ],
)
def test_label_selectors(cluster: Cluster, selector: str, names: list[str]) -> None:
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    configmaps.create(configmap("a", {"tier": "web", "app": "x"}), "argo")
    configmaps.create(configmap("b", {"tier": "db"}), "argo")
    configmaps.create(configmap("c"), "argo")
    listing = configmaps.list("argo", label_selector=selector)
    assert [item["metadata"]["name"] for item in listing.items] == names


def test_an_expired_continue_token_is_gone(cluster: Cluster, kube: Any) -> None:
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    for index in range(3):
        configmaps.create(configmap(f"cm-{index}"), "argo")
    pages = configmaps.pages("argo", limit=2)
    next(pages)
    configmaps.create(configmap("later"), "argo")
    kube.compact()  # the first page's version is history now
    with pytest.raises(KubeApiError) as caught:
        next(pages)
    assert caught.value.gone and caught.value.reason == "Expired"


def test_get_of_a_missing_object_is_not_found(cluster: Cluster) -> None:
    with pytest.raises(KubeApiError) as caught:
        cluster.resource(kinds.SECRET).get("nope", namespace="argo")
    assert caught.value.not_found and caught.value.message == 'secrets "nope" not found'


# --------------------------------------------------------------------------- writes


def test_patch_types(cluster: Cluster, kube: Any) -> None:
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    configmaps.create(configmap("cm", a="1", b="2"), "argo")
    assert configmaps.patch("cm", {"data": {"b": None, "c": "3"}}, "argo")["data"] == {
        "a": "1",
        "c": "3",
    }
    ops = [{"op": "replace", "path": "/data/a", "value": "one"}]
    assert configmaps.patch("cm", ops, "argo", patch_type="json")["data"]["a"] == "one"
    strategic = configmaps.patch("cm", {"data": {"d": "4"}}, "argo", patch_type="strategic")
    assert strategic["data"] == {"a": "one", "c": "3", "d": "4"}

    with pytest.raises(KubeApiError) as caught:  # a failed JSON patch test is Invalid
        configmaps.patch(
            "cm", [{"op": "test", "path": "/data/a", "value": "1"}], "argo", patch_type="json"
        )
    assert caught.value.code == 422

    with pytest.raises(KubeApiError) as caught:  # custom resources have no strategic merge
        cluster.resource(kinds.POLICY_REPORT).patch("r", {}, "argo", patch_type="strategic")
    assert caught.value.code == 415

    [*_, last] = kube.requests_matching("PATCH")
    assert last.headers["content-type"] == "application/strategic-merge-patch+json"


def test_server_side_apply_creates_then_merges(cluster: Cluster, kube: Any) -> None:
    reports = cluster.resource(kinds.POLICY_REPORT)
    intent = {"metadata": {"labels": {"app": "guard"}}, "summary": {"pass": 1}}
    created = reports.patch("cm-report", intent, "argo", patch_type="apply", field_manager="audit")
    assert created["kind"] == "PolicyReport" and created["summary"] == {"pass": 1}
    again = reports.patch("cm-report", {"summary": {"fail": 2}}, "argo", patch_type="apply")
    assert again["summary"] == {"pass": 1, "fail": 2}
    first, second = kube.requests_matching("PATCH", "/policyreports/cm-report")
    assert first.headers["content-type"] == "application/apply-patch+yaml"
    assert first.query == {"fieldManager": "audit"}
    assert second.query == {"fieldManager": "argo-plugin-guard"}
    assert first.body["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    assert first.body["metadata"]["name"] == "cm-report"


def test_status_subresource_changes_only_status(cluster: Cluster, kube: Any) -> None:
    tasksets = cluster.resource(kinds.WORKFLOW_TASKSET)
    body = {"metadata": {"name": "wf"}, "spec": {"tasks": {}}, "status": {"nodes": {"x": {}}}}
    created = tasksets.create(body, "argo")
    assert "status" not in created  # dropped on create, as for any CRD with /status

    patched = tasksets.patch_status(
        "wf",
        {"spec": {"tasks": {"evil": {}}}, "status": {"nodes": {"n": {"phase": "Succeeded"}}}},
        "argo",
    )
    assert patched["spec"] == {"tasks": {}}
    assert patched["status"] == {"nodes": {"n": {"phase": "Succeeded"}}}

    main = tasksets.patch("wf", {"spec": {"tasks": {"t": {}}}, "status": None}, "argo")
    assert main["spec"] == {"tasks": {"t": {}}} and main["status"] == patched["status"]
    assert main["metadata"]["generation"] == 2  # a spec change

    replaced = tasksets.update_status({**main, "status": {"nodes": {}}}, "argo")
    assert replaced["status"] == {"nodes": {}} and replaced["spec"] == main["spec"]
    assert kube.nodes("wf") == {}


def test_generate_name_and_delete_preconditions(cluster: Cluster) -> None:
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    created = configmaps.create({"metadata": {"generateName": "report-"}}, "argo")
    name = created["metadata"]["name"]
    assert name.startswith("report-") and len(name) == len("report-") + 5
    configmaps.patch(name, {"data": {"a": "1"}}, "argo")
    with pytest.raises(KubeApiError) as caught:
        configmaps.delete(name, "argo", resource_version=created["metadata"]["resourceVersion"])
    assert caught.value.conflict
    deleted = configmaps.delete(name, "argo", uid=created["metadata"]["uid"])
    assert deleted["metadata"]["name"] == name
    with pytest.raises(KubeApiError) as caught:
        configmaps.delete(name, "argo")
    assert caught.value.not_found


# --------------------------------------------------------------------------- watch


def _in_background(action: Any, delay: float = 0.1) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_watch_streams_events_and_bookmarks_from_a_version(cluster: Cluster, kube: Any) -> None:
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    configmaps.create(configmap("before", {PLUGIN_LABEL: "ExecutorPlugin"}), "argo")
    listing = configmaps.list("argo", label_selector=PLUGIN_LABEL)

    def stored(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        obj = {"apiVersion": "v1", "kind": "ConfigMap", **configmap(name, labels)}
        obj["metadata"]["namespace"] = "argo"
        return obj

    def change() -> None:
        kube.apply(stored("new", {PLUGIN_LABEL: "p"}))
        kube.update("new", {"data": {"k": "v"}})
        kube.update("before", {"metadata": {"labels": {PLUGIN_LABEL: None}}})  # leaves
        kube.apply(stored("ignored"))
        kube.bookmark()
        time.sleep(0.2)
        kube.close_watches()

    _in_background(change)
    events = list(
        configmaps.watch(
            "argo",
            resource_version=listing.resource_version,
            timeout=10,
            label_selector=PLUGIN_LABEL,
        )
    )
    assert [(e.type, e.object["metadata"]["name"]) for e in events[:3]] == [
        ("ADDED", "new"),
        ("MODIFIED", "new"),
        ("DELETED", "before"),
    ]
    assert len(events) == 4  # "ignored" never matched the selector
    assert events[-1].type == "BOOKMARK" and events[-1].resource_version == kube.resource_version
    versions = [int(e.resource_version) for e in events]
    assert versions == sorted(versions) and versions[0] > int(listing.resource_version)
    [request] = kube.requests_matching("GET", "/namespaces/argo/configmaps")[-1:]
    assert request.query["allowWatchBookmarks"] == "true"
    assert request.query["timeoutSeconds"] == "10"
    assert request.query["resourceVersion"] == listing.resource_version


def test_watch_410_is_gone_and_a_relist_recovers(cluster: Cluster, kube: Any) -> None:
    """The informer loop every caller writes: list, watch; on `gone`, list again."""
    tasksets = cluster.resource(kinds.WORKFLOW_TASKSET)
    kube.create("old", {})
    stale = tasksets.list("argo").resource_version
    kube.create("new", {})
    kube.compact()
    with pytest.raises(KubeApiError) as caught:
        list(tasksets.watch("argo", resource_version=stale, timeout=5))
    assert caught.value.gone and caught.value.status["reason"] == "Expired"
    assert caught.value.status["code"] == 410

    fresh = tasksets.list("argo")
    assert [t["metadata"]["name"] for t in fresh.items] == ["new", "old"]
    _in_background(kube.close_watches)
    assert list(tasksets.watch("argo", resource_version=fresh.resource_version, timeout=5)) == []


def test_watch_stop_from_another_thread_ends_a_blocked_read(cluster: Cluster) -> None:
    watch = cluster.resource(kinds.CONFIG_MAP).watch("argo", resource_version="1", timeout=60)
    _in_background(watch.stop, delay=0.3)
    started = time.monotonic()
    assert list(watch) == []
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- errors


def test_an_error_keeps_the_api_servers_status(cluster: Cluster, kube: Any) -> None:
    kube.fail("GET", "/namespaces/argo/secrets/tls", 403, 'secrets "tls" is forbidden')
    with pytest.raises(KubeApiError) as caught:
        cluster.resource(kinds.SECRET).get("tls", "argo")
    error = caught.value
    assert (error.code, error.reason, error.message) == (
        403,
        "Forbidden",
        'secrets "tls" is forbidden',
    )
    assert error.status["kind"] == "Status" and error.status["code"] == 403
    assert str(error) == 'Forbidden: secrets "tls" is forbidden'
    assert not error.transient


@pytest.mark.parametrize(
    ("code", "message", "transient"),
    [
        (500, "etcdserver: leader changed", True),
        (500, "etcdserver: request is too large", False),
        (429, "too many requests", True),
        (422, "invalid", False),
    ],
)
def test_transient_errors(
    cluster: Cluster, kube: Any, code: int, message: str, transient: bool
) -> None:
    kube.fail("PATCH", "/status", code, message)
    kube.create("wf", {})
    with pytest.raises(KubeApiError) as caught:
        cluster.resource(kinds.WORKFLOW_TASKSET).patch_status("wf", {"status": {}}, "argo")
    assert caught.value.code == code and caught.value.transient is transient


def test_a_transport_failure_is_code_0_with_its_cause(tmp_path: Path, kube: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "kubeconfig.json"
    path.write_text(kube.kubeconfig().replace(str(kube.port), str(port)), encoding="utf-8")
    with Cluster.connect(str(path)) as cluster, pytest.raises(KubeApiError) as caught:
        cluster.resource(kinds.CONFIG_MAP).list("argo")
    error = caught.value
    assert error.code == 0 and error.transient and error.status == {}
    assert error.__cause__ is not None and type(error.__cause__).__module__.startswith("urllib3")


def test_every_call_has_a_timeout(tmp_path: Path, kube: Any) -> None:
    path = tmp_path / "kubeconfig.json"
    path.write_text(kube.kubeconfig(), encoding="utf-8")
    kube.stall("GET", "/namespaces/argo/configmaps/slow", 2.0, times=2)
    started = time.monotonic()
    with (
        Cluster.connect(str(path), request_timeout=(1.0, 0.3)) as cluster,
        pytest.raises(KubeApiError) as caught,
    ):
        cluster.resource(kinds.CONFIG_MAP).get("slow", "argo")
    assert caught.value.code == 0 and "timed out" in caught.value.message.lower()
    assert time.monotonic() - started < 1.9  # neither attempt waited for the answer
