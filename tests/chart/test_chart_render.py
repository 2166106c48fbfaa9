"""The Helm chart, rendered by the real helm binary: lint, Kubernetes schemas, our own
policies, webhook scope, TLS modes, custom policies, bad values and determinism."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from webhook.inject import AGENT_COMPONENT, COMPONENT_LABEL, INJECT_LABEL
from webhook.policy import Action, load_policies

from .conftest import (
    CERT_MANAGER,
    CHART,
    CI_VALUES,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    SERVICE_HOST,
    Helm,
    arg_value,
    container,
    find,
    find_all,
    kinds,
)

CA_B64 = base64.b64encode(
    b"-----BEGIN CERTIFICATE-----\nMIIBplaceholder\n-----END CERTIFICATE-----\n"
).decode()
EXISTING_SECRET = ("--set", "tls.existingSecret=my-tls", "--set", f"tls.caBundle={CA_B64}")
CI_FILES = sorted(CI_VALUES.glob("*.yaml"))
# Every rendering scenario the schema and policy tests go through.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "self-managed-defaults": (),
    "cert-manager-defaults": CERT_MANAGER,
    "existing-secret-defaults": EXISTING_SECRET,
    **{f"ci-{f.stem}": ("--values", str(f)) for f in CI_FILES},
    "cert-manager-issuer-ref-plugins-registry": (
        *CERT_MANAGER,
        "--set",
        "certManager.issuerRef.name=corp-ca",
        "--set",
        "certManager.issuerRef.kind=ClusterIssuer",
        "--set",
        "plugins.registry=installed-plugins",
        "--set",
        "policies.existingConfigMap=my-policies",
        "--set",
        "replicaCount=3",
        "--set",
        "priorityClassName=system-cluster-critical",
        "--set",
        "podAntiAffinity=hard",
        "--set",
        "topologySpreadConstraints[0].maxSkew=1",
        "--set",
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "--set",
        "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
    ),
    "cert-manager-plugins-from-cluster": (
        *CERT_MANAGER,
        "--set",
        "plugins.fromCluster.enabled=true",
    ),
    "existing-secret-plugins-from-namespaces": (
        *EXISTING_SECRET,
        "--set",
        "plugins.fromCluster.enabled=true",
        "--set",
        "plugins.fromCluster.namespaces={argo,team-a}",
        "--set",
        "mutating.enabled=true",
    ),
}
# Custom resources kubernetes-validate has no schema for; checked structurally below.
CRD_KINDS = {
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


# --------------------------------------------------------------------------- lint


def test_helm_is_the_pinned_release(helm: Helm) -> None:
    proc = helm.run("version", "--short")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("v4."), proc.stdout


@pytest.mark.parametrize(
    "args",
    [(), CERT_MANAGER, EXISTING_SECRET, *(("--values", str(f)) for f in CI_FILES)],
    ids=["self-managed", "cert-manager", "existing-secret", *(f"ci-{f.stem}" for f in CI_FILES)],
)
def test_lint_strict_passes_for_each_tls_mode(helm: Helm, args: tuple[str, ...]) -> None:
    proc = helm.run("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_ci_scenarios_cover_every_tls_mode() -> None:
    modes = set()
    for path in CI_FILES:
        values = yaml.safe_load(path.read_text())
        if values.get("certManager", {}).get("enabled"):
            modes.add("certManager")
        elif values.get("tls", {}).get("existingSecret"):
            modes.add("existingSecret")
        else:
            modes.add("selfManaged")
    assert modes == {"certManager", "existingSecret", "selfManaged"}


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_document_passes_the_kubernetes_schema(helm: Helm, scenario: str) -> None:
    docs = helm.template(*SCENARIOS[scenario])
    validated = []
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
        validated.append(doc["kind"])
    for kind in ("Deployment", "Service", "ValidatingWebhookConfiguration"):
        assert kind in validated, kinds(docs)


def test_schema_validation_is_strict(helm: Helm) -> None:
    """The check above can fail: an unknown field in the rendered pod is rejected."""
    deployment = find(helm.template(*CERT_MANAGER), "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


def test_every_namespaced_document_names_the_release_namespace(helm: Helm) -> None:
    docs = helm.template("--values", str(CI_VALUES / "cert-manager-values.yaml"))
    cluster_scoped = {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
    for doc in docs:
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


# --------------------------------------------------------------------------- our policies


@pytest.fixture(scope="module")
def bundled() -> Any:
    return load_policies()


def pod_workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "Pod")]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_pods_pass_pod_security_restricted(
    helm: Helm, bundled: Any, scenario: str
) -> None:
    policy = bundled.get("pod-security-restricted")
    assert policy is not None
    pss = type(bundled)([policy])
    workloads = pod_workloads(helm.template(*SCENARIOS[scenario]))
    assert {d["kind"] for d in workloads} == {"Deployment", "Pod"}  # server and helm test
    for doc in workloads:
        violations = pss.evaluate(doc).violations
        assert violations == (), f"{doc['kind']}: {violations}"


@pytest.mark.parametrize(
    ("setting", "path_fragment"),
    [
        ("securityContext.allowPrivilegeEscalation=true", "allowPrivilegeEscalation"),
        ("securityContext.capabilities.drop=null", "capabilities"),
        ("podSecurityContext.seccompProfile.type=Unconfined", "seccompProfile"),
        ("securityContext.runAsUser=0", "runAsUser"),
    ],
)
def test_pod_security_check_catches_a_weakened_pod(
    helm: Helm, bundled: Any, setting: str, path_fragment: str
) -> None:
    """The check above can fail: the same policy flags the chart's pod once weakened."""
    pss = type(bundled)([bundled.get("pod-security-restricted")])
    deployment = find(helm.template(*CERT_MANAGER, "--set", setting), "Deployment")
    violations = pss.evaluate(deployment).violations
    assert any(path_fragment in v.path for v in violations), violations


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_whole_render_has_no_violation_with_the_bundled_policies(
    helm: Helm, bundled: Any, scenario: str
) -> None:
    for doc in helm.template(*SCENARIOS[scenario]):
        verdict = bundled.evaluate(doc)
        assert verdict.allowed, f"{doc['kind']}: {verdict.by_action(Action.ENFORCE)}"
        assert verdict.violations == (), f"{doc['kind']}: {verdict.violations}"


def test_plugin_guard_check_cli_accepts_the_render(helm: Helm, tmp_path: Path) -> None:
    rendered = tmp_path / "chart.yaml"
    rendered.write_text(helm.template_text("--values", str(CI_VALUES / "cert-manager-values.yaml")))
    proc = subprocess.run(
        [sys.executable, "-m", "webhook", "check", "--output", "json", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["denied"] == 0
    assert report["summary"]["resources"] >= 10
    enforce = [v for r in report["results"] for v in r["violations"] if v["action"] == "Enforce"]
    assert enforce == []


# --------------------------------------------------------------------------- deployment


def test_deployment_command_line_and_writable_paths(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    c = container(docs)
    args = c["args"]
    assert c["command"] == ["plugin-guard"] and args[0] == "serve"
    assert arg_value(args, "--host") == "0.0.0.0"
    assert arg_value(args, "--port") == "8443"
    assert arg_value(args, "--cert-file") == "/tls/tls.crt"
    assert arg_value(args, "--key-file") == "/tls/tls.key"
    assert arg_value(args, "--workers") == "2"
    assert "--policies" not in args and "--plugins" not in args  # the bundled set
    assert "--state-dir" not in args  # only used without certificate files
    # Everything the server writes lands on an emptyDir: the root filesystem is read-only.
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    writable = {
        m["mountPath"]
        for m in c["volumeMounts"]
        if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")
    }
    assert {"/dev/shm", "/tmp"} <= writable  # gunicorn worker_tmp_dir, tempfile
    env = {e["name"]: e.get("value") for e in c["env"]}
    metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"]
    assert any(metrics_dir.startswith(w + "/") for w in writable), metrics_dir
    assert spec["automountServiceAccountToken"] is False
    assert c["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])


def test_deployment_ha_defaults(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = deployment["spec"]["template"]["spec"]
    preferred = spec["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert preferred[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert "priorityClassName" not in spec and "topologySpreadConstraints" not in spec
    pdb = find(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    # Shutdown: preStop sleep + the largest webhook timeout fit in the grace period.
    assert spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 5
    assert spec["terminationGracePeriodSeconds"] > 5 + 5


def test_deployment_ha_options(helm: Helm) -> None:
    docs = helm.template(*SCENARIOS["cert-manager-issuer-ref-plugins-registry"])
    deployment = find(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert spec["priorityClassName"] == "system-cluster-critical"
    required = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["labelSelector"]["matchLabels"] == selector
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"] == {"matchLabels": selector}  # filled in by the chart


def test_single_replica_has_no_pdb_and_old_clusters_no_prestop_sleep(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER, "--set", "replicaCount=1", "--kube-version", "1.29.0")
    assert find_all(docs, "PodDisruptionBudget") == []
    assert "lifecycle" not in container(docs)


def test_image_tag_defaults_to_app_version_and_digest_wins(helm: Helm) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(helm.template(*CERT_MANAGER))["image"] == (
        f"ghcr.io/argo-plugin-guard/argo-plugin-guard:{app_version}"
    )
    digest = "sha256:" + "a" * 64
    image = container(helm.template(*CERT_MANAGER, "--set", f"image.digest={digest}"))["image"]
    assert image == f"ghcr.io/argo-plugin-guard/argo-plugin-guard@{digest}"


def test_service_routes_443_to_the_server_and_never_to_the_test_pod(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    service = find(docs, "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["https"]["port"] == 443 and ports["https"]["targetPort"] == "https"
    assert ports["metrics"]["targetPort"] == "https"
    selector = service["spec"]["selector"]
    pod_labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    test_pod = find(docs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert not selector.items() <= test_pod["metadata"]["labels"].items()
    assert SERVICE_HOST in test_pod["spec"]["containers"][0]["args"][0]


def test_server_timeout_follows_the_largest_webhook_timeout(helm: Helm) -> None:
    args = container(helm.template(*CERT_MANAGER))["args"]
    assert arg_value(args, "--timeout") == "5"
    args = container(
        helm.template(
            *CERT_MANAGER,
            "--set",
            "webhook.workloads.enabled=true",
            "--set",
            "webhook.workloads.timeoutSeconds=12",
        )
    )["args"]
    assert arg_value(args, "--timeout") == "12"


# --------------------------------------------------------------------------- webhooks


def vwc(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "ValidatingWebhookConfiguration", FULLNAME)


def excluded_namespaces(webhook: dict[str, Any]) -> list[str]:
    (expression,) = webhook["namespaceSelector"]["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "NotIn"
    return list(expression["values"])


def test_default_validating_webhook_is_narrow(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    (webhook,) = vwc(docs)["webhooks"]
    assert webhook["name"] == f"plugin-configmaps.{SERVICE_HOST}"
    assert webhook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["configmaps"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["objectSelector"] == {
        "matchExpressions": [{"key": "workflows.argoproj.io/configmap-type", "operator": "Exists"}]
    }
    assert excluded_namespaces(webhook) == ["kube-system", "kube-node-lease", NAMESPACE]
    assert "matchLabels" not in webhook["namespaceSelector"]
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert webhook["matchPolicy"] == "Equivalent"
    assert webhook["clientConfig"] == {
        "service": {"name": FULLNAME, "namespace": NAMESPACE, "path": "/validate", "port": 443}
    }
    assert find_all(docs, "MutatingWebhookConfiguration") == []


def test_webhook_values_reach_the_configuration(helm: Helm) -> None:
    docs = helm.template(
        *CERT_MANAGER,
        "--set",
        "webhook.failurePolicy=Ignore",
        "--set",
        "webhook.timeoutSeconds=2",
        "--set",
        "webhook.excludeNamespaces={team-a,kube-system}",
        "--set",
        "webhook.namespaceLabels.argo-enabled=yes",
        "--set",
        "service.port=8444",
    )
    (webhook,) = vwc(docs)["webhooks"]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 2
    assert excluded_namespaces(webhook) == ["kube-system", "kube-node-lease", NAMESPACE, "team-a"]
    assert webhook["namespaceSelector"]["matchLabels"] == {"argo-enabled": "yes"}
    assert webhook["clientConfig"]["service"]["port"] == 8444


def test_workload_webhook_is_opt_in_per_namespace(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER, "--set", "webhook.workloads.enabled=true")
    plugins, workloads = vwc(docs)["webhooks"]
    assert plugins["name"].startswith("plugin-configmaps.")
    assert workloads["name"] == f"workloads.{SERVICE_HOST}"
    assert workloads["failurePolicy"] == "Ignore"
    assert workloads["timeoutSeconds"] == 3
    assert workloads["namespaceSelector"]["matchLabels"] == {"argo-plugin-guard/validate": "true"}
    assert excluded_namespaces(workloads) == ["kube-system", "kube-node-lease", NAMESPACE]
    assert "objectSelector" not in workloads
    resources = {
        (g, r) for rule in workloads["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert {
        ("", "pods"),
        ("", "pods/ephemeralcontainers"),
        ("apps", "deployments"),
        ("batch", "cronjobs"),
        ("argoproj.io", "workflows"),
        ("argoproj.io", "cronworkflows"),
    } <= resources
    assert all(rule["scope"] == "Namespaced" for rule in workloads["rules"])
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in workloads["rules"])
    no_argo = helm.template(
        *CERT_MANAGER,
        "--set",
        "webhook.workloads.enabled=true",
        "--set",
        "webhook.workloads.argoWorkflows=false",
    )
    groups = {g for rule in vwc(no_argo)["webhooks"][1]["rules"] for g in rule["apiGroups"]}
    assert "argoproj.io" not in groups


def test_mutating_webhook_only_when_enabled(helm: Helm) -> None:
    assert find_all(helm.template(*CERT_MANAGER), "MutatingWebhookConfiguration") == []
    docs = helm.template(*CERT_MANAGER, "--set", "mutating.enabled=true")
    mwc = find(docs, "MutatingWebhookConfiguration", FULLNAME)
    (webhook,) = mwc["webhooks"]
    assert webhook["clientConfig"]["service"]["path"] == "/mutate"
    assert webhook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "operations": ["CREATE"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] <= 3
    assert webhook["reinvocationPolicy"] == "Never"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1", "v1beta1"]
    # Only opted-in Argo agent pods are sent: the same labels inject() requires.
    assert webhook["objectSelector"] == {
        "matchLabels": {
            COMPONENT_LABEL: AGENT_COMPONENT,
            INJECT_LABEL: "true",
        }
    }
    # Namespaces: excluded as for the validating webhooks, no extra opt-in by default.
    assert "matchLabels" not in webhook["namespaceSelector"]
    assert excluded_namespaces(webhook) == ["kube-system", "kube-node-lease", NAMESPACE]
    annotations = mwc["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{FULLNAME}-tls"
    labelled = helm.template(
        *CERT_MANAGER,
        "--set",
        "mutating.enabled=true",
        "--set",
        "mutating.namespaceLabels.team=argo",
        "--set",
        "webhook.excludeNamespaces={legacy}",
    )
    (webhook,) = find(labelled, "MutatingWebhookConfiguration", FULLNAME)["webhooks"]
    assert webhook["namespaceSelector"]["matchLabels"] == {"team": "argo"}
    assert excluded_namespaces(webhook) == ["kube-system", "kube-node-lease", NAMESPACE, "legacy"]


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against an object's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def test_mutating_webhook_sends_exactly_the_pods_inject_works_on(helm: Helm) -> None:
    from webhook.inject import Result, inject

    docs = helm.template(*CERT_MANAGER, "--set", "mutating.enabled=true")
    (webhook,) = find(docs, "MutatingWebhookConfiguration", FULLNAME)["webhooks"]
    selector = webhook["objectSelector"]
    review = json.loads(
        (REPO_ROOT / "tests" / "inject" / "data" / "agent-pod-review.json").read_text()
    )
    pod = review["request"]["object"]
    labels = pod["metadata"]["labels"]
    assert selector_matches(selector, labels)
    assert inject(pod, []).result is Result.NOTHING  # reached the injector
    for key, value in ((INJECT_LABEL, "false"), (COMPONENT_LABEL, "workflow")):
        changed = {**labels, key: value}
        assert not selector_matches(selector, changed)
        changed_pod = {**pod, "metadata": {**pod["metadata"], "labels": changed}}
        assert inject(changed_pod, []).result in (Result.NOT_OPTED_IN, Result.NOT_AGENT)
    # The agent pod's namespace is sent, the chart's own namespace is not.
    assert selector_matches(webhook["namespaceSelector"], {"kubernetes.io/metadata.name": "argo"})
    assert not selector_matches(
        webhook["namespaceSelector"], {"kubernetes.io/metadata.name": NAMESPACE}
    )


# --------------------------------------------------------------------------- TLS modes


def test_cert_manager_mode(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    config = vwc(docs)
    certificate_name = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert certificate_name == f"{NAMESPACE}/{FULLNAME}-tls"
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    serving = find(docs, "Certificate", f"{FULLNAME}-tls")["spec"]
    assert SERVICE_HOST in serving["dnsNames"]
    assert serving["privateKey"]["rotationPolicy"] == "Always"
    tls_volume = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert tls_volume["tls"]["secret"]["secretName"] == serving["secretName"]
    # The issuer chain resolves inside the render: selfSigned -> CA Certificate -> CA Issuer.
    issuers = {i["metadata"]["name"]: i["spec"] for i in find_all(docs, "Issuer")}
    ca_issuer = issuers[serving["issuerRef"]["name"]]
    ca_cert = find(docs, "Certificate", f"{FULLNAME}-ca")["spec"]
    assert ca_cert["isCA"] is True
    assert ca_issuer == {"ca": {"secretName": ca_cert["secretName"]}}
    assert issuers[ca_cert["issuerRef"]["name"]] == {"selfSigned": {}}
    assert serving["issuerRef"]["kind"] == "Issuer"


def test_cert_manager_with_an_existing_issuer(helm: Helm) -> None:
    docs = helm.template(*SCENARIOS["cert-manager-issuer-ref-plugins-registry"])
    assert find_all(docs, "Issuer") == []
    (certificate,) = find_all(docs, "Certificate")
    assert certificate["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "corp-ca",
    }


def test_existing_secret_mode(helm: Helm) -> None:
    docs = helm.template(*EXISTING_SECRET)
    config = vwc(docs)
    assert "cert-manager.io/inject-ca-from" not in config["metadata"].get("annotations", {})
    assert all(w["clientConfig"]["caBundle"] == CA_B64 for w in config["webhooks"])
    volumes = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["tls"]["secret"]["secretName"] == "my-tls"
    assert not [d for d in docs if d["apiVersion"].startswith("cert-manager.io/")]
    assert find_all(docs, "Secret") == []  # the chart never renders key material


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((*CERT_MANAGER, *EXISTING_SECRET), "choose one TLS mode"),
        (("--set", "tls.existingSecret=my-tls"), "tls.existingSecret needs tls.caBundle"),
        (
            (*CERT_MANAGER, "--set", f"tls.caBundle={CA_B64}"),
            "tls.caBundle is for tls.existingSecret",
        ),
        (("--set", f"tls.caBundle={CA_B64}"), "without it the server manages its own TLS"),
        (
            (*CERT_MANAGER, "--set", "tls.selfManaged.secretName=x"),
            "tls.selfManaged.secretName is for the self-managed TLS mode",
        ),
    ],
    ids=[
        "both",
        "secret-without-ca",
        "ca-with-cert-manager",
        "ca-without-secret",
        "self-managed-name-with-cert-manager",
    ],
)
def test_tls_mode_guards(helm: Helm, args: tuple[str, ...], message: str) -> None:
    proc = helm.template_raw(*args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "args", [(), CERT_MANAGER, EXISTING_SECRET], ids=["self-managed", "cert-manager", "existing"]
)
def test_rendering_is_deterministic(helm: Helm, args: tuple[str, ...]) -> None:
    everything = (
        *args,
        "--set",
        "webhook.workloads.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    )
    first = helm.template_text(*everything)
    assert first == helm.template_text(*everything)
    assert "PRIVATE KEY" not in first
    assert ("BEGIN CERTIFICATE" in first) == (args == EXISTING_SECRET)  # the test pod's CA


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("setting", "fragments"),
    [
        ("replicaCount=0", ["/replicaCount", "minimum"]),
        ("webhook.timeoutSeconds=31", ["/webhook/timeoutSeconds", "maximum"]),
        ("webhook.timeoutSeconds=0", ["/webhook/timeoutSeconds", "minimum"]),
        ("webhook.failurePolicy=Sometimes", ["/webhook/failurePolicy", "Fail", "Ignore"]),
        ("webhook.workloads.failurePolicy=Never", ["/webhook/workloads/failurePolicy"]),
        ("mutating.timeoutSeconds=60", ["/mutating/timeoutSeconds", "maximum"]),
        ("webhook.timeoutSecond=3", ["/webhook", "timeoutSecond"]),
        ("image.pullPolicy=Sometimes", ["/image/pullPolicy"]),
        ("image.tag=latest", ["/image/tag"]),
        ("image.digest=abc", ["/image/digest"]),
        ("podAntiAffinity=strict", ["/podAntiAffinity"]),
        ("server.workers=0", ["/server/workers", "minimum"]),
        ("server.logLevel=loud", ["/server/logLevel"]),
        ("server.reloadInterval=fast", ["/server/reloadInterval"]),
        ("resources=null", ["missing property 'resources'"]),
        ("resources.limits=null", ["/resources", "missing property 'limits'"]),
        ("tls.caBundle=not base64!", ["/tls/caBundle"]),
        ("policies.custom.Bad_Name\\.txt=x", ["/policies/custom"]),
        ("certManager.duration=90days", ["/certManager/duration"]),
        ("metrics.serviceMonitor.interval=often", ["/metrics/serviceMonitor/interval"]),
        ("plugins.fromCluster.enabled=yes", ["/plugins/fromCluster/enabled"]),
        ("plugins.fromCluster.namespaces={Bad_NS}", ["/plugins/fromCluster/namespaces"]),
    ],
)
def test_bad_values_fail_with_the_schema_message(
    helm: Helm, setting: str, fragments: list[str]
) -> None:
    proc = helm.template_raw(*CERT_MANAGER, "--set", setting)
    assert proc.returncode != 0, f"{setting} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr
    lint = helm.run("lint", "--strict", str(CHART), *CERT_MANAGER, "--set", setting)
    assert lint.returncode != 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "podDisruptionBudget.minAvailable=2"), "must be below replicaCount"),
        (("--set", "terminationGracePeriodSeconds=8"), "terminationGracePeriodSeconds (8)"),
        (("--set", "policies.existingConfigMap=x", "--set", "policies.custom[0].id=a"), "not both"),
        (("--set", "certManager.issuerRef.kind=ClusterIssuer"), "issuerRef needs a name"),
        (("--namespace", "kube-system"), "do not install into kube-system"),
        (
            ("--set", "plugins.registry=x", "--set", "plugins.fromCluster.enabled=true"),
            "choose one plugin registry",
        ),
        (("--set", "plugins.fromCluster.namespaces={argo}"), "needs plugins.fromCluster.enabled"),
    ],
)
def test_impossible_combinations_fail_with_our_message(
    helm: Helm, args: tuple[str, ...], message: str
) -> None:
    proc = helm.template_raw(*CERT_MANAGER, *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- policies


def load_configmap_policies(configmap: dict[str, Any], folder: Path) -> Any:
    folder.mkdir()
    for name, text in configmap["data"].items():
        (folder / name).write_text(text)
    return load_policies(folder)


def assert_mounted_policies(docs: list[dict[str, Any]], configmap_name: str) -> None:
    c = container(docs)
    assert arg_value(c["args"], "--policies") == "/policies"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/policies"]
    volumes = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes[mount["name"]]["configMap"]["name"] == configmap_name
    # No checksum annotation: the server reloads the folder, pods are not rolled.
    annotations = find(docs, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    assert not any("checksum" in key for key in annotations)


def test_custom_policies_from_files(helm: Helm, tmp_path: Path) -> None:
    chosen = ["plugin-resources", "plugin-security-context", "no-inline-secrets"]
    args: list[str] = list(CERT_MANAGER)
    for policy_id in chosen:
        source = REPO_ROOT / "policies" / f"{policy_id}.yaml"
        args += ["--set-file", f"policies.custom.{policy_id}\\.yaml={source}"]
    docs = helm.template(*args)
    configmap = find(docs, "ConfigMap", f"{FULLNAME}-policies")
    assert sorted(configmap["data"]) == sorted(f"{p}.yaml" for p in chosen)
    for policy_id in chosen:  # byte for byte what was given (bar the final newline)
        source = (REPO_ROOT / "policies" / f"{policy_id}.yaml").read_text()
        assert configmap["data"][f"{policy_id}.yaml"] == source.rstrip("\n")
    loaded = load_configmap_policies(configmap, tmp_path / "policies")
    assert sorted(loaded.policy_ids) == sorted(chosen)
    assert_mounted_policies(docs, configmap["metadata"]["name"])


def test_custom_policies_as_a_list_and_as_mappings(helm: Helm, tmp_path: Path) -> None:
    policy = yaml.safe_load((REPO_ROOT / "policies" / "plugin-ports.yaml").read_text())
    other = yaml.safe_load((REPO_ROOT / "policies" / "plugin-image-pinned.yaml").read_text())
    as_list = helm.template(
        *CERT_MANAGER, values={"policies": {"custom": [policy, other]}}, tmp=tmp_path
    )
    as_map = helm.template(
        *CERT_MANAGER,
        values={
            "policies": {"custom": {"plugin-ports.yaml": policy, "plugin-image-pinned.yaml": other}}
        },
        tmp=tmp_path,
    )
    for i, docs in enumerate((as_list, as_map)):
        configmap = find(docs, "ConfigMap", f"{FULLNAME}-policies")
        loaded = load_configmap_policies(configmap, tmp_path / f"policies-{i}")
        assert sorted(loaded.policy_ids) == ["plugin-image-pinned", "plugin-ports"]
        assert loaded.get("plugin-ports") is not None
        assert yaml.safe_load(configmap["data"]["plugin-ports.yaml"]) == policy
        assert_mounted_policies(docs, configmap["metadata"]["name"])


def test_existing_policies_configmap_and_plugin_registry(helm: Helm) -> None:
    docs = helm.template(*SCENARIOS["cert-manager-issuer-ref-plugins-registry"])
    assert find_all(docs, "ConfigMap") == []
    assert_mounted_policies(docs, "my-policies")
    c = container(docs)
    assert arg_value(c["args"], "--plugins") == "/plugins"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/plugins"]
    volumes = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes[mount["name"]]["configMap"]["name"] == "installed-plugins"


RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def kind_set(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def test_plugins_from_cluster_off_by_default_no_rbac_no_token(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    assert not RBAC_KINDS & kind_set(docs)
    args = container(docs)["args"]
    assert "--plugins-from-cluster" not in args and "--plugins-namespace" not in args
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False


def test_plugins_from_cluster_all_namespaces(helm: Helm) -> None:
    docs = helm.template(*SCENARIOS["cert-manager-plugins-from-cluster"])
    args = container(docs)["args"]
    assert "--plugins-from-cluster" in args and "--plugins-namespace" not in args
    assert "--plugins" not in args
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is True
    assert {"ClusterRole", "ClusterRoleBinding"} <= kind_set(docs)
    assert not {"Role", "RoleBinding"} & kind_set(docs)
    role = find(docs, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}
    ]
    binding = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": spec["serviceAccountName"], "namespace": NAMESPACE}
    ]
    sa = find(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == spec["serviceAccountName"]


def test_plugins_from_cluster_per_namespace_roles(helm: Helm) -> None:
    docs = helm.template(*SCENARIOS["existing-secret-plugins-from-namespaces"])
    args = container(docs)["args"]
    assert "--plugins-from-cluster" in args
    watched = [args[i + 1] for i, a in enumerate(args) if a == "--plugins-namespace"]
    assert watched == ["argo", "team-a"]
    assert not {"ClusterRole", "ClusterRoleBinding"} & kind_set(docs)
    roles = find_all(docs, "Role")
    bindings = find_all(docs, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["argo", "team-a"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["argo", "team-a"]
    for role in roles:
        assert role["rules"][0]["verbs"] == ["list", "watch"]
        assert role["rules"][0]["resources"] == ["configmaps"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_default_has_no_policies_configmap(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    assert find_all(docs, "ConfigMap") == []
    assert not [m for m in container(docs)["volumeMounts"] if m["mountPath"] == "/policies"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"policies": {"custom": {"a.yaml": "id: b\n"}}}, "the file must be named after its id"),
        ({"policies": {"custom": {"a.yaml": "[not, a, mapping"}}}, "is not a YAML mapping"),
        ({"policies": {"custom": [{"id": "a"}, {"id": "a"}]}}, 'two policies with id "a"'),
    ],
    ids=["id-mismatch", "not-yaml", "duplicate-id"],
)
def test_bad_custom_policies_fail_the_render(
    helm: Helm, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    proc = helm.template_raw(*CERT_MANAGER, values=values, tmp=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- metrics


def exported_metric_names() -> set[str]:
    """Every series name the server's own Metrics class can export."""
    from webhook.server.metrics import Metrics

    names: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_prometheus_rule_uses_the_server_metric_names(helm: Helm, monkeypatch: Any) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    docs = helm.template(*CERT_MANAGER, "--set", "metrics.prometheusRule.enabled=true")
    rule = find(docs, "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "ArgoPluginGuardSlowReviews",
        "ArgoPluginGuardFailingOpen",
        "ArgoPluginGuardCallsFailing",
        "ArgoPluginGuardPolicyReloadFailing",
    }
    exported = exported_metric_names()
    used = set()
    for alert in alerts.values():
        used |= set(re.findall(r"\bplugin_guard_[a-z_]+", alert["expr"]))
    assert used, "no plugin_guard metric in the rules"
    missing = {name for name in used if name not in exported}
    assert not missing, f"not exported by webhook/server/metrics.py: {missing}"
    # The label value the reload alert selects is the one the server writes.
    reload_expr = alerts["ArgoPluginGuardPolicyReloadFailing"]["expr"]
    assert 'result="error"' in reload_expr
    assert "1" in alerts["ArgoPluginGuardSlowReviews"]["expr"].split(">")[-1]
    assert "histogram_quantile(0.99" in alerts["ArgoPluginGuardSlowReviews"]["expr"]
    assert (
        "apiserver_admission_webhook_fail_open_count"
        in alerts["ArgoPluginGuardFailingOpen"]["expr"]
    )
    # The webhook-name regex matches the rendered webhook names.
    pattern = re.search(r'name=~"([^"]+)"', alerts["ArgoPluginGuardFailingOpen"]["expr"])
    assert pattern is not None
    regex = pattern.group(1).replace("\\\\", "\\")
    all_on = helm.template(*CERT_MANAGER, "--set", "webhook.workloads.enabled=true")
    for webhook in vwc(all_on)["webhooks"]:
        assert re.fullmatch(regex, webhook["name"]), (regex, webhook["name"])
    assert not re.fullmatch(regex, "plugin-configmaps.other.argo-plugin-guard.svc")


def test_reload_error_label_is_what_the_server_writes(monkeypatch: Any) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from webhook.server.metrics import Metrics

    metrics = Metrics()
    metrics.reload(False)
    samples = [
        s
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "plugin_guard_policy_reloads_total"
    ]
    assert [s.labels for s in samples] == [{"result": "error"}]


def test_service_monitor_scrapes_the_metrics_port_over_verified_tls(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER, "--set", "metrics.serviceMonitor.enabled=true")
    monitor = find(docs, "ServiceMonitor")["spec"]
    service = find(docs, "Service")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["scheme"] == "https" and endpoint["path"] == "/metrics"
    tls = endpoint["tlsConfig"]
    serving = find(docs, "Certificate", f"{FULLNAME}-tls")["spec"]
    assert tls["serverName"] in serving["dnsNames"]
    assert tls["ca"]["secret"] == {"name": serving["secretName"], "key": "ca.crt"}
    assert "insecureSkipVerify" not in tls


def test_values_file_documents_every_schema_property() -> None:
    """values.yaml and values.schema.json describe the same keys, each with a comment."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = (CHART / "values.yaml").read_text()

    def documented(node: dict[str, Any], path: str) -> bool:
        if f"# {path} --" in text:
            return True
        props = node.get("properties")
        group = bool(props) and node.get("additionalProperties") is False
        return group and all(documented(sub, f"{path}.{key}") for key, sub in props.items())

    def walk(node: dict[str, Any], value: Any, prefix: str) -> None:
        props = node.get("properties")
        if not props or node.get("additionalProperties") is not False:
            return
        assert set(value) <= set(props), f"{prefix or 'top level'}: values not in the schema"
        for key, sub in props.items():
            if key == "global":
                continue
            path = f"{prefix}{key}"
            assert key in value, f"{path} is in the schema but not in values.yaml"
            assert documented(sub, path), f"{path} has no '# {path} --' comment"
            if isinstance(value[key], dict) and f"# {path} --" not in text:
                walk(sub, value[key], path + ".")

    walk(schema, values, "")


def test_docs_values_table_matches_values_yaml() -> None:
    """docs/chart.md's values table lists exactly the documented values, same defaults."""
    page = (REPO_ROOT / "docs" / "chart.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Za-z0-9.]+)` \| `(.*?)` \|", page, flags=re.M))
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*# ([A-Za-z0-9.]+) -- ", text, flags=re.M))
    assert set(rows) == documented
    values = yaml.safe_load(text)
    for key, shown in rows.items():
        value: Any = values
        for part in key.split("."):
            value = value[part]
        if isinstance(value, str):
            assert shown in (value, '""'), key
        else:
            assert json.loads(shown.replace("\\|", "|")) == value, key
