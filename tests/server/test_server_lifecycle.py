"""Under load: policy hot reload, certificate rotation, graceful SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from webhook.policy import bundled_policies_dir
from webhook.server import certs

from .conftest import Client, Server, client_context

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
if not SHARED.is_dir():  # only outside CI: tests/conftest.py fails a CI run without it
    pytest.skip("shared/ is missing: this module reads its bench payloads", allow_module_level=True)
PAYLOAD_A = (SHARED / "bench" / "payloads" / "a-plugin-configmap-compliant.json").read_text()
PAYLOAD_B = (SHARED / "bench" / "payloads" / "b-plugin-configmap-violating.json").read_text()


def review_body(template: str = PAYLOAD_B) -> tuple[str, bytes]:
    review = json.loads(template)
    uid = str(uuid.uuid4())
    review["request"]["uid"] = uid
    return uid, json.dumps(review).encode()


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


# --------------------------------------------------------------------------- policies reload


def test_policy_hot_reload_keeps_last_good_set(start_server: Any, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(bundled_policies_dir(), policies)
    srv: Server = start_server(
        ["--workers", "2", "--policies", str(policies), "--reload-interval", "0.2"]
    )
    client = srv.client()

    def answer() -> dict[str, Any]:
        _, body = review_body()
        status, _, data = client.request("POST", "/validate", body)
        assert status == 200
        client.close()  # a new connection, so both workers get asked
        return dict(json.loads(data)["response"])

    first = answer()
    assert "[plugin-resources]" in first["status"]["message"]

    # 1. An edit is picked up: plugin-resources becomes Warn.
    resources = policies / "plugin-resources.yaml"
    good_text = resources.read_text()
    resources.write_text(good_text.replace("action: Enforce", "action: Warn"))

    def warned_everywhere() -> bool:
        answers = [answer() for _ in range(6)]
        return all(
            "[plugin-resources]" not in a.get("status", {}).get("message", "")
            and any(w.startswith("[plugin-resources]") for w in a.get("warnings", []))
            for a in answers
        )

    wait_for(warned_everywhere)

    # 2. A broken file: rejected, named in the log and in /readyz; last good set serves.
    broken = policies / "zz-broken.yaml"
    broken.write_text(
        "apiVersion: argo-plugin-guard/v1\nkind: Policy\nid: zz-broken\ndescription: x\n"
        "action: Enforc\nmatch: {targets: [pluginSidecar]}\nrules: []\n"
    )

    def degraded() -> dict[str, Any] | None:
        # Still ready (200): the last good set serves; the problem is reported.
        statuses = []
        for _ in range(6):
            status, _, data = client.request("GET", "/readyz")
            client.close()
            statuses.append((status, json.loads(data)))
        if all(s == 200 and body["status"] == "degraded" for s, body in statuses):
            return statuses[0][1]
        return None

    ready = wait_for(degraded)
    assert any("zz-broken.yaml" in p for p in ready["problems"])
    still = answer()
    assert any(w.startswith("[plugin-resources]") for w in still.get("warnings", []))
    errors = [e for e in srv.log_lines() if e.get("msg", "").startswith("reload failed")]
    assert errors and "zz-broken.yaml" in errors[0]["error"]
    assert errors[0].get("error_field") == "action"

    # 3. Fixed: ready again, and the original Enforce is back.
    broken.unlink()
    resources.write_text(good_text)

    def ready_everywhere() -> bool:
        for _ in range(6):
            status, _, data = client.request("GET", "/readyz")
            client.close()
            if status != 200 or json.loads(data)["status"] != "ready":
                return False
        return all("[plugin-resources]" in answer()["status"]["message"] for _ in range(4))

    wait_for(ready_everywhere)
    assert "Traceback" not in srv.log()


def test_plugins_registry_folder(start_server: Any, tmp_path: Path) -> None:
    """`--plugins DIR`: installed plugins the engine sees for cross-plugin checks."""
    review = json.loads(PAYLOAD_A)
    installed = json.loads(json.dumps(review["request"]["object"]))
    installed["metadata"] = {
        "name": "other-executor-plugin",
        "namespace": "argo",
        "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
    }
    registry = tmp_path / "plugins"
    registry.mkdir()
    (registry / "other.json").write_text(json.dumps(installed))
    srv: Server = start_server(["--workers", "1", "--plugins", str(registry)])
    status, _, data = srv.client().request("GET", "/readyz")
    assert status == 200 and json.loads(data)["plugins"] == 1
    review["request"]["uid"] = str(uuid.uuid4())
    status, answer = srv.client().post_json("/validate", review)
    assert status == 200
    response = answer["response"]
    # The same port (4355) as an installed plugin: plugin-unique-ports speaks.
    text = response.get("status", {}).get("message", "") + " ".join(response.get("warnings", []))
    assert "[plugin-unique-ports]" in text
    # The plugin itself in the registry is not a collision with itself.
    review["request"]["uid"] = str(uuid.uuid4())
    review["request"]["object"]["metadata"]["name"] = "other-executor-plugin"
    review["request"]["name"] = "other-executor-plugin"
    status, answer = srv.client().post_json("/validate", review)
    text = json.dumps(answer["response"])
    assert "[plugin-unique-ports]" not in text


# --------------------------------------------------------------------------- certificate rotation


def _serial(sock: ssl.SSLSocket) -> int:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_certificate_rotation_under_load_fails_no_request(
    start_server: Any, tmp_path: Path
) -> None:
    ca_pem, ca_key = certs.make_ca("rotation test CA")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca_pem)
    # The Kubernetes Secret volume layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>
    mount = tmp_path / "mount"
    mount.mkdir()

    def publish(generation: int) -> int:
        cert_pem, key_pem = certs.issue_server_cert(ca_pem, ca_key, ["localhost", "127.0.0.1"])
        version = mount / f"..v{generation}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert_pem)
        (version / "tls.key").write_bytes(key_pem)
        link = mount / "..data_tmp"
        link.symlink_to(version.name)
        os.replace(link, mount / "..data")  # the atomic swap kubelet does
        return int(x509.load_pem_x509_certificate(cert_pem).serial_number)

    serials = [publish(0)]
    (mount / "tls.crt").symlink_to("..data/tls.crt")
    (mount / "tls.key").symlink_to("..data/tls.key")
    srv: Server = start_server(
        [
            "--workers",
            "2",
            "--cert-file",
            str(mount / "tls.crt"),
            "--key-file",
            str(mount / "tls.key"),
        ],
        ca_file=ca_file,
    )
    context = client_context(ca_file)
    stop = threading.Event()
    seen: list[tuple[float, int]] = []
    failures: list[str] = []
    done = [0]
    lock = threading.Lock()

    # A kept-alive connection opened before the rotation keeps working through it.
    kept = Client(srv.port, ca_file)
    assert kept.request("GET", "/healthz")[0] == 200

    def load() -> None:
        while not stop.is_set():
            conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=context, timeout=10)
            try:
                uid, body = review_body(PAYLOAD_A)
                conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                assert conn.sock is not None
                serial = _serial(conn.sock)
                if resp.status != 200 or json.loads(data)["response"]["uid"] != uid:
                    raise AssertionError(f"HTTP {resp.status}: {data[:200]!r}")
                with lock:
                    seen.append((time.monotonic(), serial))
                    done[0] += 1
            except Exception as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
            finally:
                conn.close()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        # Symlink swaps (Secret volume), and one in-place rewrite (key first, then cert,
        # non-atomically: a half-written pair must not fail a handshake).
        for generation in range(1, 4):
            serials.append(publish(generation))
            time.sleep(0.4)
            assert kept.request("GET", "/healthz")[0] == 200
        cert_pem, key_pem = certs.issue_server_cert(ca_pem, ca_key, ["localhost", "127.0.0.1"])
        plain_cert, plain_key = tmp_path / "plain.crt", tmp_path / "plain.key"
        for target, data in ((mount / "tls.key", key_pem), (mount / "tls.crt", cert_pem)):
            with open(target, "wb") as fh:  # follows the symlink: rewrites ..data's file
                fh.write(data[: len(data) // 2])
                fh.flush()
                time.sleep(0.05)
                fh.write(data[len(data) // 2 :])
            time.sleep(0.1)
        serials.append(int(x509.load_pem_x509_certificate(cert_pem).serial_number))
        plain_cert.write_bytes(cert_pem)
        plain_key.write_bytes(key_pem)
        time.sleep(0.8)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:5]
    assert done[0] > 50
    observed = {serial for _, serial in seen}
    assert serials[-1] in observed, "new connections never saw the last certificate"
    assert len(observed & set(serials)) >= 3
    # Once a certificate was seen, an older one is never served again (per worker
    # caches are rebuilt on change; allow a small overlap window for in-flight handshakes).
    last_seen_at = min(t for t, s in seen if s == serials[-1])
    late_old = [s for t, s in seen if t > last_seen_at + 0.5 and s != serials[-1]]
    assert not late_old
    assert kept.request("GET", "/healthz")[0] == 200
    assert "Traceback" not in srv.log()


# --------------------------------------------------------------------------- graceful SIGTERM


def test_sigterm_under_load_loses_no_accepted_request(start_server: Any) -> None:
    srv: Server = start_server(["--workers", "2", "--threads", "4"])
    answered: dict[str, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    big = json.loads(PAYLOAD_A)
    big["request"]["object"]["data"]["padding"] = "p" * 400_000  # keep requests in flight longer
    big_text = json.dumps(big)

    def load(template: str) -> None:
        client = srv.client()
        while not stop.is_set():
            uid, body = review_body(template)
            try:
                status, _, data = client.request("POST", "/validate", body, retry=False)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    failures.append(f"{uid} {type(exc).__name__}")
                client.close()
                if isinstance(exc, ConnectionRefusedError):
                    return  # the listener is gone: the server has stopped accepting
                time.sleep(0.01)
                continue
            with lock:
                answered[uid] = status
            assert json.loads(data)["response"]["uid"] == uid

    threads = [threading.Thread(target=load, args=(t,)) for t in [PAYLOAD_A] * 4 + [big_text] * 4]
    for t in threads:
        t.start()
    time.sleep(1.5)
    before = len(answered)
    srv.terminate()
    rc = srv.wait(30)
    stop.set()
    for t in threads:
        t.join(30)
    assert rc == 0, srv.log()[-2000:]
    assert before > 20
    logged = {e["uid"] for e in srv.log_lines() if e.get("msg") == "admission review"}
    # Every review the server took in (and logged) reached its client with HTTP 200.
    lost = logged - set(answered)
    assert not lost, f"{len(lost)} accepted reviews never answered"
    assert set(answered.values()) == {200}
    assert "Traceback" not in srv.log()


def test_a_taken_port_is_one_clear_line(start_server: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    first = start_server(["--workers", "1"])
    second = subprocess.run(
        [
            sys.executable,
            "-c",
            "from webhook.cli import main; main()",
            "serve",
            "--port",
            str(first.port),
            "--state-dir",
            str(first.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: 127.0.0.1:{first.port} is already in use (another plugin-guard serve?); stop it or pick another --port"
    ]
    assert "Traceback" not in second.stderr and "gunicorn" not in second.stderr
    status, _, _ = first.client().request("GET", "/healthz")
    assert status == 200  # the first server is untouched
