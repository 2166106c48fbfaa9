"""`plugin-guard serve --tls-secret-name` for real (gunicorn master + workers, real TLS) against
the loopback fake API. The client trusts only what the API server would: the CA the
product wrote into the webhook configuration's caBundle, and checks the Service's name
(`guard.argo-plugin-guard.svc`), as the API server does."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from .conftest import (
    MUTATING,
    NAMESPACE,
    SECRET,
    SERVICE,
    VALIDATING,
    ca_bundles,
    install_configurations,
    kubefake,
)

SERVE = [sys.executable, "-c", "from webhook.cli import main; main()", "serve"]
HOSTNAME = f"{SERVICE}.{NAMESPACE}.svc"
REPO = Path(__file__).resolve().parents[2]
REVIEW = json.loads(
    (
        REPO.parent / "shared" / "bench" / "payloads" / "a-plugin-configmap-compliant.json"
    ).read_text()
)


class ServiceConnection(http.client.HTTPSConnection):
    """Connects to 127.0.0.1 but checks the certificate for the Service's DNS name."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        super().__init__(HOSTNAME, port, context=context, timeout=10)
        self.ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.ssl_context.wrap_socket(sock, server_hostname=HOSTNAME)

    def peer_der(self) -> bytes:
        assert isinstance(self.sock, ssl.SSLSocket)
        return self.sock.getpeercert(binary_form=True) or b""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TlsServer:
    def __init__(self, tmp: Path, kubeconfig: Path, args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.log_path = tmp / f"serve-{self.port}.log"
        cmd = [
            *SERVE,
            "--port",
            str(self.port),
            "--workers",
            "2",
            "--timeout",
            "1",  # seconds a SIGTERM waits for in-flight reviews: the tests stop quickly
            "--tls-secret-name",
            f"{NAMESPACE}/{SECRET}",
            "--tls-service-name",
            SERVICE,
            "--validating-webhook-configuration",
            VALIDATING,
            "--mutating-webhook-configuration",
            MUTATING,
            "--tls-dir",
            str(tmp / f"tls-{self.port}"),
            *args,
        ]
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, context: ssl.SSLContext) -> tuple[int, Any, bytes]:
        """(status, JSON body, the server certificate in DER)."""
        conn = ServiceConnection(self.port, context)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read()
            der = conn.peer_der()
        finally:
            conn.close()
        return resp.status, json.loads(data), der

    def wait_listening(self, timeout: float = 30) -> None:
        insecure = ssl._create_unverified_context()  # the placeholder: nothing trusts it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited:\n{self.log()}"
            with contextlib.suppress(OSError):
                status, _, _ = self.get("/healthz", insecure)
                if status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"server did not listen:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[TlsServer]]:
    started: list[TlsServer] = []
    yield started
    for server in started:
        server.stop()
    for server in started:
        text = server.log()
        assert "Traceback" not in text, text
        for line in text.splitlines():  # stdout too: this mode prints nothing for people
            assert line.startswith("{") and isinstance(json.loads(line), dict), line


def trusting_ca_bundle(api: Any) -> ssl.SSLContext:
    """What the API server trusts: the caBundle of the validating configuration."""
    bundles = set(ca_bundles(api))
    assert len(bundles) == 1 and None not in bundles, bundles
    bundle = base64.b64decode(str(bundles.pop())).decode()
    context = ssl.create_default_context(cadata=bundle)
    context.check_hostname = True
    return context


def review_once(port: int, context: ssl.SSLContext) -> tuple[bytes, bool]:
    """A new connection (a full handshake) and one AdmissionReview."""
    conn = ServiceConnection(port, context)
    try:
        conn.request("POST", "/validate", json.dumps(REVIEW), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        der = conn.peer_der()
    finally:
        conn.close()
    return der, resp.status == 200 and answer["response"]["allowed"] is True


def test_two_servers_starting_together_serve_one_certificate(
    fake_api: Any, kubeconfig: Path, tmp_path: Path, servers: list[TlsServer]
) -> None:
    servers += [TlsServer(tmp_path, kubeconfig), TlsServer(tmp_path, kubeconfig)]
    for server in servers:
        server.wait_listening()
    assert len(fake_api.objects("secrets")) == 1
    context = trusting_ca_bundle(fake_api)
    served = set()
    for server in servers:
        deadline = time.monotonic() + 20
        while True:
            status, body, der = server.get("/readyz", context)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200 and body["status"] == "ready", body
        assert body["certificate"]["secret"] == f"{NAMESPACE}/{SECRET}"
        served.add(der)
        assert review_once(server.port, context)[1]
    assert len(served) == 1  # both replicas serve the one Secret's certificate
    secret = fake_api.get(SECRET, namespace=NAMESPACE, plural="secrets")
    stored = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert served == {stored.public_bytes(serialization_der())}


def serialization_der() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER


def test_api_down_at_start_is_not_ready_with_the_reason_then_ready(
    tmp_path: Path, servers: list[TlsServer]
) -> None:
    api = kubefake.FakeKubeApi(port=free_port())  # not started yet: connection refused
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(api.kubeconfig(namespace=NAMESPACE))
    server = TlsServer(tmp_path, kubeconfig, ["--tls-reconcile-interval", "0.5"])
    servers.append(server)
    server.wait_listening()
    status, body, _ = server.get("/readyz", ssl._create_unverified_context())
    assert status == 503 and body["status"] == "not ready", body
    (problem,) = [p for p in body["problems"] if p.startswith("certificate:")]
    assert f"reading Secret {NAMESPACE}/{SECRET}: no answer" in problem, problem
    with api:
        install_configurations(api)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body, _ = server.get("/readyz", ssl._create_unverified_context())
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200 and body["status"] == "ready", body
        context = trusting_ca_bundle(api)
        assert review_once(server.port, context)[1]
    lines = server.log().splitlines()
    retries = [json.loads(line) for line in lines if '"certificate controller: retrying"' in line]
    assert retries, server.log()
    assert all("no answer" in r["error"] for r in retries)


def test_renewal_under_traffic_fails_no_review(
    fake_api: Any, kubeconfig: Path, tmp_path: Path, servers: list[TlsServer]
) -> None:
    """A 9 s serving certificate (renewed at 6 s) while a client keeps opening new
    connections and sending reviews, each trusting the caBundle as it is at that moment
    (as the API server does), plus one kept-alive connection: none fails."""
    server = TlsServer(
        tmp_path,
        kubeconfig,
        [
            "--tls-cert-validity",
            "9s",
            "--tls-ca-validity",
            "1h",
            "--tls-reconcile-interval",
            "0.25",
        ],
    )
    servers.append(server)
    server.wait_listening()
    deadline = time.monotonic() + 20
    while None in ca_bundles(fake_api) and time.monotonic() < deadline:
        time.sleep(0.05)
    failures: list[str] = []
    certificates: set[bytes] = set()
    stop = threading.Event()
    requests = {"n": 0}

    def fresh_connections() -> None:
        while not stop.is_set():
            try:
                der, ok = review_once(server.port, trusting_ca_bundle(fake_api))
            except (OSError, ssl.SSLError, AssertionError, ValueError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            requests["n"] += 1
            certificates.add(der)
            if not ok:
                failures.append("review not answered 200/allowed")

    kept = ServiceConnection(server.port, trusting_ca_bundle(fake_api))
    threads = [threading.Thread(target=fresh_connections) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        # Until a renewal has been served for a second (about 7 s), at most 12 s.
        end = time.monotonic() + 12
        renewed_at: float | None = None
        while time.monotonic() < end:
            if renewed_at is None and len(certificates) >= 2:
                renewed_at = time.monotonic()
            if renewed_at is not None and time.monotonic() > renewed_at + 1:
                break
            kept.request(
                "POST", "/validate", json.dumps(REVIEW), {"Content-Type": "application/json"}
            )
            resp = kept.getresponse()
            resp.read()
            if resp.status != 200:
                failures.append(f"kept-alive connection: {resp.status}")
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        kept.close()
    assert not failures, failures[:5]
    assert requests["n"] > 20
    assert len(certificates) >= 2, "no renewal happened during the test"
    renewed = [line for line in server.log().splitlines() if "renewed: serving certificate" in line]
    assert renewed, server.log()


def test_an_api_that_never_answers_does_not_hold_the_start(
    tmp_path: Path, servers: list[TlsServer]
) -> None:
    """A blackholed API server (connections accepted, nothing answered): the first attempt
    gives up after its short read timeout, so the server listens well within a kubelet's
    liveness budget, not ready and saying why."""
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(silent.accept()[0])

    acceptor = threading.Thread(target=accept_and_hold, daemon=True)
    acceptor.start()
    api = kubefake.FakeKubeApi(port=silent.getsockname()[1])  # only for its kubeconfig
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(api.kubeconfig(namespace=NAMESPACE))
    try:
        started = time.monotonic()
        server = TlsServer(tmp_path, kubeconfig)
        servers.append(server)
        server.wait_listening(timeout=25)
        assert time.monotonic() - started < 20
        status, body, _ = server.get("/readyz", ssl._create_unverified_context())
        assert status == 503, body
        assert any("timed out" in p.lower() for p in body["problems"]), body
    finally:
        stop.set()
        acceptor.join(5)
        for conn in held:
            conn.close()
        silent.close()
