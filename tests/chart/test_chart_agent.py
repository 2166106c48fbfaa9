"""The chart's agent (`agent.enabled`): render, schema, least RBAC, PSS restricted, and
the pod shaped so the chart's own mutating webhook injects the registry's plugins."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from webhook.executor_plugin import load_plugin_dir
from webhook.inject import inject
from webhook.policy import load_policies

from .conftest import CERT_MANAGER, KUBE_VERSION, NAMESPACE, REPO_ROOT, Helm, find, find_all

AGENT = (*CERT_MANAGER, "--set", "agent.enabled=true")
NAME = "guard-argo-plugin-guard-agent"


def agent_docs(helm: Helm, *extra: str) -> list[dict[str, Any]]:
    return helm.template(*AGENT, *extra)


def test_off_by_default(helm: Helm) -> None:
    names = [d["metadata"]["name"] for d in helm.template(*CERT_MANAGER)]
    assert NAME not in names


def test_every_agent_document_passes_the_kubernetes_schema(helm: Helm) -> None:
    docs = [d for d in agent_docs(helm) if d["metadata"]["name"].startswith(NAME)]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "Deployment",
        "MutatingWebhookConfiguration",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "ServiceAccount",
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_the_deployment_runs_two_leader_elected_replicas(helm: Helm) -> None:
    deployment = find(agent_docs(helm), "Deployment", NAME)
    assert deployment["spec"]["replicas"] == 2
    spec = deployment["spec"]["template"]["spec"]
    main = next(c for c in spec["containers"] if c["name"] == "main")
    args = main["args"]
    assert args[0] == "agent" and "--leader-elect" in args
    assert args[args.index("--leader-elect-namespace") + 1] == NAMESPACE
    assert args[args.index("--namespace") + 1] == NAMESPACE
    assert args[args.index("--metrics-port") + 1] == "8080"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["terminationGracePeriodSeconds"] == 30  # drain 25 s + 5
    pdb = find(agent_docs(helm), "PodDisruptionBudget", NAME)
    assert pdb["spec"]["minAvailable"] == 1
    single = [
        d
        for d in agent_docs(helm, "--set", "agent.replicas=1")
        if d["kind"] == "PodDisruptionBudget"
    ]
    assert NAME not in [d["metadata"]["name"] for d in single]


def test_rbac_is_least(helm: Helm) -> None:
    docs = agent_docs(helm, "--set", "agent.namespaces={argo,team-a}")
    roles = {
        (r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"]
        for r in find_all(docs, "Role")
        if r["metadata"]["name"].startswith(NAME)
    }
    tasksets = [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtasksets"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtasksets/status"],
            "verbs": ["patch"],
        },
    ]
    lease = [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["plugin-guard-agent"],
            "verbs": ["get", "update"],
        },
    ]
    assert roles == {
        ("argo", NAME): tasksets,
        ("team-a", NAME): tasksets,
        (NAMESPACE, f"{NAME}-lease"): lease,
    }
    assert not [
        d
        for d in docs
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding") and NAME in d["metadata"]["name"]
    ]
    bindings = [b for b in find_all(docs, "RoleBinding") if b["metadata"]["name"].startswith(NAME)]
    assert {b["subjects"][0]["name"] for b in bindings} == {NAME}
    with_secrets = agent_docs(helm, "--set", "agent.httpTemplateSecrets=true")
    role = find(with_secrets, "Role", NAME)
    assert role["rules"][-1] == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


def test_the_agent_pod_passes_pod_security_restricted(helm: Helm) -> None:
    bundled = load_policies()
    pss = type(bundled)([bundled.get("pod-security-restricted")])
    deployment = find(agent_docs(helm), "Deployment", NAME)
    assert pss.evaluate(deployment).violations == ()
    weakened = find(
        agent_docs(helm, "--set", "securityContext.allowPrivilegeEscalation=true"),
        "Deployment",
        NAME,
    )
    assert pss.evaluate(weakened).violations != ()


def test_the_webhook_injects_the_registry_plugins_into_the_agent_pod(helm: Helm) -> None:
    """The pod template is an Argo agent pod as the injector requires (init, main,
    var-run-argo, ARGO_PLUGIN_*), and only this release's agent pods are sent to it."""
    docs = agent_docs(helm)
    webhook = find(docs, "MutatingWebhookConfiguration", NAME)["webhooks"][0]
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == [NAMESPACE]
    labels = find(docs, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"]
    for key, value in webhook["objectSelector"]["matchLabels"].items():
        assert labels[key] == value
    server_labels = find(docs, "Deployment", "guard-argo-plugin-guard")["spec"]["template"][
        "metadata"
    ]["labels"]
    assert server_labels.get("workflows.argoproj.io/component") != "agent"  # never itself
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": NAMESPACE, "labels": labels},
        "spec": find(docs, "Deployment", NAME)["spec"]["template"]["spec"],
    }
    plugins = [load_plugin_dir(REPO_ROOT / "examples" / "hardened-plugin")]
    injection = inject(pod, plugins, policies=load_policies(), namespace=NAMESPACE)
    assert injection.injected, injection.warnings
