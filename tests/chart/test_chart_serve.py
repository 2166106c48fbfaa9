"""The rendered Deployment's command line, run for real.

The container's `command` + `args` + `env` are taken from `helm template` and started
as they are, with every mounted path replaced by a local folder laid out the way the
kubelet lays out the volume (Secret and ConfigMap volumes: files are symlinks through
`..data` to a timestamped folder). The client trusts what the API server would trust
(the CA of the webhook configuration's caBundle, or the CA that cert-manager's
Certificate is issued by) and checks the host name the API server uses
(`<service>.<namespace>.svc`). This proves the chart's command line is one the server
accepts, that /readyz answers 200 with it, and that the mounted policies are in force.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.policy import load_policies

from .conftest import CERT_MANAGER, FULLNAME, NAMESPACE, REPO_ROOT, Helm, arg_value, container, find

CUSTOM_POLICIES = ["plugin-resources", "plugin-security-context", "plugin-unique-ports"]
REGISTRY_PLUGIN = REPO_ROOT / "examples" / "hardened-plugin" / "plugin.yaml"
AGENT_REVIEW = REPO_ROOT / "tests" / "inject" / "data" / "agent-pod-review.json"


# --------------------------------------------------------------------------- certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(dns_names: list[str]) -> tuple[bytes, bytes, bytes]:
    """(CA PEM, server certificate PEM, server key PEM), as cert-manager would issue them."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("chart-test-ca"))
        .issuer_name(_name("chart-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


# --------------------------------------------------------------------------- volumes


def kubelet_volume(folder: Path, files: Mapping[str, bytes | str], mode: int = 0o644) -> None:
    """Write files the way the kubelet's AtomicWriter does for Secret/ConfigMap volumes."""
    stamp = "..2026_11_25_10_00_00.000000001"
    (folder / stamp).mkdir(parents=True)
    for name, content in files.items():
        path = folder / stamp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(mode)
        (folder / name).symlink_to(f"..data/{name}")
    (folder / "..data").symlink_to(stamp)


def kubelet_update(folder: Path, files: Mapping[str, str], generation: int) -> None:
    """Change a ConfigMap volume as the kubelet does: new folder, atomic `..data` swap."""
    old = (folder / "..data").resolve()
    stamp = f"..2026_11_25_10_00_{generation:02d}.000000001"
    (folder / stamp).mkdir()
    for name, content in files.items():
        (folder / stamp / name).write_text(content)
    (folder / "..data_tmp").symlink_to(stamp)
    (folder / "..data_tmp").rename(folder / "..data")
    for entry in folder.iterdir():
        if not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    for name in files:
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")
    for stale in old.iterdir():
        stale.unlink()
    old.rmdir()


def volume_folders(
    deployment: dict[str, Any],
    root: Path,
    secrets: Mapping[str, Mapping[str, bytes]],
    configmaps: Mapping[str, Mapping[str, str]],
) -> dict[str, Path]:
    """Local folder for every mountPath of the webhook container."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    folders: dict[str, Path] = {}
    for mount in spec["containers"][0]["volumeMounts"]:
        volume = volumes[mount["name"]]
        folder = root / mount["name"]
        if "secret" in volume:
            secret = secrets[volume["secret"]["secretName"]]
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in secret]
            kubelet_volume(
                folder,
                {item["path"]: secret[item["key"]] for item in items},
                volume["secret"].get("defaultMode", 0o644),
            )
        elif "configMap" in volume:
            kubelet_volume(folder, configmaps[volume["configMap"]["name"]])
        elif "emptyDir" in volume:
            folder.mkdir()
        else:
            raise AssertionError(f"no stand-in for volume {volume}")
        folders[mount["mountPath"]] = folder
    return folders


def localize(value: str, folders: Mapping[str, Path]) -> str:
    """A container path -> the local stand-in; any other absolute path is an error."""
    for mount_path in sorted(folders, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(folders[mount_path]) + value[len(mount_path) :]
    assert not value.startswith("/"), f"{value} is not on any volume of the pod"
    return value


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, ca: bytes, host: str, log: Path):
        self.proc = proc
        self.port = port
        self.host = host
        self.log = log
        self.context = ssl.create_default_context(cadata=ca.decode())

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.sock = self.context.wrap_socket(raw, server_hostname=self.host)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, json.loads(payload)
        return resp.status, payload.decode()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve_rendered(
    deployment: dict[str, Any],
    folders: Mapping[str, Path],
    ca: bytes,
    host: str,
    log: Path,
) -> Iterator[Served]:
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    port = free_port()
    command = [str(Path(sys.executable).parent / c["command"][0]), *c["args"]]
    assert Path(command[0]).is_file(), f"{c['command'][0]} is not installed beside {sys.executable}"
    container_port = str(c["ports"][0]["containerPort"])
    assert command[command.index("--port") + 1] == container_port
    command[command.index("--port") + 1] = str(port)  # a free port instead of 8443
    command = [command[0], *(localize(arg, folders) for arg in command[1:])]
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    for var in c["env"]:
        env[var["name"]] = localize(var["value"], folders)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    served = Served(proc, port, ca, host, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{served.output()}")
            with contextlib.suppress(OSError):
                if served.request("GET", "/healthz")[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"server did not come up:\n{served.output()}")
            time.sleep(0.2)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(5)


def wait_for(condition: Any, settle: float, timeout: float = 20.0) -> None:
    """Until one worker shows the condition, then `settle` s for the other workers (each
    polls the folder on its own every reloadInterval)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)
    time.sleep(settle)


def plugin_review(name: str, port: int, uid: str) -> dict[str, Any]:
    container_spec = {
        "name": f"{name}-executor-plugin",
        "image": "example.com/plugin:1.0.0",
        "ports": [{"containerPort": port}],
        "securityContext": {"runAsNonRoot": True},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "namespace": "argo",
            "operation": "CREATE",
            "object": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"{name}-executor-plugin",
                    "namespace": "argo",
                    "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
                },
                "data": {"sidecar.container": yaml.safe_dump(container_spec)},
            },
        },
    }


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_cert_manager_render_with_custom_policies_and_registry_serves(
    helm: Helm, tmp_path: Path
) -> None:
    args: list[str] = [
        *CERT_MANAGER,
        "--set",
        "plugins.registry=installed-plugins",
        "--set",
        "server.reloadInterval=0.5",
        "--set",
        "mutating.enabled=true",
    ]
    for policy_id in CUSTOM_POLICIES:
        source = REPO_ROOT / "policies" / f"{policy_id}.yaml"
        args += ["--set-file", f"policies.custom.{policy_id}\\.yaml={source}"]
    docs = helm.template(*args)
    deployment = find(docs, "Deployment")
    certificate = find(docs, "Certificate", f"{FULLNAME}-tls")["spec"]
    policies = find(docs, "ConfigMap", f"{FULLNAME}-policies")
    vwc = find(docs, "ValidatingWebhookConfiguration")
    service = vwc["webhooks"][0]["clientConfig"]["service"]
    host = f"{service['name']}.{service['namespace']}.svc"  # what the API server checks

    ca, cert, key = make_certificates(certificate["dnsNames"])
    folders = volume_folders(
        deployment,
        tmp_path / "volumes",
        # cert-manager's Secret: tls.crt, tls.key and ca.crt (the pod mounts two of them).
        secrets={certificate["secretName"]: {"tls.crt": cert, "tls.key": key, "ca.crt": ca}},
        configmaps={
            policies["metadata"]["name"]: policies["data"],
            "installed-plugins": {"greet.yaml": REGISTRY_PLUGIN.read_text()},
        },
    )
    args_used = container(docs)["args"]
    assert "--policies" in args_used and "--plugins" in args_used

    with serve_rendered(deployment, folders, ca, host, tmp_path / "server.log") as server:
        status, ready = server.request("GET", "/readyz")
        assert status == 200, ready
        assert ready["status"] == "ready"
        assert ready["policies"] == len(CUSTOM_POLICIES)  # the mounted set, not the bundled
        assert ready["plugins"] >= 1

        # A plugin on the registry plugin's port breaks the custom unique-ports policy.
        status, answer = server.request("POST", "/validate", plugin_review("other", 4360, "u-1"))
        assert status == 200
        response = answer["response"]
        assert response["uid"] == "u-1" and response["allowed"] is False
        message = response["status"]["message"]
        assert "[plugin-unique-ports]" in message
        assert "[plugin-resources]" in message  # no resources in the reviewed plugin
        # Bundled-only policies are not in force: the custom set replaced them.
        assert "[plugin-image-pinned]" not in message

        status, answer = server.request("POST", "/validate", plugin_review("fine", 4399, "u-2"))
        assert "[plugin-unique-ports]" not in answer["response"].get("status", {}).get(
            "message", ""
        )

        # The mutating webhook injects the registry's plugin into an opted-in agent pod.
        mwc = find(docs, "MutatingWebhookConfiguration")
        assert mwc["webhooks"][0]["clientConfig"]["service"]["path"] == "/mutate"
        review = json.loads(AGENT_REVIEW.read_text())
        status, answer = server.request("POST", "/mutate", review)
        assert status == 200
        response = answer["response"]
        assert response["allowed"] is True and response["patchType"] == "JSONPatch"
        ops = json.loads(base64.b64decode(response["patch"]))
        sidecars = [op["value"] for op in ops if re.fullmatch(r"/spec/containers/\d+", op["path"])]
        assert [c["name"] for c in sidecars] == ["greet-executor-plugin"]
        assert sidecars[0]["volumeMounts"][-1]["subPath"] == "greet-executor-plugin"

        # Editing the policies ConfigMap: the server reloads it in place (the chart rolls
        # no pods for it), and a broken edit keeps the last good set while /readyz reports
        # it (still 200: the pods stay in the Service).
        kept = {k: v for k, v in policies["data"].items() if k != "plugin-resources.yaml"}
        kubelet_update(folders["/policies"], kept, 1)
        settle = 4 * float(arg_value(args_used, "--reload-interval") or 2)
        wait_for(lambda: server.request("GET", "/readyz")[1].get("policies") == len(kept), settle)
        _, answer = server.request("POST", "/validate", plugin_review("other", 4360, "u-3"))
        assert "[plugin-resources]" not in answer["response"]["status"]["message"]
        kubelet_update(folders["/policies"], {**kept, "broken.yaml": "id: [unclosed"}, 2)
        wait_for(lambda: server.request("GET", "/readyz")[1].get("status") == "degraded", settle)
        status, ready = server.request("GET", "/readyz")
        assert status == 200
        assert any("broken.yaml" in problem for problem in ready["problems"]), ready
        _, answer = server.request("POST", "/validate", plugin_review("other", 4360, "u-4"))
        assert "[plugin-unique-ports]" in answer["response"]["status"]["message"]

        status, metrics = server.request("GET", "/metrics")
        assert status == 200 and "plugin_guard_admission_requests_total" in metrics
        assert 'plugin_guard_policy_reloads_total{result="error"}' in metrics
        # The Prometheus multiprocess files are on the /dev/shm emptyDir.
        assert list((folders["/dev/shm"]).rglob("*.db")), "no metric files on /dev/shm"

        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.output()
    assert "Traceback" not in server.output()


@pytest.mark.slow
def test_existing_secret_render_with_bundled_policies_serves(helm: Helm, tmp_path: Path) -> None:
    dns_names = [f"{FULLNAME}.{NAMESPACE}.svc"]
    ca, cert, key = make_certificates(dns_names)
    docs = helm.template(
        "--set",
        "tls.existingSecret=webhook-tls",
        "--set",
        f"tls.caBundle={base64.b64encode(ca).decode()}",
    )
    deployment = find(docs, "Deployment")
    assert "--policies" not in container(docs)["args"]
    webhook = find(docs, "ValidatingWebhookConfiguration")["webhooks"][0]
    trusted = base64.b64decode(webhook["clientConfig"]["caBundle"])  # as the API server does
    service = webhook["clientConfig"]["service"]
    folders = volume_folders(
        deployment,
        tmp_path / "volumes",
        secrets={"webhook-tls": {"tls.crt": cert, "tls.key": key}},
        configmaps={},
    )
    host = f"{service['name']}.{service['namespace']}.svc"
    with serve_rendered(deployment, folders, trusted, host, tmp_path / "server.log") as server:
        status, ready = server.request("GET", "/readyz")
        assert status == 200, ready
        assert ready["policies"] == len(load_policies().policy_ids)  # the image's bundled set
        review = json.loads((REPO_ROOT / "examples" / "review-risky-plugin.json").read_text())
        status, answer = server.request("POST", service["path"], review)
        assert status == 200 and answer["response"]["allowed"] is False


def test_registry_in_a_configmap_volume_counts_each_plugin_once(tmp_path: Path) -> None:
    from webhook.server.state import load_registry

    kubelet_volume(tmp_path / "plugins", {"greet.yaml": REGISTRY_PLUGIN.read_text()})
    assert len(load_registry(tmp_path / "plugins")) == 1
