"""The chart's audit (`audit.enabled`): render, schema, PSS restricted, the server's
policies, and RBAC that is exactly what `plugin-guard audit --reports` asks the API for
(recorded by the loopback fake API while the real audit code runs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.support import kubefake
from webhook.audit.service import Auditor
from webhook.kube import Cluster
from webhook.policy import load_policies

from .conftest import CERT_MANAGER, FULLNAME, KUBE_VERSION, NAMESPACE, Helm, arg_value, find

AUDIT = (*CERT_MANAGER, "--set", "audit.enabled=true")
NAME = f"{FULLNAME}-audit"
TYPE_LABEL = "workflows.argoproj.io/configmap-type"
# (apiGroup, resource, verb, namespaced request?)
Access = tuple[str, str, str, bool]


def audit_docs(helm: Helm, *extra: str) -> list[dict[str, Any]]:
    return [d for d in helm.template(*AUDIT, *extra) if d["metadata"]["name"] == NAME]


def audit_container(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    spec = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return dict(container)


# ------------------------------------------------------------------ what the code asks for


def _plugin(name: str, namespace: str, *, compliant: bool) -> dict[str, Any]:
    security = (
        "securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, "
        "capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}\n"
        "resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 20m, memory: 32Mi}}\n"
        if compliant
        else "securityContext: {runAsUser: 0}\n"
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {TYPE_LABEL: "ExecutorPlugin"},
        },
        "data": {
            "sidecar.container": f"name: {name}\nimage: example/{name}:1.0\n"
            f"ports: [{{containerPort: 4355}}]\n{security}"
        },
    }


def _access_of(request: Any) -> Access:
    """The RBAC (group, resource, verb) a request of the fake's log needs."""
    match = kubefake._CORE.match(request.path) or kubefake._GROUP.match(request.path)
    assert match is not None, request.path
    group = match.groupdict().get("group") or ""
    parts = [p for p in match["rest"].split("/") if p]
    namespaced = len(parts) >= 2 and parts[0] == "namespaces"
    if namespaced:
        parts = parts[2:]
    resource, name = parts[0], parts[1] if len(parts) > 1 else None
    if len(parts) > 2:
        resource = f"{resource}/{parts[2]}"
    verb = {
        "GET": "get" if name else ("watch" if request.query.get("watch") else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }[request.method]
    return group, resource, verb, namespaced


def _audit_accesses(tmp_path: Path, namespaces: Sequence[str]) -> set[Access]:
    """Run the real audit against the fake API through every write path it has: reports
    created, one updated after a fix, one updated after a 409, objects of every kind."""
    policies = load_policies()
    with kubefake.FakeKubeApi() as api:
        kubeconfig = tmp_path / f"kubeconfig-{len(namespaces)}.json"
        kubeconfig.write_text(api.kubeconfig(), encoding="utf-8")
        bad = _plugin("bad-executor-plugin", "argo", compliant=False)
        api.apply(bad)
        api.apply(_plugin("good-executor-plugin", "team-a", compliant=True))
        template = {"templates": [{"name": "main", "plugin": {"hello": {}}}]}
        for kind in ("Workflow", "WorkflowTemplate", "CronWorkflow"):
            api.apply(
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": kind,
                    "metadata": {"name": kind.lower(), "namespace": "argo"},
                    "spec": template,
                }
            )
        shared = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ClusterWorkflowTemplate",
            "metadata": {"name": "shared"},
            # two plugins in one template: fails argo-plugin-templates
            "spec": {"templates": [{"name": "main", "plugin": {"a": {}, "b": {}}}]},
        }
        api.apply(shared)
        with Cluster.connect(str(kubeconfig), request_timeout=(2.0, 5.0)) as cluster:
            auditor = Auditor(cluster, namespaces, write_reports=True)
            first = auditor.run(policies)
            assert first.written is not None and first.written.created >= 2
            api.apply(_plugin("bad-executor-plugin", "argo", compliant=True))
            api.apply({**shared, "spec": template})
            api.fail("PUT", "/policyreports/plugin-guard", 409, "modified", reason="Conflict")
            second = auditor.run(policies)
            assert second.written is not None and second.written.updated == 2
            assert second.written.conflicts == 1
        return {_access_of(r) for r in api.requests}


def _granted(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# ------------------------------------------------------------------ the tests


def test_off_by_default(helm: Helm) -> None:
    names = {d["metadata"]["name"] for d in helm.template(*CERT_MANAGER)}
    assert not {n for n in names if n.endswith("-audit")}


def test_on_renders_a_deployment_its_service_account_and_rbac(helm: Helm) -> None:
    docs = audit_docs(helm)
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ServiceAccount",
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    binding = find(docs, "ClusterRoleBinding", NAME)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": NAME,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    spec = find(docs, "Deployment", NAME)["spec"]
    assert spec["replicas"] == 1
    assert spec["template"]["spec"]["serviceAccountName"] == NAME


def test_the_container_runs_the_audit_into_reports_with_probes_on_the_metrics_port(
    helm: Helm,
) -> None:
    docs = audit_docs(helm, "--set", "audit.interval=300", "--set", "audit.metricsPort=9090")
    main = audit_container(docs)
    args = main["args"]
    assert main["command"] == ["plugin-guard"] and args[:2] == ["audit", "--reports"]
    assert arg_value(args, "--interval") == "300"
    assert arg_value(args, "--metrics-port") == "9090"
    assert "--namespace" not in args and "--policies" not in args  # bundled, everywhere
    assert main["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["resources"]["limits"]["memory"] == "256Mi"
    # its own pods: never selected by the server's Service, PDB or anti-affinity
    server = find(helm.template(*AUDIT), "Deployment", FULLNAME)
    server_selector = server["spec"]["selector"]["matchLabels"]
    labels = find(docs, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"]
    assert not server_selector.items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "audit"


def test_the_audit_evaluates_the_policies_the_server_enforces(helm: Helm) -> None:
    custom = ("--set-string", "policies.existingConfigMap=team-policies")
    docs = helm.template(*AUDIT, *custom)
    server = find(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]
    audit = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]

    def policies_volume(pod: Mapping[str, Any]) -> tuple[Any, str | None]:
        (container,) = [c for c in pod["containers"] if "--policies" in c["args"]]
        directory = arg_value(container["args"], "--policies")
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
        assert mount["readOnly"] is True
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        return volume["configMap"], directory

    assert policies_volume(audit) == policies_volume(server)
    assert policies_volume(audit)[0] == {"name": "team-policies"}


def test_rbac_is_exactly_what_the_audit_calls(helm: Helm, tmp_path: Path) -> None:
    used = _audit_accesses(tmp_path, [])
    docs = audit_docs(helm)
    granted = _granted(find(docs, "ClusterRole", NAME)["rules"])
    assert granted == {(g, r, v) for g, r, v, _ in used}
    # what that means, spelled out: nothing more than reading and writing its reports
    assert {v for g, r, v in granted if g != "wgpolicyk8s.io"} == {"list"}
    assert {v for g, r, v in granted if r == "policyreports"} == {"get", "list", "create", "update"}
    assert {v for g, r, v in granted if r == "clusterpolicyreports"} == {"get", "create", "update"}
    assert not [a for a in granted if "*" in a or a[1] == "secrets"]


def test_rbac_with_namespaces_is_a_role_in_each_and_cluster_scope_only_in_the_cluster_role(
    helm: Helm, tmp_path: Path
) -> None:
    namespaces = ["argo", "team-a"]
    used = _audit_accesses(tmp_path, namespaces)
    docs = audit_docs(helm, "--set", "audit.namespaces={argo,team-a}")
    args = audit_container(docs)["args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == namespaces
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == namespaces
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == namespaces
    assert {b["subjects"][0]["name"] for b in bindings} == {NAME}
    for role in roles:
        assert _granted(role["rules"]) == {(g, r, v) for g, r, v, ns in used if ns}
    cluster_role = find(docs, "ClusterRole", NAME)
    assert _granted(cluster_role["rules"]) == {(g, r, v) for g, r, v, ns in used if not ns}
    assert ("", "configmaps", "list") not in _granted(cluster_role["rules"])


def test_the_audit_pod_passes_pod_security_restricted(helm: Helm) -> None:
    bundled = load_policies()
    pss = type(bundled)([bundled.get("pod-security-restricted")])
    assert pss.evaluate(find(audit_docs(helm), "Deployment", NAME)).violations == ()
    weakened = audit_docs(helm, "--set", "securityContext.runAsNonRoot=false")
    assert pss.evaluate(find(weakened, "Deployment", NAME)).violations != ()


def test_scheduling_values_reach_the_pod(helm: Helm) -> None:
    docs = audit_docs(
        helm,
        "--set",
        "audit.nodeSelector.pool=system",
        "--set",
        "audit.tolerations[0].key=dedicated,audit.tolerations[0].operator=Exists",
    )
    spec = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "system"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert "affinity" not in spec


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("audit.interval=0", "'/audit/interval': minimum"),
        ("audit.metricsPort=70000", "'/audit/metricsPort': maximum"),
        ("audit.logLevel=loud", "'/audit/logLevel'"),
        ("audit.replicas=2", "'/audit': additional properties 'replicas'"),
    ],
)
def test_the_schema_rejects_a_bad_value(helm: Helm, setting: str, path: str) -> None:
    proc = helm.template_raw(*AUDIT, "--set", setting)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert path in proc.stderr, proc.stderr
