"""`plugin-guard audit --reports --interval` on a real API server, run with the arguments
the chart renders (audit.enabled) and as the chart's audit ServiceAccount with exactly
the chart's RBAC, into the wgpolicyk8s.io/v1alpha2 CRDs written from the published
schema (manifests/policyreport-crds.yaml):

- objects stored before the audit (a plugin ConfigMap that fails enforced policies, a
  Workflow and a ClusterWorkflowTemplate with an inline secret) are in the namespace's
  PolicyReport and the ClusterPolicyReport within one interval, and what was stored
  reads back equal to what the audit computes (the API server pruned nothing);
- while nothing changes the reports are not rewritten (same resourceVersion);
- a plugin fixed with `plugin-guard fix` and a deleted Workflow leave the report, which
  is updated in place (same uid, one report per namespace);
- SIGTERM ends it with exit 0, and every stderr line is one JSON object;
- without the CRDs it says so in one line and prints the results instead.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from .controlplane import ControlPlane, child_environment, free_port, json_log_lines, wait_until
from .guard import (
    CHART_AUDIT_USER,
    CORPUS,
    FULLNAME,
    RELEASE_NAMESPACE,
    REPO_ROOT,
    corpus_plugin,
    ensure_namespace,
    helm_template,
)

pytestmark = pytest.mark.realapi

HERE = Path(__file__).resolve().parent
CRDS = HERE / "manifests" / "policyreport-crds.yaml"
CLI = [sys.executable, "-c", "from webhook.cli import main; main()"]
# fails plugin-security-context (Enforce: privilege escalation, capabilities) and warns on
# seccomp and a read-only root filesystem; `fix` repairs those four
GOGIT = CORPUS / "gogit" / "gogit-executor-plugin-configmap.yaml"
REPORT = "plugin-guard"  # the one report name per scope
INTERVAL = 3  # seconds between audits (audit.interval)


# --------------------------------------------------------------------------- helpers


def install_crds(cp: ControlPlane) -> None:
    cp.kubectl("apply", "-f", str(CRDS), check=True)
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS), check=True)


def remove_crds(cp: ControlPlane) -> None:
    cp.kubectl(
        "delete",
        "-f",
        str(CRDS),
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
        check=True,
    )


def chart_audit(cp: ControlPlane, namespace: str, folder: Path, metrics_port: int) -> list[str]:
    """The chart's audit RBAC, applied; the audit container's arguments, returned."""
    ensure_namespace(cp, RELEASE_NAMESPACE)
    values = {
        "certManager": {"enabled": True},
        "audit": {
            "enabled": True,
            "namespaces": [namespace],
            "interval": INTERVAL,
            "metricsPort": metrics_port,
        },
    }
    docs = helm_template(values, folder, cp.server_version())
    name = f"{FULLNAME}-audit"
    rbac = [
        d
        for d in docs
        if d["kind"]
        in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
        and d["metadata"]["name"] == name
    ]
    assert {d["kind"] for d in rbac} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }
    cp.apply(rbac, check=True)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["plugin-guard"]
    return [str(a) for a in container["args"]]


def local_policies(args: list[str], folder: Path) -> tuple[list[str], Path]:
    """The chart mounts the server's policies ConfigMap at /policies: here a copy of the
    bundled policies stands for it."""
    policies = folder / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    args = list(args)
    if "--policies" in args:
        args[args.index("--policies") + 1] = str(policies)
    else:
        args += ["--policies", str(policies)]
    return args, policies


def audit_environment(cp: ControlPlane, folder: Path) -> dict[str, str]:
    """A child's environment as the chart's audit ServiceAccount."""
    return child_environment(
        {"KUBECONFIG": str(cp.kubeconfig(CHART_AUDIT_USER)), "HOME": str(folder)}
    )


def leaky_template() -> dict[str, Any]:
    """A template with a credential written inline (a fresh random value each run)."""
    return {
        "name": "main",
        "container": {
            "image": "alpine:3.20",
            "command": ["sh", "-c", "true"],
            "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": secrets.token_urlsafe(30)}],
        },
    }


def workflow(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "leaky", "namespace": namespace},
        "spec": {"entrypoint": "main", "templates": [leaky_template()]},
    }


def cluster_template(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterWorkflowTemplate",
        "metadata": {"name": name},
        "spec": {"entrypoint": "main", "templates": [leaky_template()]},
    }


def get(cp: ControlPlane, *args: str) -> dict[str, Any] | None:
    result = cp.kubectl("get", *args, "-o", "json")
    return dict(result.json()) if result.returncode == 0 else None


def uid_of(cp: ControlPlane, *args: str) -> str:
    obj = get(cp, *args)
    assert obj is not None, args
    return str(obj["metadata"]["uid"])


def results_for(report: dict[str, Any] | None, uid: str) -> dict[str, str]:
    """policy -> result of one object in a report."""
    found: dict[str, str] = {}
    for result in (report or {}).get("results") or []:
        if any(ref.get("uid") == uid for ref in result.get("resources") or []):
            found[result["policy"]] = result["result"]
    return found


def without_timestamps(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "timestamp"} for r in results]


def run_audit(
    args: list[str], env: dict[str, str], stderr: Path
) -> subprocess.CompletedProcess[str]:
    """`plugin-guard <args>` to its end: stdout captured, stderr into `stderr`."""
    with stderr.open("wb") as err:
        return subprocess.run(
            [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=120
        )


def messages(path: Path, text: str) -> int:
    return sum(text in str(line.get("msg", "")) for line in json_log_lines(path))


# --------------------------------------------------------------------------- tests


def test_audit_keeps_real_policy_reports_in_step(
    argo_crds: ControlPlane, make_namespace, tmp_path: Path
) -> None:
    cp = argo_crds
    install_crds(cp)
    ns = make_namespace("audit")
    cwt = f"leaky-{ns}"
    metrics_port = free_port()
    chart_args = chart_audit(cp, ns, tmp_path, metrics_port)
    args, policies = local_policies(chart_args, tmp_path)
    assert args[:3] == ["audit", "--reports", "--interval"] and args[3] == str(INTERVAL)

    # stored before the audit starts, as in a cluster the webhook was installed into later
    cp.apply([corpus_plugin(GOGIT, ns), workflow(ns), cluster_template(cwt)], check=True)
    plugin_uid = uid_of(cp, "configmap", "gogit-executor-plugin", "-n", ns)
    workflow_uid = uid_of(cp, "workflow", "leaky", "-n", ns)
    template_uid = uid_of(cp, "clusterworkflowtemplate", cwt)

    stderr = tmp_path / "audit.stderr"
    env = audit_environment(cp, tmp_path)
    started = time.monotonic()
    process = subprocess.Popen(
        [*CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=stderr.open("wb")
    )

    def alive() -> str | None:
        code = process.poll()
        return None if code is None else f"audit exited {code}: {stderr.read_text()[-2000:]}"

    try:
        # 1. within one interval (after start-up): both reports, with what is stored
        def reported() -> bool:
            report = get(cp, "policyreport", REPORT, "-n", ns)
            cluster = get(cp, "clusterpolicyreport", REPORT)
            return bool(results_for(report, plugin_uid)) and bool(
                results_for(cluster, template_uid)
            )

        wait_until(reported, timeout=INTERVAL + 20, what="the reports", alive=alive)
        assert time.monotonic() - started < INTERVAL + 20
        report = get(cp, "policyreport", REPORT, "-n", ns)
        cluster = get(cp, "clusterpolicyreport", REPORT)
        assert report is not None and cluster is not None
        plugin_results = results_for(report, plugin_uid)
        assert plugin_results["plugin-security-context"] == "fail"
        assert plugin_results["plugin-seccomp-profile"] == "warn"
        assert plugin_results["plugin-resources"] == "pass"
        assert results_for(report, workflow_uid)["no-inline-secrets"] == "warn"
        assert results_for(cluster, template_uid)["no-inline-secrets"] == "warn"
        assert report["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "plugin-guard"
        assert report["summary"]["fail"] >= 1 and report["summary"]["warn"] >= 1
        for result in report["results"]:
            assert result["source"] == "plugin-guard"
            assert result["severity"] in ("high", "medium", "low")
            assert result["category"] and result["message"]
            assert set(result["timestamp"]) == {"seconds", "nanos"}
            (ref,) = result["resources"]
            assert ref["namespace"] == ns and ref["uid"] and ref["apiVersion"]

        # what the API server stored is what the audit computes: nothing was pruned
        computed = subprocess.run(
            [*CLI, "audit", "-n", ns, "--policies", str(policies), "-o", "json"],
            env=cp.environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        by_scope = {
            (r["kind"], r["metadata"].get("namespace")): r
            for r in json.loads(computed.stdout)["reports"]
        }
        expected = by_scope[("PolicyReport", ns)]
        assert without_timestamps(report["results"]) == without_timestamps(expected["results"])
        assert report["summary"] == expected["summary"]

        # 2. nothing changes: audits go on, the reports are not written again
        version = report["metadata"]["resourceVersion"]
        cluster_version = cluster["metadata"]["resourceVersion"]
        audits = messages(stderr, "audited")
        wait_until(
            lambda: messages(stderr, "audited") >= audits + 2,
            timeout=INTERVAL * 3 + 10,
            what="two more audits",
            alive=alive,
        )
        again = get(cp, "policyreport", REPORT, "-n", ns)
        assert again is not None and again["metadata"]["resourceVersion"] == version
        cluster_again = get(cp, "clusterpolicyreport", REPORT)
        assert cluster_again is not None
        assert cluster_again["metadata"]["resourceVersion"] == cluster_version

        # metrics: violations by policy and namespace
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=5
        ) as response:
            metrics = response.read().decode()
        assert (
            f'plugin_guard_audit_violations{{namespace="{ns}",policy="plugin-security-context",'
            f'result="fail"}} 1.0' in metrics
        )

        # 3. the plugin fixed by `plugin-guard fix`, the Workflow deleted: both leave
        fixed = tmp_path / "gogit-fixed.yaml"
        fixed.write_text(yaml.safe_dump(corpus_plugin(GOGIT, ns)))
        fix = subprocess.run(
            [*CLI, "fix", "--write", str(fixed)], capture_output=True, text=True, timeout=120
        )
        assert fix.returncode in (0, 1), fix.stderr  # 1: warnings it cannot fix remain
        cp.kubectl("apply", "-f", str(fixed), check=True)
        cp.kubectl("delete", "workflow", "leaky", "-n", ns, "--wait=true", check=True)
        assert uid_of(cp, "configmap", "gogit-executor-plugin", "-n", ns) == plugin_uid

        def fixed_and_gone() -> bool:
            current = get(cp, "policyreport", REPORT, "-n", ns)
            plugin_now = results_for(current, plugin_uid)
            return (
                bool(plugin_now)
                and "fail" not in plugin_now.values()
                and not results_for(current, workflow_uid)
            )

        wait_until(fixed_and_gone, timeout=INTERVAL * 2 + 15, what="the fix reported", alive=alive)
        after = get(cp, "policyreport", REPORT, "-n", ns)
        assert after is not None
        assert after["metadata"]["uid"] == report["metadata"]["uid"]  # updated in place
        assert after["summary"]["fail"] == 0
        assert results_for(after, plugin_uid)["plugin-security-context"] == "pass"
        assert results_for(after, plugin_uid)["plugin-seccomp-profile"] == "pass"
        listing = get(cp, "policyreports", "-n", ns)
        assert listing is not None and len(listing["items"]) == 1
        assert results_for(get(cp, "clusterpolicyreport", REPORT), template_uid)

        # 4. SIGTERM: a clean exit, every stderr line one JSON object
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        lines = json_log_lines(stderr)
        assert any(line.get("msg") == "audit stopped" for line in lines)
        assert not any(line.get("level") == "error" for line in lines), lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        cp.kubectl("delete", "clusterworkflowtemplate", cwt, "--ignore-not-found")


def test_audit_without_the_crds_says_so_once_and_prints(
    argo_crds: ControlPlane, make_namespace, tmp_path: Path
) -> None:
    cp = argo_crds
    remove_crds(cp)
    ns = make_namespace("audit-nocrd")
    chart_args = chart_audit(cp, ns, tmp_path, free_port())
    cp.apply([corpus_plugin(GOGIT, ns)], check=True)
    env = audit_environment(cp, tmp_path)
    try:
        once_stderr = tmp_path / "once.stderr"
        once = run_audit(["audit", "--reports", "-n", ns], env, once_stderr)
        assert once.returncode == 0, once_stderr.read_text()
        (line,) = json_log_lines(once_stderr)
        assert "CRD not installed" in line["msg"]
        assert "gogit-executor-plugin" in once.stdout and "plugin-security-context" in once.stdout

        # continuously: one line for the missing CRD, not one per interval
        stderr = tmp_path / "interval.stderr"
        args, _ = local_policies(chart_args, tmp_path)
        args[args.index("--interval") + 1] = "1"
        continuous = run_audit([*args, "--max-runs", "3"], env, stderr)
        assert continuous.returncode == 0, stderr.read_text()
        assert messages(stderr, "audited") == 3
        assert messages(stderr, "CRD not installed") == 1
        assert continuous.stdout.count("gogit-executor-plugin") >= 3  # printed every run
    finally:
        install_crds(cp)  # as the other test expects to find them
