"""The chart's default TLS mode (self-managed): a zero-flag install, its RBAC, and the
rendered command line run for real against the loopback fake API.

The RBAC is proven least by the server's own traffic: every request the rendered server
sent while creating its Secret and writing the caBundles is allowed by the rendered
Roles (an RBAC evaluator with the API server's rules: verbs, resources, resourceNames,
and no resourceNames on `create`), and every rule and verb is needed by at least one of
those requests (remove one and a request is denied)."""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.support import kubefake

from .conftest import (
    CERT_MANAGER,
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    REPO_ROOT,
    Helm,
    container,
    find,
    find_all,
    kinds,
)
from .test_chart_serve import free_port, localize, volume_folders

ZERO_RELEASE = "x"
ZERO_FULLNAME = "x-argo-plugin-guard"
SELF_MANAGED_CI = ("--values", str(CI_VALUES / "self-managed-values.yaml"))


def zero_flag_render(helm: Helm) -> tuple[str, list[dict[str, Any]]]:
    """`helm template x charts/argo-plugin-guard`: no --set, no values, no namespace."""
    import yaml

    proc = helm.run("template", ZERO_RELEASE, str(CHART))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d]


def arg(args: Sequence[str], flag: str) -> str:
    assert flag in args, f"{flag} not in {args}"
    return args[list(args).index(flag) + 1]


# --------------------------------------------------------------------------- zero flags


def test_zero_flag_install_renders_lints_and_passes_the_schemas(helm: Helm) -> None:
    text, docs = zero_flag_render(helm)
    lint = helm.run("lint", "--strict", str(CHART))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "[WARNING]" not in lint.stdout and "[ERROR]" not in lint.stdout, lint.stdout
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    }, kinds(docs)
    # GitOps: the same bytes on every render, no key material, nothing for cert-manager.
    assert text == zero_flag_render(helm)[0]
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    assert not find_all(docs, "Secret")
    assert not [d for d in docs if d["apiVersion"].startswith("cert-manager.io/")]


def test_zero_flag_deployment_runs_the_self_managed_mode(helm: Helm) -> None:
    _, docs = zero_flag_render(helm)
    c = container(docs)
    args = c["args"]
    assert arg(args, "--tls-secret-name") == f"default/{ZERO_FULLNAME}-tls"
    assert arg(args, "--tls-service-name") == find(docs, "Service")["metadata"]["name"]
    assert arg(args, "--validating-webhook-configuration") == ZERO_FULLNAME
    assert "--mutating-webhook-configuration" not in args  # none is rendered by default
    assert "--cert-file" not in args and "--key-file" not in args
    assert arg(args, "--tls-dir").startswith("/tmp/")  # the in-memory emptyDir
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}
    assert "/tls" not in {m["mountPath"] for m in c["volumeMounts"]}
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    config = find(docs, "ValidatingWebhookConfiguration")
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    assert "cert-manager.io/inject-ca-from" not in (config["metadata"].get("annotations") or {})
    service = config["webhooks"][0]["clientConfig"]["service"]
    assert service["name"] == arg(args, "--tls-service-name")
    assert service["namespace"] == arg(args, "--tls-secret-name").split("/")[0]


def test_helm_test_pod_and_service_monitor_read_the_servers_secret(helm: Helm) -> None:
    _, docs = zero_flag_render(helm)
    secret = arg(container(docs)["args"], "--tls-secret-name").split("/")[1]
    test_pod = find(docs, "Pod")
    (env,) = test_pod["spec"]["containers"][0]["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "ca.crt"}
    monitored = helm.run(
        "template", ZERO_RELEASE, str(CHART), "--set", "metrics.serviceMonitor.enabled=true"
    )
    assert monitored.returncode == 0, monitored.stderr
    assert f"name: {secret}\n            key: ca.crt" in monitored.stdout


def test_other_modes_have_no_tls_rbac_and_no_token(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER)
    assert not [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "--tls-secret-name" not in container(docs)["args"]


# --------------------------------------------------------------------------- RBAC


def rbac_rules(docs: Sequence[Mapping[str, Any]], namespace: str) -> list[tuple[str, dict]]:
    """(scope, rule) for every rule bound to the server's ServiceAccount: scope is the
    Role's namespace, or "" for a ClusterRole (bound by a ClusterRoleBinding)."""
    sa = container_sa(docs)
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"].endswith("Role")}
    out = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding["subjects"]
        assert any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in subjects)
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        scope = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        for rule in role["rules"]:
            out.append((scope, rule))
    return out


def container_sa(docs: Sequence[Mapping[str, Any]]) -> str:
    return str(find(list(docs), "Deployment")["spec"]["template"]["spec"]["serviceAccountName"])


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> tuple[str, ...]:
    """(verb, group, resource, namespace, name) as the API server's authorizer sees them."""
    parts = [p for p in path.split("/") if p]
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else "")
    if method == "GET":
        verb = "watch" if query.get("watch") in ("true", "1") else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return verb, group, resource, namespace, name


def allowed(rules: Sequence[tuple[str, dict]], attrs: tuple[str, ...]) -> bool:
    verb, group, resource, namespace, name = attrs
    for scope, rule in rules:
        if scope and scope != namespace:
            continue
        if group not in rule["apiGroups"] or resource not in rule["resources"]:
            continue
        if verb not in rule["verbs"]:
            continue
        names = rule.get("resourceNames")
        # The API server: a create is never allowed by a rule with resourceNames.
        if names and (verb == "create" or name not in names):
            continue
        return True
    return False


def test_rbac_resource_names_are_the_rendered_objects(helm: Helm) -> None:
    docs = helm.template(*SELF_MANAGED_CI)
    args = container(docs)["args"]
    secret = arg(args, "--tls-secret-name").split("/")[1]
    assert secret == "plugin-guard-serving"  # tls.selfManaged.secretName
    role = find(docs, "Role", f"{find(docs, 'Deployment')['metadata']['name']}-tls")
    assert role["rules"][0]["resourceNames"] == [secret]
    cluster_role = find_all(docs, "ClusterRole")
    names = {
        (rule["resources"][0], tuple(rule["resourceNames"]))
        for role in cluster_role
        for rule in role["rules"]
        if rule.get("resourceNames")
    }
    assert names == {
        (
            "validatingwebhookconfigurations",
            (find(docs, "ValidatingWebhookConfiguration")["metadata"]["name"],),
        ),
        (
            "mutatingwebhookconfigurations",
            (find(docs, "MutatingWebhookConfiguration")["metadata"]["name"],),
        ),
    }


# --------------------------------------------------------------------------- run it


class SelfManagedRun:
    def __init__(self, api: Any, proc: subprocess.Popen[bytes], port: int, host: str, log: Path):
        self.api = api
        self.proc = proc
        self.port = port
        self.host = host
        self.log = log

    def request(
        self, method: str, path: str, context: ssl.SSLContext, body: Any = None
    ) -> tuple[int, Any]:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.sock = context.wrap_socket(raw, server_hostname=self.host)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def trusted(self) -> ssl.SSLContext:
        """What the API server trusts: the caBundle the server wrote into the applied
        ValidatingWebhookConfiguration."""
        (config,) = self.api.objects("validatingwebhookconfigurations")
        bundles = {w["clientConfig"].get("caBundle") for w in config["webhooks"]}
        assert len(bundles) == 1 and None not in bundles, bundles
        return ssl.create_default_context(cadata=base64.b64decode(bundles.pop()).decode())

    def wait_ready(self, timeout: float = 60) -> None:
        insecure = ssl._create_unverified_context()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with contextlib.suppress(OSError):
                if self.request("GET", "/readyz", insecure)[0] == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"not ready:\n{self.log.read_text()}")


@contextlib.contextmanager
def serve_self_managed(
    docs: list[dict[str, Any]], tmp: Path, interval: str | None = None
) -> Iterator[SelfManagedRun]:
    """The rendered webhook configurations applied to the fake API (as `kubectl apply` or
    Helm would), then the rendered command line, with the pod's emptyDirs as folders
    (and, if given, a shorter --tls-reconcile-interval, so a test need not wait)."""
    deployment = find(docs, "Deployment")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    (tmp / "volumes").mkdir()
    folders = volume_folders(deployment, tmp / "volumes", secrets={}, configmaps={})
    port = free_port()
    command = [str(Path(sys.executable).parent / c["command"][0]), *c["args"]]
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    if interval is not None:
        command[command.index("--tls-reconcile-interval") + 1] = interval
    command = [command[0], *(localize(a, folders) for a in command[1:])]
    service = find(docs, "Service")["metadata"]
    host = f"{service['name']}.{service['namespace']}.svc"
    with kubefake.FakeKubeApi() as api:
        for doc in docs:
            if doc["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                api.apply(doc)
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(api.kubeconfig(namespace=service["namespace"]))
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        for var in c["env"]:
            env[var["name"]] = localize(var["value"], folders)
        env["KUBECONFIG"] = str(kubeconfig)
        log = tmp / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            yield SelfManagedRun(api, proc, port, host, log)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(5)
    assert "Traceback" not in log.read_text()


@dataclass
class Observed:
    """What one run of the rendered server did (shared by the tests below)."""

    docs: list[dict[str, Any]]
    ready: tuple[int, Any]
    review: tuple[int, Any]
    mutating: dict[str, Any]
    secret: dict[str, Any]
    requests: set[tuple[str, ...]]


@pytest.fixture(scope="module")
def observed(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    """The ci/self-managed-values.yaml render, run against the fake API: ready, trusted
    through the caBundle it wrote, answering a review, then a renewal (someone removed
    the serving certificate from the Secret)."""
    docs = helm.template(*SELF_MANAGED_CI)
    with serve_self_managed(docs, tmp_path_factory.mktemp("served"), interval="0.2") as run:
        run.wait_ready()
        context = run.trusted()  # fails unless the server wrote the caBundle
        ready = run.request("GET", "/readyz", context)
        review = json.loads((REPO_ROOT / "examples" / "review-risky-plugin.json").read_text())
        answer = run.request("POST", "/validate", context, review)
        (secret,) = run.api.objects("secrets")
        broken = copy.deepcopy(secret)
        del broken["data"]["tls.crt"]
        run.api.apply(broken)
        assert run.api.wait_for(lambda: "tls.crt" in run.api.objects("secrets")[0]["data"], 20)
        (mutating,) = run.api.objects("mutatingwebhookconfigurations")
        requests = {request_attributes(r.method, r.path, r.query) for r in run.api.requests}
    return Observed(docs, ready, answer, mutating, secret, requests)


def test_rendered_server_is_trusted_through_the_ca_bundle_it_wrote(observed: Observed) -> None:
    status, ready = observed.ready
    assert status == 200 and ready["status"] == "ready", ready
    status, answer = observed.review
    assert status == 200 and answer["response"]["allowed"] is False
    assert all(w["clientConfig"].get("caBundle") for w in observed.mutating["webhooks"])
    assert observed.secret["metadata"]["name"] == "plugin-guard-serving"
    assert observed.secret["type"] == "kubernetes.io/tls"


def test_rbac_is_the_servers_traffic_and_nothing_more(observed: Observed) -> None:
    docs, requests = observed.docs, observed.requests
    namespace = find(docs, "Deployment")["metadata"]["namespace"]
    assert {a[0] for a in requests} == {"get", "create", "update"}
    rules = rbac_rules(docs, namespace)
    denied = [a for a in requests if not allowed(rules, a)]
    assert not denied, denied
    # Everything granted is used: drop any one verb of any rule and some request fails.
    for i, (scope, rule) in enumerate(rules):
        for verb in rule["verbs"]:
            fewer = [
                *rules[:i],
                (scope, {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}),
                *rules[i + 1 :],
            ]
            assert any(not allowed(fewer, a) for a in requests), (
                f"{verb} on {rule['resources']} is granted but never used"
            )
    # Named wherever RBAC can name: only `create` (and the registry's list/watch) is open.
    secret = arg(container(docs)["args"], "--tls-secret-name").split("/")[1]
    for other in [
        ("get", "", "secrets", namespace, "someone-elses"),
        ("update", "", "secrets", namespace, "someone-elses"),
        ("list", "", "secrets", namespace, ""),
        ("delete", "", "secrets", namespace, secret),
        ("get", "", "secrets", "kube-system", secret),
        ("update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "other"),
        ("update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "other"),
        ("list", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""),
        ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""),
    ]:
        assert not allowed(rules, other), other
