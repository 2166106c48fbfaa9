"""The audit against the loopback fake API: reports created, updated in place, results
leaving with fixed and deleted objects, 409s survived, a missing CRD."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.audit.service import Auditor
from webhook.kube import Cluster
from webhook.policy import bundled_policies_dir, load_policies

from .conftest import fixed, plugin_configmap

POLICIES = load_policies()
PLUGIN_GUARD = [sys.executable, "-m", "webhook"]


def _reports(kube: Any, namespace: str | None = None) -> list[dict[str, Any]]:
    return kube.objects("policyreports", namespace)


def _results_of(report: dict[str, Any], name: str) -> dict[str, str]:
    return {
        r["policy"]: r["result"] for r in report["results"] if r["resources"][0]["name"] == name
    }


def test_reports_created_then_updated_in_place(kube: Any, cluster: Cluster) -> None:
    kube.apply(plugin_configmap("good"))
    kube.apply(plugin_configmap("bad", compliant=False, port=4356))
    kube.apply(plugin_configmap("other", "team-b", port=4357))
    auditor = Auditor(cluster, write_reports=True)

    run = auditor.run(POLICIES)
    assert run.written is not None and run.written.created == 3  # argo, team-b, cluster
    (argo,) = _reports(kube, "argo")
    assert argo["metadata"]["name"] == "plugin-guard"
    assert _results_of(argo, "bad-executor-plugin")["plugin-resources"] == "fail"
    assert set(_results_of(argo, "good-executor-plugin").values()) == {"pass"}
    assert argo["summary"]["fail"] > 0
    (cluster_report,) = kube.objects("clusterpolicyreports")
    assert cluster_report["results"] == []
    uid = argo["metadata"]["uid"]

    # nothing changed: nothing written
    puts = len(kube.requests_matching("PUT"))
    run = auditor.run(POLICIES)
    assert run.written is not None and run.written.unchanged == 3
    assert len(kube.requests_matching("PUT")) == puts

    # fixed: its fail results leave, the same report is updated
    kube.apply(fixed(kube.get("bad-executor-plugin", plural="configmaps")))
    run = auditor.run(POLICIES)
    assert run.written is not None and run.written.updated == 1
    (argo,) = _reports(kube, "argo")
    assert argo["metadata"]["uid"] == uid
    assert set(_results_of(argo, "bad-executor-plugin").values()) == {"pass"}
    assert argo["summary"]["fail"] == 0

    # deleted: its results leave; a namespace emptied keeps an empty report
    kube.delete("bad-executor-plugin", plural="configmaps")
    kube.delete("other-executor-plugin", namespace="team-b", plural="configmaps")
    auditor.run(POLICIES)
    (argo,) = _reports(kube, "argo")
    assert _results_of(argo, "bad-executor-plugin") == {}
    assert _results_of(argo, "good-executor-plugin")
    (team_b,) = _reports(kube, "team-b")
    assert team_b["results"] == [] and team_b["summary"]["pass"] == 0
    assert len(_reports(kube)) == 2  # never a second report per namespace


def test_workflow_kinds_are_audited(kube: Any, cluster: Cluster) -> None:
    kube.apply(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "two-keys", "namespace": "argo"},
            "spec": {"templates": [{"name": "main", "plugin": {"a": {}, "b": {}}}]},
        }
    )
    Auditor(cluster, write_reports=True).run(POLICIES)
    (argo,) = _reports(kube, "argo")
    results = _results_of(argo, "two-keys")
    assert results["argo-plugin-templates"] == "fail"
    assert argo["results"][0]["resources"][0]["kind"] == "WorkflowTemplate"
    assert argo["results"][0]["resources"][0]["apiVersion"] == "argoproj.io/v1alpha1"


def test_namespace_filter(kube: Any, cluster: Cluster) -> None:
    kube.apply(plugin_configmap("mine", "team-a"))
    kube.apply(plugin_configmap("theirs", "team-b", port=4356))
    run = Auditor(cluster, ["team-a"], write_reports=True).run(POLICIES)
    assert {a.namespace for a in run.audited} == {"team-a"}
    assert [r["metadata"]["namespace"] for r in _reports(kube)] == ["team-a"]


def test_a_conflict_on_update_rereads_and_writes_again(kube: Any, cluster: Cluster) -> None:
    kube.apply(plugin_configmap("bad", compliant=False))
    auditor = Auditor(cluster, write_reports=True)
    auditor.run(POLICIES)
    kube.apply(fixed(kube.get("bad-executor-plugin", plural="configmaps")))
    kube.fail(
        "PUT", "/policyreports/plugin-guard", 409, "the object has been modified", reason="Conflict"
    )
    run = auditor.run(POLICIES)
    assert run.written is not None and run.written.conflicts == 1 and run.written.updated == 1
    (argo,) = _reports(kube, "argo")
    assert argo["summary"]["fail"] == 0
    assert len(kube.requests_matching("PUT", "/policyreports/plugin-guard")) == 2


def test_a_report_created_meanwhile_is_updated_not_duplicated(kube: Any, cluster: Cluster) -> None:
    kube.apply(plugin_configmap("bad", compliant=False))
    kube.fail("POST", "/policyreports", 409, "already exists", reason="AlreadyExists")
    # someone else's report under our name: taken over by update, labels kept
    kube.apply(
        {
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {"name": "plugin-guard", "namespace": "argo", "labels": {"team": "x"}},
            "results": [],
        }
    )
    run = Auditor(cluster, write_reports=True).run(POLICIES)
    assert run.written is not None and run.written.updated >= 1
    (argo,) = _reports(kube, "argo")
    assert argo["metadata"]["labels"]["team"] == "x"
    assert argo["summary"]["fail"] > 0


def _run_cli(kubeconfig: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PLUGIN_GUARD, "audit", "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_without_the_crd_audit_says_so_once_and_prints(kube: Any, kubeconfig: str) -> None:
    kube.apply(plugin_configmap("bad", compliant=False))
    kube.fail(
        "GET", "/policyreports", 404, "the server could not find the requested resource", times=50
    )
    done = _run_cli(kubeconfig, "--reports")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    line = json.loads(lines[0])
    assert "CRD not installed" in line["msg"]
    assert "bad-executor-plugin" in done.stdout and "plugin-resources" in done.stdout
    assert "fail" in done.stdout
    assert _reports(kube) == []


def test_json_output_is_the_reports(kube: Any, kubeconfig: str) -> None:
    kube.apply(plugin_configmap("bad", compliant=False))
    done = _run_cli(kubeconfig, "--output", "json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["summary"]["objects"] == 1 and body["summary"]["fail"] > 0
    kinds = [r["kind"] for r in body["reports"]]
    assert kinds == ["ClusterPolicyReport", "PolicyReport"]
    assert _reports(kube) == []  # no --reports: nothing written


def test_an_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    done = _run_cli(str(config))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot list plugin ConfigMaps")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_interval_rechecks_when_the_policies_change_and_stops_on_sigterm(
    kube: Any, kubeconfig: str, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("plugin-resources.yaml", "argo-sidecar-valid.yaml"):
        (policies / name).write_text((bundled_policies_dir() / name).read_text())
    kube.apply(plugin_configmap("bad", compliant=False))
    port = _free_port()
    process = subprocess.Popen(
        [
            *PLUGIN_GUARD,
            "audit",
            "--kubeconfig",
            kubeconfig,
            "--reports",
            "--interval",
            "600",
            "--policies",
            str(policies),
            "--metrics-port",
            str(port),
            "--metrics-host",
            "127.0.0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert kube.wait_for(lambda: bool(_reports(kube, "argo")), timeout=20)
        (argo,) = _reports(kube, "argo")
        assert set(r["policy"] for r in argo["results"]) == {
            "plugin-resources",
            "argo-sidecar-valid",
        }
        metrics = ""
        deadline = time.monotonic() + 10
        while "plugin_guard_audit_violations{" not in metrics and time.monotonic() < deadline:
            try:
                metrics = _get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                time.sleep(0.1)
        assert (
            'plugin_guard_audit_violations{namespace="argo",policy="plugin-resources",result="fail"} 1.0'
            in metrics
        )
        assert json.loads(_get(f"http://127.0.0.1:{port}/readyz"))["status"] == "ok"
        # a policy removed: audited again at once (the interval is 10 minutes)
        (policies / "plugin-resources.yaml").unlink()

        def only_argo_sidecar() -> bool:
            reports = _reports(kube, "argo")
            return bool(reports) and {r["policy"] for r in reports[0]["results"]} == {
                "argo-sidecar-valid"
            }

        assert kube.wait_for(only_argo_sidecar, timeout=15)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    lines = stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every stderr line is one JSON object
    messages = [r["msg"] for r in records]
    assert "policies changed; auditing again" in messages
    assert messages[-1] == "audit stopped"


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_max_runs_bounds_the_loop(kube: Any, kubeconfig: str) -> None:
    kube.apply(plugin_configmap("good"))
    done = _run_cli(kubeconfig, "--reports", "--interval", "1", "--max-runs", "2")
    assert done.returncode == 0, done.stderr
    audits = [json.loads(line) for line in done.stderr.splitlines()]
    assert [r["msg"] for r in audits].count("audited") == 2
    assert len(_reports(kube, "argo")) == 1
