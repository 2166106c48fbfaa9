"""The HTTP contract of the real server: JSON errors only, limits, probes, metrics, TLS,
and the local CA kept across restarts."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from .conftest import Client, Server

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PAYLOAD_B = SHARED / "bench" / "payloads" / "b-plugin-configmap-violating.json"


def assert_status_json(
    status: int, headers: dict[str, str], body: bytes, code: int
) -> dict[str, Any]:
    assert status == code, body[:300]
    assert headers["content-type"].startswith("application/json")
    data = json.loads(body)
    assert data["kind"] == "Status" and data["code"] == code and data["status"] == "Failure"
    assert isinstance(data["message"], str) and data["message"]
    assert b"<html" not in body.lower() and b"Traceback" not in body
    return dict(data)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/validate", 405),
        ("PUT", "/mutate", 405),
        ("DELETE", "/healthz", 405),
        ("GET", "/nope", 404),
        ("POST", "/", 404),
        ("POST", "/validate/", 404),
    ],
)
def test_routing_errors_are_json(server: Server, method: str, path: str, code: int) -> None:
    status, headers, body = server.client().request(
        method, path, b"{}" if method != "GET" else None
    )
    assert_status_json(status, headers, body, code)
    if code == 405:
        assert "POST" in headers["allow"] or "GET" in headers["allow"]


@pytest.mark.parametrize(
    ("content_type", "body", "code", "words"),
    [
        ("text/plain", b"{}", 415, "Content-Type"),
        ("application/x-www-form-urlencoded", b"a=b", 415, "Content-Type"),
        ("application/json", b"", 400, "not JSON"),
        ("application/json", b"{", 400, "not JSON"),
        ("application/json", b"\xff\xfe{}", 400, "UTF-8"),
        ("application/json", b"NaN", 400, "not JSON"),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, 400, "nested"),
        ("application/json; charset=utf-8", b"[]", 400, "AdmissionReview"),
        (
            "application/json",
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
            400,
            "request",
        ),
    ],
)
def test_bad_bodies_are_json_400s(
    server: Server, content_type: str, body: bytes, code: int, words: str
) -> None:
    status, headers, data = server.client().request(
        "POST", "/validate", body, {"Content-Type": content_type}
    )
    assert words in assert_status_json(status, headers, data, code)["message"]


def test_missing_content_type_is_415(server: Server) -> None:
    client = server.client()
    conn = client._connection()
    conn.putrequest("POST", "/validate", skip_accept_encoding=True)
    conn.putheader("Content-Length", "2")
    conn.endheaders(b"{}")
    resp = conn.getresponse()
    assert_status_json(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(), 415)


def test_body_limit_is_413_and_connection_survives(server: Server) -> None:
    client = server.client()
    big = b'{"x":"' + b"a" * (3 * 1024 * 1024) + b'"}'
    status, headers, body = client.request("POST", "/validate", big)
    assert_status_json(status, headers, body, 413)
    # Chunked, no Content-Length: still limited.
    conn = client._connection()
    conn.putrequest("POST", "/validate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"a" * 65536
    for _ in range(3 * 16 + 1):
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert_status_json(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(), 413)
    client.close()
    status, _, _ = client.request("GET", "/healthz")
    assert status == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_far_over_the_limit_is_413_not_a_reset(server: Server, framing: str) -> None:
    """40 MB, far past what used to be read before answering (4x the limit): the client
    sends it all before reading, as http.client and curl do, and still gets the 413."""
    conn = server.client()._connection()
    chunk = b"a" * 65536
    count = 40 * 1024 * 1024 // len(chunk)
    conn.putrequest("POST", "/validate")
    conn.putheader("Content-Type", "application/json")
    if framing == "chunked":
        conn.putheader("Transfer-Encoding", "chunked")
    else:
        conn.putheader("Content-Length", str(count * len(chunk)))
    conn.endheaders()
    for _ in range(count):
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if framing == "chunked" else chunk)
    if framing == "chunked":
        conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert_status_json(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(), 413)
    conn.close()


def test_just_under_the_limit_is_reviewed(server: Server) -> None:
    review = json.loads(PAYLOAD_B.read_text())
    review["request"]["uid"] = str(uuid.uuid4())
    review["request"]["object"]["data"]["padding"] = "p" * (3 * 1024 * 1024 - 20_000)
    body = json.dumps(review).encode()
    assert len(body) < 3 * 1024 * 1024
    status, _, data = server.client().request("POST", "/validate", body)
    assert status == 200
    assert json.loads(data)["response"]["allowed"] is False


def test_probes(server: Server) -> None:
    client = server.client()
    status, _, body = client.request("GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = client.request("GET", "/readyz")
    ready = json.loads(body)
    assert status == 200 and ready["status"] == "ready" and ready["policies"] > 0
    assert "problems" not in ready


def test_metrics_count_reviews_by_operation_kind_allowed_policy_action(server: Server) -> None:
    client = server.client()
    review = json.loads(PAYLOAD_B.read_text())
    for _ in range(4):  # both workers very likely see one
        review["request"]["uid"] = str(uuid.uuid4())
        status, _, _ = client.request("POST", "/validate", json.dumps(review).encode())
        assert status == 200
        client.close()
    client.request("GET", "/nope")
    status, headers, body = client.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert "# TYPE plugin_guard_admission_review_duration_seconds histogram" in text
    count = re.search(
        r'^plugin_guard_admission_review_duration_seconds_count\{allowed="false",kind="ConfigMap",'
        r'operation="CREATE",webhook="validate"\} (\d+)',
        text,
        re.M,
    )
    assert count and int(float(count.group(1))) >= 4
    assert re.search(
        r'^plugin_guard_admission_requests_total\{allowed="false",kind="ConfigMap",operation="CREATE",webhook="validate"\} ',
        text,
        re.M,
    )
    assert re.search(
        r'^plugin_guard_policy_results_total\{action="Enforce",kind="ConfigMap",operation="CREATE",policy="plugin-resources"\} ',
        text,
        re.M,
    )
    assert re.search(r'^plugin_guard_http_errors_total\{code="404"\} ', text, re.M)


def _tls_connect(port: int, ca: Path, version: ssl.TLSVersion) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 names
        context.minimum_version = version
        context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("ALL:@SECLEVEL=0")
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def test_tls_1_2_and_1_3_only(server: Server) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with _tls_connect(server.port, server.ca_file, version) as tls:
            assert tls.version() == version.name.replace("_", ".").replace("TLSv1.", "TLSv1.")
    for name in ("TLSv1", "TLSv1_1"):
        # The client offers the old version; the *server* must answer with a
        # protocol_version alert (not the client refusing locally).
        with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
            _tls_connect(server.port, server.ca_file, ssl.TLSVersion[name]).close()


def test_local_ca_sans_and_reuse_across_restarts(start_server: Any, tmp_path: Path) -> None:
    state = tmp_path / "pg-state"
    first = start_server(["--workers", "1", "--san", "plugin-guard.argo.svc"], state_dir=state)
    [created] = [e for e in first.log_lines() if e["msg"] == "created local CA"]
    assert created["caFile"] == str(state / "ca.crt")
    cert = x509.load_pem_x509_certificate((state / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {str(n) for n in sans.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in sans.get_values_for_type(x509.IPAddress)
    }
    assert {"localhost", "127.0.0.1", "plugin-guard.argo.svc"} <= names
    assert oct((state / "tls.key").stat().st_mode & 0o777) == "0o600"
    assert oct((state / "ca.key").stat().st_mode & 0o777) == "0o600"
    # localhost verifies too (hostname check on).
    context = ssl.create_default_context(cafile=str(state / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", first.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="localhost"),
    ):
        pass
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    first.stop()
    assert first.proc is not None and first.proc.returncode == 0

    second = start_server(["--workers", "1", "--san", "plugin-guard.argo.svc"], state_dir=state)
    [reused] = [e for e in second.log_lines() if e["msg"] == "reusing local CA"]
    assert reused["caFile"] == str(state / "ca.crt")
    assert {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()} == before
    status, _, _ = second.client().request("GET", "/healthz")
    assert status == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_printed_curl_lines_work(start_server: Any) -> None:
    srv = start_server(["--workers", "1"])
    lines = [line.strip() for line in srv.stdout().splitlines() if line.strip().startswith("curl ")]
    assert len(lines) == 2
    assert f"--cacert {srv.ca_file}" in lines[0]
    health = subprocess.run(shlex.split(lines[0]), capture_output=True, timeout=30, check=True)
    assert json.loads(health.stdout) == {"status": "ok"}
    review = subprocess.run(shlex.split(lines[1]), capture_output=True, timeout=30, check=True)
    answer = json.loads(review.stdout)
    assert answer["response"]["uid"] == "demo-1"
    assert answer["response"]["allowed"] is False  # no resources, no securityContext


def test_bad_policies_folder_fails_fast(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "broken.yaml").write_text("apiVersion: argo-plugin-guard/v1\nkind: Policy\nid: x\n")
    srv = Server(tmp_path, ["--policies", str(folder)])
    try:
        srv.start(wait=20)
    except AssertionError as exc:
        assert "broken.yaml" in str(exc)
        assert "Traceback" not in str(exc)
    else:
        srv.stop()
        pytest.fail("server started with a broken policy folder")
    assert srv.proc is not None and srv.proc.returncode == 2


def test_cert_without_key_is_a_usage_error(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    srv = Server(tmp_path, ["--cert-file", str(cert)])
    with pytest.raises(AssertionError, match="go together"):
        srv.start(wait=20)


def test_gunicorn_level_errors_are_json_too(server: Server) -> None:
    """A request gunicorn itself rejects (bad request line) gets JSON, not HTML."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"BROKEN\r\n\r\n")
        data = b""
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/json" in head
    assert json.loads(body)["code"] == 400


def test_client_helper_reconnects(server: Server) -> None:
    client = Client(server.port, server.ca_file)
    for _ in range(3):
        assert client.request("GET", "/healthz")[0] == 200
        client.close()
