"""Report building is pure: objects + the policy set -> PolicyReport documents."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from webhook.audit.report import (
    API_VERSION,
    audit_objects,
    build_reports,
    carry_timestamps,
    same_content,
    violation_counts,
)
from webhook.audit.service import cluster_plugins
from webhook.errors import PolicyLoadError
from webhook.policy import EvaluationContext, bundled_policies_dir, load_policies

from .conftest import plugin_configmap

POLICIES = load_policies()


def _reports(objects: list[dict], **kwargs: object) -> dict[tuple[str, str | None], dict]:
    for index, obj in enumerate(objects):
        obj["metadata"].setdefault("uid", f"uid-{index}")
    context = EvaluationContext(plugins=cluster_plugins(objects))
    audited = audit_objects(objects, POLICIES, context)
    reports = build_reports(audited, now=1_700_000_000, **kwargs)  # type: ignore[arg-type]
    return {(r["kind"], r["metadata"].get("namespace")): r for r in reports}


def _results(report: dict, name: str) -> dict[str, str]:
    return {
        r["policy"]: r["result"] for r in report["results"] if r["resources"][0]["name"] == name
    }


def test_one_report_per_namespace_and_a_cluster_report() -> None:
    reports = _reports(
        [plugin_configmap("a", "team-a"), plugin_configmap("b", "team-b", port=4356)]
    )
    assert set(reports) == {
        ("PolicyReport", "team-a"),
        ("PolicyReport", "team-b"),
        ("ClusterPolicyReport", None),
    }
    report = reports[("PolicyReport", "team-a")]
    assert report["apiVersion"] == API_VERSION
    assert report["metadata"]["name"] == "plugin-guard"
    assert report["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "plugin-guard"}
    assert reports[("ClusterPolicyReport", None)]["results"] == []
    results = _results(report, "a-executor-plugin")
    # a compliant plugin: every policy that looks at plugins passes
    assert results and set(results.values()) == {"pass"}
    assert "plugin-security-context" in results
    assert "pod-security-restricted" not in results  # does not apply to ConfigMaps: not listed
    first = report["results"][0]
    assert first["source"] == "plugin-guard"
    assert first["timestamp"] == {"seconds": 1_700_000_000, "nanos": 0}
    assert first["resources"] == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": "team-a",
            "name": "a-executor-plugin",
            "uid": "uid-0",
        }
    ]
    assert report["summary"] == {"pass": len(results), "fail": 0, "warn": 0, "error": 0, "skip": 0}


def test_violations_are_fail_or_warn_with_the_policy_severity() -> None:
    bad = plugin_configmap("bad", compliant=False)
    latest = plugin_configmap("latest", port=4356)
    latest["data"]["sidecar.container"] = latest["data"]["sidecar.container"].replace(
        "example/latest:1.0", "example/latest:latest"
    )
    report = _reports([bad, latest])[("PolicyReport", "argo")]
    bad_results = _results(report, "bad-executor-plugin")
    assert bad_results["plugin-resources"] == "fail"  # Enforce
    assert bad_results["plugin-security-context"] == "fail"
    assert bad_results["plugin-read-only-root-filesystem"] == "warn"  # Warn
    assert _results(report, "latest-executor-plugin")["plugin-image-pinned"] == "warn"
    by_policy = {
        r["policy"]: r
        for r in report["results"]
        if r["resources"][0]["name"] == "bad-executor-plugin"
    }
    assert by_policy["plugin-resources"]["severity"] == "high"  # Enforce's default
    assert by_policy["plugin-read-only-root-filesystem"]["severity"] == "medium"
    assert by_policy["plugin-resources"]["category"] == "Argo executor plugins"
    assert "requests" in by_policy["plugin-resources"]["message"]
    summary = report["summary"]
    assert summary["fail"] == sum(r["result"] == "fail" for r in report["results"]) > 0
    assert summary["warn"] == sum(r["result"] == "warn" for r in report["results"]) >= 2


def test_port_collisions_between_installed_plugins_fail() -> None:
    report = _reports([plugin_configmap("one"), plugin_configmap("two")])[("PolicyReport", "argo")]
    assert _results(report, "one-executor-plugin")["plugin-unique-ports"] == "fail"
    assert _results(report, "two-executor-plugin")["plugin-unique-ports"] == "fail"


def test_cluster_scoped_kinds_go_to_the_cluster_report() -> None:
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterWorkflowTemplate",
        "metadata": {"name": "shared"},
        "spec": {"templates": [{"name": "main", "plugin": {"hello": {}, "other": {}}}]},
    }
    reports = _reports([template])
    results = _results(reports[("ClusterPolicyReport", None)], "shared")
    assert results["argo-plugin-templates"] == "fail"  # two keys in one plugin template


def test_named_namespaces_get_an_empty_report() -> None:
    reports = _reports([], namespaces=["gone"])
    assert reports[("PolicyReport", "gone")]["results"] == []
    assert reports[("PolicyReport", "gone")]["summary"]["pass"] == 0


def test_unchanged_results_keep_their_timestamp_and_need_no_write() -> None:
    objects = [plugin_configmap("a"), plugin_configmap("b", compliant=False, port=4356)]
    context = EvaluationContext(plugins=cluster_plugins(objects))
    for index, obj in enumerate(objects):
        obj["metadata"]["uid"] = f"uid-{index}"
    first = build_reports(audit_objects(objects, POLICIES, context), now=100)
    second = build_reports(audit_objects(objects, POLICIES, context), now=200)
    merged = carry_timestamps(second[1], first[1])
    assert {r["timestamp"]["seconds"] for r in merged["results"]} == {100}
    assert same_content(merged, first[1])
    # b fixed: its results change (new timestamps), a's stay
    objects[1] = plugin_configmap("b", port=4356)
    objects[1]["metadata"]["uid"] = "uid-1"
    third = carry_timestamps(
        build_reports(audit_objects(objects, POLICIES, context), now=300)[1], first[1]
    )
    assert not same_content(third, first[1])
    stamps = {
        (r["resources"][0]["name"], r["policy"]): r["timestamp"]["seconds"]
        for r in third["results"]
    }
    assert stamps[("a-executor-plugin", "plugin-resources")] == 100
    assert stamps[("b-executor-plugin", "plugin-resources")] == 300  # was fail, now pass
    assert stamps[("b-executor-plugin", "plugin-image-pinned")] == 100  # passed before too
    assert all(r["result"] != "fail" for r in third["results"])


def test_violation_counts_by_policy_namespace_and_result() -> None:
    objects = [plugin_configmap("a", compliant=False), plugin_configmap("b", "x", compliant=False)]
    counts = violation_counts(audit_objects(objects, POLICIES, EvaluationContext()))
    assert counts[("plugin-resources", "argo", "fail")] == 1
    assert counts[("plugin-resources", "x", "fail")] == 1
    assert not any(result == "pass" for (_, _, result) in counts)


def test_secret_values_stay_out_of_messages() -> None:
    leaky = plugin_configmap("leaky")
    token = "ghp_" + "Zq8xR2mK7vT4nB1cW9yL3pD6sF0hJ5gA2eQu"
    leaky["data"]["sidecar.container"] += f"env: [{{name: GITHUB_TOKEN, value: {token}}}]\n"
    report = _reports([leaky])[("PolicyReport", "argo")]
    assert _results(report, "leaky-executor-plugin")["no-inline-secrets"] == "fail"
    assert token not in yaml.safe_dump(report)
    assert token[4:12] not in yaml.safe_dump(report)


def _policy_copy(tmp_path: Path, policy_id: str, **changes: object) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    source = bundled_policies_dir() / f"{policy_id}.yaml"
    document = yaml.safe_load(source.read_text())
    document.update(changes)
    (folder / source.name).write_text(yaml.safe_dump(document))
    return folder


def test_severity_and_category_come_from_the_policy(tmp_path: Path) -> None:
    folder = _policy_copy(tmp_path, "plugin-resources", severity="critical", category="Capacity")
    policies = load_policies(folder)
    audited = audit_objects([plugin_configmap("a", compliant=False)], policies, EvaluationContext())
    (result,) = build_reports(audited)[1]["results"]
    assert (result["severity"], result["category"], result["result"]) == (
        "critical",
        "Capacity",
        "fail",
    )


def test_an_unknown_severity_is_a_load_error(tmp_path: Path) -> None:
    folder = _policy_copy(tmp_path, "plugin-resources", severity="severe")
    with pytest.raises(PolicyLoadError, match="severity"):
        load_policies(folder)
    shutil.rmtree(folder)
