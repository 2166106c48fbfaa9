"""Self-managed TLS (the chart's default) against the real API server.

The chart is rendered with its default TLS mode and applied (ServiceAccount, Role,
ClusterRole and bindings, webhook configurations without any caBundle); the rendered
`serve` command line runs on loopback as the chart's ServiceAccount (a token-file user),
so the real authorizer enforces the chart's RBAC (resourceNames included) on every call
the certificate controller makes. The webhooks are pointed at the local server by URL
(no Service network here), so `--san 127.0.0.1` is added: the API server checks the URL's
host against the certificate as it checks `<service>.<namespace>.svc` in a cluster.
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from .controlplane import ControlPlane, ManagedProcess, _http_ok, free_port, wait_until
from .guard import (
    GUARD_USER,
    RELEASE_NAMESPACE,
    ensure_namespace,
    helm_template,
    plugin_configmap,
    plugin_guard_binary,
    point_webhooks_at,
    wait_for_webhook,
)

pytestmark = pytest.mark.realapi

REPO_ROOT = Path(__file__).resolve().parents[2]
RISKY = REPO_ROOT / "examples" / "risky-plugin-configmap.yaml"
HARDENED_CONTAINER = {
    "name": "hardened",
    "image": "ghcr.io/example/hardened-plugin:1.0.0",
    "ports": [{"containerPort": 4356}],
    "resources": {
        "requests": {"cpu": "50m", "memory": "32Mi"},
        "limits": {"cpu": "100m", "memory": "64Mi"},
    },
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


class Install:
    """The chart rendered in self-managed mode with its webhooks at `port`, applied."""

    def __init__(self, control_plane: ControlPlane, folder: Path) -> None:
        self.control_plane = control_plane
        self.folder = folder
        self.port = free_port()
        self.secret = f"tls-{uuid.uuid4().hex[:8]}"  # a fresh Secret per test
        values = {
            "tls": {"selfManaged": {"secretName": self.secret}},
            "mutating": {"enabled": True},
        }
        docs = helm_template(values, folder, control_plane.server_version())
        self.docs = point_webhooks_at(docs, f"https://127.0.0.1:{self.port}")
        deployment = next(d for d in self.docs if d["kind"] == "Deployment")
        self.args: list[str] = list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
        self.configurations = [
            (d["kind"], d["metadata"]["name"])
            for d in self.docs
            if d["kind"].endswith("WebhookConfiguration")
        ]
        ensure_namespace(control_plane, RELEASE_NAMESPACE)
        control_plane.apply(self.docs, check=True)

    def serve(self, port: int | None = None, extra: Sequence[str] = ()) -> ManagedProcess:
        """The rendered command line as the chart's ServiceAccount (loopback, a folder)."""
        args = list(self.args)
        args[args.index("--host") + 1] = "127.0.0.1"
        args[args.index("--port") + 1] = str(port or self.port)
        tls_dir = self.folder / f"tls-{uuid.uuid4().hex[:6]}"
        args[args.index("--tls-dir") + 1] = str(tls_dir)
        for flag, value in zip(extra[::2], extra[1::2], strict=True):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        log = self.folder / f"serve-{uuid.uuid4().hex[:6]}.log"
        env = self.control_plane.environment(GUARD_USER)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = ManagedProcess(
            "plugin-guard serve (self-managed TLS)",
            [str(plugin_guard_binary()), *args, "--san", "127.0.0.1", "--timeout", "1"],
            log,
            env=env,
        )
        return process

    def wait_ready(self, process: ManagedProcess, port: int | None = None) -> None:
        insecure = ssl._create_unverified_context()  # until ready, a placeholder is served
        wait_until(
            lambda: _http_ok(f"https://127.0.0.1:{port or self.port}/readyz", insecure, {}),
            60,
            "self-managed serve to be ready",
            interval=0.1,
            alive=lambda: None if process.alive() else process.log_tail(),
        )

    def ca_bundles(self) -> set[str]:
        bundles = set()
        for kind, name in self.configurations:
            obj = self.control_plane.kubectl("get", kind, name, "-o", "json", check=True).json()
            bundles |= {str(w["clientConfig"].get("caBundle") or "") for w in obj["webhooks"]}
        return bundles

    def stored_secret(self) -> dict[str, Any]:
        result = self.control_plane.kubectl(
            "get", "secret", self.secret, "-n", RELEASE_NAMESPACE, "-o", "json", check=True
        )
        return dict(result.json())

    def remove(self) -> None:
        for kind, name in self.configurations:
            self.control_plane.kubectl(
                "delete", kind, name, "--ignore-not-found", "--wait=false", check=True
            )


@pytest.fixture
def install(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Install]:
    installation = Install(control_plane, tmp_path)
    try:
        yield installation
    finally:
        installation.remove()


def served_certificate(port: int) -> bytes:
    insecure = ssl._create_unverified_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        insecure.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


def risky_probe() -> dict[str, Any]:
    probe = yaml.safe_load(RISKY.read_text())
    probe["metadata"].pop("namespace", None)
    return dict(probe)


def test_the_api_server_trusts_only_the_ca_the_server_wrote(
    control_plane: ControlPlane, install: Install
) -> None:
    assert install.ca_bundles() == {""}  # the chart renders no caBundle
    process = install.serve()
    try:
        install.wait_ready(process)
        (bundle,) = install.ca_bundles()
        secret = install.stored_secret()
        assert bundle == secret["data"]["ca.crt"]
        assert secret["type"] == "kubernetes.io/tls"
        # The API server calls the webhook (TLS verified against that caBundle alone)
        # and relays its verdict.
        wait_for_webhook(control_plane, risky_probe(), "default")
        result = control_plane.kubectl(
            "create",
            "--dry-run=server",
            "-n",
            "default",
            "-f",
            "-",
            input=yaml.safe_dump(plugin_configmap("hardened-executor-plugin", HARDENED_CONTAINER)),
        )
        assert result.returncode == 0, result.stderr
        # What it served is the Secret's certificate.
        served = served_certificate(install.port)
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        stored = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        assert served == stored.public_bytes(serialization.Encoding.DER)
    finally:
        process.stop()
    assert "Traceback" not in process.log_file.read_text()


def test_two_servers_race_for_the_secret_under_the_real_conflict_rules(
    control_plane: ControlPlane, install: Install
) -> None:
    second_port = free_port()
    first = install.serve()
    second = install.serve(port=second_port)
    try:
        install.wait_ready(first)
        install.wait_ready(second, second_port)
        secrets = control_plane.kubectl(
            "get", "secrets", "-n", RELEASE_NAMESPACE, "-o", "json", check=True
        ).json()["items"]
        mine = [s for s in secrets if s["metadata"]["name"] == install.secret]
        assert len(mine) == 1
        assert served_certificate(install.port) == served_certificate(second_port)
        (bundle,) = install.ca_bundles()
        assert bundle == mine[0]["data"]["ca.crt"]
        wait_for_webhook(control_plane, risky_probe(), "default")
    finally:
        first.stop()
        second.stop()
    for process in (first, second):
        assert "Traceback" not in process.log_file.read_text()


def test_renewal_under_kubectl_apply_traffic_fails_no_call(
    control_plane: ControlPlane, install: Install, make_namespace: Any
) -> None:
    """A 9 s serving certificate, renewed at 6 s, while kubectl keeps applying plugin
    ConfigMaps (the hardened one must be admitted, the risky one denied by the webhook,
    never an error calling it)."""
    process = install.serve(extra=["--tls-cert-validity", "9s", "--tls-reconcile-interval", "0.25"])
    namespace = make_namespace("tls")
    try:
        install.wait_ready(process)
        wait_for_webhook(control_plane, risky_probe(), namespace)
        first_certificate = served_certificate(install.port)
        failures: list[str] = []
        calls = 0
        deadline = time.monotonic() + 20
        renewed_at: float | None = None
        while time.monotonic() < deadline:
            good = plugin_configmap(
                f"hardened-{calls}-executor-plugin", HARDENED_CONTAINER, namespace
            )
            applied = control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(good))
            if applied.returncode != 0:
                failures.append(applied.stderr.strip())
            denied = control_plane.kubectl(
                "create",
                "--dry-run=server",
                "-n",
                namespace,
                "-f",
                "-",
                input=yaml.safe_dump(risky_probe()),
            )
            if denied.returncode == 0 or "denied the request" not in denied.stderr:
                failures.append(denied.stderr.strip() or "the risky plugin was admitted")
            calls += 2
            if renewed_at is None and served_certificate(install.port) != first_certificate:
                renewed_at = time.monotonic()
            if renewed_at is not None and time.monotonic() > renewed_at + 3:
                break
        assert renewed_at is not None, "no renewal during the traffic"
        assert not failures, failures[:3]
        assert calls >= 6
    finally:
        process.stop()
    log = process.log_file.read_text()
    assert "renewed: serving certificate issued" in log
    assert "Traceback" not in log


def test_helm_style_applies_keep_the_ca_bundle_and_a_replace_is_undone(
    control_plane: ControlPlane, install: Install
) -> None:
    """What upgrades and GitOps syncs do to the field the server owns: a client-side
    `kubectl apply` and a server-side apply of the chart's render (Helm 4) leave caBundle
    alone; a `kubectl replace` (Argo CD's Replace=true) removes it, and the server puts it
    back within its reconcile interval."""
    process = install.serve(extra=["--tls-reconcile-interval", "0.5"])
    configurations = [d for d in install.docs if d["kind"].endswith("WebhookConfiguration")]
    text = yaml.safe_dump_all(configurations)
    try:
        install.wait_ready(process)
        (bundle,) = install.ca_bundles()
        assert bundle
        control_plane.kubectl("apply", "-f", "-", input=text, check=True)
        assert install.ca_bundles() == {bundle}
        control_plane.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=helm",
            "-f",
            "-",
            input=text,
            check=True,
        )
        assert install.ca_bundles() == {bundle}
        control_plane.kubectl("replace", "-f", "-", input=text, check=True)
        wait_until(
            lambda: install.ca_bundles() == {bundle},
            20,
            "the caBundle to be written back",
            interval=0.1,
        )
        wait_for_webhook(control_plane, risky_probe(), "default")
    finally:
        process.stop()
    written = [
        line
        for line in process.log_file.read_text().splitlines()
        if '"caBundle written"' in line and "ValidatingWebhookConfiguration" in line
    ]
    assert len(written) == 2, written  # at start, and after the replace (not after the applies)
