"""The product against the real API server: a real `plugin-guard serve` on loopback, and
the chart's webhook configurations pointed at it.

There is no Service network without a kubelet and kube-proxy, so `register()` renders the
chart with `helm template`, applies everything it renders (ServiceAccount, RBAC, Service,
Deployment: stored, never run) and rewrites each webhook's `clientConfig.service` into
`clientConfig.url` = `https://127.0.0.1:<port><path>` of the local server, keeping the
`caBundle` the chart wrote (the CA that signed the local server's certificate).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .controlplane import (
    CertificateAuthority,
    ControlPlane,
    ManagedProcess,
    User,
    _http_ok,
    child_environment,
    free_port,
    json_log_lines,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "argo-plugin-guard"
RELEASE = "guard"
RELEASE_NAMESPACE = "argo-plugin-guard"
FULLNAME = f"{RELEASE}-argo-plugin-guard"
# The users the chart's ServiceAccount and the README's agent stand for (token-file users).
GUARD_USER = User.service_account(RELEASE_NAMESPACE, FULLNAME)
AGENT_NAMESPACE = "argo"
AGENT_USER = User.service_account(AGENT_NAMESPACE, "argo-plugin-guard-agent")
NOBODY = User("e2e-nobody")
# the chart's agent ServiceAccount (agent.enabled), for the failover test on a real Lease
CHART_AGENT_USER = User.service_account(RELEASE_NAMESPACE, f"{FULLNAME}-agent")
# the chart's audit ServiceAccount (audit.enabled), for the audit into real PolicyReports
CHART_AUDIT_USER = User.service_account(RELEASE_NAMESPACE, f"{FULLNAME}-audit")
USERS = (GUARD_USER, AGENT_USER, NOBODY, CHART_AGENT_USER, CHART_AUDIT_USER)
PLUGIN_LABEL = "workflows.argoproj.io/configmap-type"
# real plugins nobody here wrote (../shared/corpora/argo-plugins)
CORPUS = REPO_ROOT.parent / "shared" / "corpora" / "argo-plugins"


def plugin_guard_binary() -> Path:
    here = Path(sys.executable).parent / "plugin-guard"
    return here if here.exists() else Path(shutil.which("plugin-guard") or "plugin-guard")


def find_helm() -> Path:
    for candidate in (
        os.environ.get("HELM"),
        str(Path(sys.executable).parent / "helm"),
        str(REPO_ROOT / ".venv" / "bin" / "helm"),
        shutil.which("helm"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise FileNotFoundError("helm not found: `make e2e` installs it into .venv/bin/helm")


# --------------------------------------------------------------------------- the server


class GuardServer:
    """`plugin-guard serve` on a free loopback port with a certificate of its own CA."""

    def __init__(
        self,
        control_plane: ControlPlane,
        args: Sequence[str] = (),
        user: User | None = None,
        workers: int = 1,
        threads: int = 4,
    ) -> None:
        self.control_plane = control_plane
        self.folder = control_plane.workdir / f"guard-{uuid.uuid4().hex[:8]}"
        self.folder.mkdir()
        self.ca = CertificateAuthority.create("e2e-plugin-guard-ca")
        (self.folder / "ca.crt").write_bytes(self.ca.pem)
        self.cert_file, self.key_file = self.ca.write_serving_pair(self.folder, "tls")
        self.port = free_port()
        env = (
            control_plane.environment(user)
            if user is not None
            else child_environment({"HOME": str(self.folder)})
        )
        # prometheus_client's per-worker files inside our folder, not in /dev/shm
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.folder / "metrics")
        self.process = ManagedProcess(
            "plugin-guard serve",
            [
                str(plugin_guard_binary()),
                "serve",
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--cert-file={self.cert_file}",
                f"--key-file={self.key_file}",
                f"--state-dir={self.folder / 'state'}",
                f"--workers={workers}",
                f"--threads={threads}",
                *args,
            ],
            self.folder / "serve.log",
            env=env,
            separate_stdout=True,
        )
        context = self.client_context()
        wait_until(
            lambda: _http_ok(f"{self.url}/readyz", context, {}),
            60,
            "plugin-guard serve",
            interval=0.1,
            alive=lambda: (
                None
                if self.process.alive()
                else f"exited with {self.process.process.returncode}:\n{self.process.log_tail()}"
            ),
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        """base64 of the CA PEM, as a webhook configuration's caBundle carries it."""
        return base64.b64encode(self.ca.pem).decode()

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca.pem.decode())

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's log lines on stderr so far: every one a JSON object, the start-up
        facts (`serving`, the plugin registry, self-managed TLS) included."""
        return json_log_lines(self.process.log_file)

    def reviews(self) -> list[dict[str, Any]]:
        """The review log lines (one per AdmissionReview the server answered)."""
        return [line for line in self.log_lines() if line.get("msg") == "admission review"]

    def stop(self) -> int | None:
        return self.process.stop()


# --------------------------------------------------------------------------- the chart


def helm_template(
    values: Mapping[str, Any], folder: Path, kube_version: str
) -> list[dict[str, Any]]:
    values_file = folder / f"values-{uuid.uuid4().hex[:8]}.yaml"
    values_file.write_text(yaml.safe_dump(dict(values)))
    home = folder / "helm-home"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    proc = subprocess.run(
        [
            str(find_helm()),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            RELEASE_NAMESPACE,
            "--kube-version",
            kube_version,
            "--skip-tests",
            "--values",
            str(values_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"helm template failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def point_webhooks_at(docs: Sequence[dict[str, Any]], server_url: str) -> list[dict[str, Any]]:
    """The chart's documents with every webhook's service reference turned into a URL."""
    out = []
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        if doc["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            for hook in doc["webhooks"]:
                service = hook["clientConfig"].pop("service")
                hook["clientConfig"]["url"] = f"{server_url}{service.get('path', '/')}"
        out.append(doc)
    return out


@dataclass
class Installation:
    """What `register()` applied; `remove()` deletes the webhook configurations (the rest
    stays: namespaced objects cannot be removed cleanly without controllers, and are
    harmless)."""

    control_plane: ControlPlane
    server: GuardServer
    documents: list[dict[str, Any]]
    webhook_configurations: list[tuple[str, str]] = field(default_factory=list)

    def document(self, kind: str) -> dict[str, Any]:
        hits = [d for d in self.documents if d["kind"] == kind]
        assert len(hits) == 1, f"expected one {kind}, got {len(hits)}"
        return hits[0]

    def remove(self) -> None:
        for kind, name in self.webhook_configurations:
            self.control_plane.kubectl(
                "delete", kind, name, "--ignore-not-found", "--wait=false", check=True
            )


def ensure_namespace(
    control_plane: ControlPlane, name: str, labels: Mapping[str, str] | None = None
) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(labels or {})},
    }
    control_plane.apply([doc], check=True)


def register(
    control_plane: ControlPlane,
    server: GuardServer,
    values: Mapping[str, Any] | None = None,
) -> Installation:
    """Render the chart (TLS mode `tls.existingSecret` with the local server's CA as
    caBundle, plus `values`), point its webhooks at `server`, apply it as the admin."""
    base: dict[str, Any] = {
        "tls": {"existingSecret": f"{FULLNAME}-tls", "caBundle": server.ca_bundle},
    }
    merged = _deep_merge(base, dict(values or {}))
    docs = helm_template(merged, server.folder, control_plane.server_version())
    docs = point_webhooks_at(docs, server.url)
    ensure_namespace(control_plane, RELEASE_NAMESPACE)
    control_plane.apply(docs, check=True)
    installed = Installation(control_plane, server, docs)
    for doc in docs:
        if doc["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            installed.webhook_configurations.append((doc["kind"], doc["metadata"]["name"]))
    return installed


@contextlib.contextmanager
def installed(
    control_plane: ControlPlane, server: GuardServer, values: Mapping[str, Any] | None = None
) -> Iterator[Installation]:
    installation = register(control_plane, server, values)
    try:
        yield installation
    finally:
        installation.remove()


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- objects


def corpus_plugin(path: Path, namespace: str) -> dict[str, Any]:
    """A plugin ConfigMap of the corpus, placed in `namespace`."""
    doc = dict(yaml.safe_load(path.read_text()))
    doc["metadata"]["namespace"] = namespace
    return doc


def plugin_configmap(
    name: str, container: Mapping[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    """An executor plugin ConfigMap as `argo executor-plugin build` writes it."""
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {PLUGIN_LABEL: "ExecutorPlugin"},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {
            "sidecar.automountServiceAccountToken": "false",
            "sidecar.container": yaml.safe_dump(dict(container)),
        },
    }


def wait_for_webhook(
    control_plane: ControlPlane, probe: Mapping[str, Any], namespace: str, timeout: float = 30
) -> None:
    """Wait until the API server calls the webhook: a server-side dry run of `probe` (an
    object the webhook denies) is refused. The API server picks up new webhook
    configurations asynchronously, within about a second."""
    text = yaml.safe_dump(dict(probe))

    def denied() -> bool:
        result = control_plane.kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-", input=text
        )
        return result.returncode != 0 and "denied the request" in result.stderr

    wait_until(denied, timeout, "the webhook to be called by the API server", interval=0.2)
