"""The certificate controller against the loopback fake API (real HTTP, the real
`webhook.kube` client): the create race, update conflicts, caBundle upkeep, API errors
and a CA rollover walked on a moved clock."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from webhook.certificates import Material, RenewalPolicy, ServingFiles, service_names
from webhook.certificates import controller as controller_module
from webhook.certificates.controller import (
    CertificateController,
    ControllerError,
    mutating,
    validating,
)
from webhook.certificates.issuing import signed_by
from webhook.kube import Cluster

from .conftest import MUTATING, NAMESPACE, SECRET, SERVICE, VALIDATING, ca_bundles

NAMES = service_names(SERVICE, NAMESPACE)
T0 = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def make_controller(
    kubeconfig: Path,
    folder: Path,
    *,
    clock: Callable[[], dt.datetime] | None = None,
    policy: RenewalPolicy | None = None,
    interval: float = 30.0,
) -> CertificateController:
    return CertificateController(
        connect=lambda: Cluster.connect(str(kubeconfig)),
        namespace=NAMESPACE,
        secret_name=SECRET,
        names=NAMES,
        webhooks=[validating(VALIDATING), mutating(MUTATING)],
        files=ServingFiles(folder),
        policy=policy,
        interval=interval,
        **({"clock": clock} if clock else {}),
    )


def stored(api: Any) -> Material:
    secret = api.get(SECRET, namespace=NAMESPACE, plural="secrets")
    return Material.from_secret_data(secret["data"])


def test_first_reconcile_creates_the_secret_writes_files_and_every_ca_bundle(
    fake_api: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    controller = make_controller(kubeconfig, tmp_path / "tls")
    material = controller.reconcile_once()
    secret = fake_api.get(SECRET, namespace=NAMESPACE, plural="secrets")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "argo-plugin-guard"
    assert stored(fake_api) == material
    bundle = base64.b64encode(material.bundle_pem()).decode()
    assert ca_bundles(fake_api) == [bundle, bundle, bundle]
    files = ServingFiles(tmp_path / "tls")
    served = x509.load_pem_x509_certificate(files.cert.read_bytes())
    (ca,) = x509.load_pem_x509_certificates(base64.b64decode(bundle))
    assert signed_by(served, ca)
    # A second reconcile reads and writes nothing new: GETs only.
    before = len(fake_api.requests)
    controller.reconcile_once()
    assert {r.method for r in fake_api.requests[before:]} == {"GET"}


def test_replicas_starting_together_end_with_one_secret_and_one_certificate(
    fake_api: Any, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every replica reads "absent" and creates; the API keeps the first, the others get
    409 AlreadyExists, read the winner's and serve it."""
    replicas = 4
    barrier = threading.Barrier(replicas, timeout=20)
    original = CertificateController._new_secret

    def all_at_once(self: CertificateController, material: Material) -> dict[str, Any]:
        barrier.wait()  # everyone has read 404 before anyone creates
        return original(self, material)

    monkeypatch.setattr(CertificateController, "_new_secret", all_at_once)
    controllers = [make_controller(kubeconfig, tmp_path / f"r{i}") for i in range(replicas)]
    results: list[Material | BaseException] = [Material()] * replicas

    def run(i: int) -> None:
        try:
            results[i] = controllers[i].reconcile_once()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(isinstance(r, Material) for r in results), results
    assert len(fake_api.objects("secrets")) == 1
    assert len(fake_api.requests_matching("POST", "/secrets")) == replicas  # a real race
    winner = stored(fake_api)
    served = {(tmp_path / f"r{i}" / "tls.crt").read_bytes() for i in range(replicas)}
    assert served == {winner.serving.cert_pem} if winner.serving else False
    bundle = base64.b64encode(winner.bundle_pem()).decode()
    assert set(ca_bundles(fake_api)) == {bundle}


def test_renewal_race_one_update_wins_the_other_rereads(
    fake_api: Any, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    first = make_controller(kubeconfig, tmp_path / "a", clock=clock)
    second = make_controller(kubeconfig, tmp_path / "b", clock=clock)
    original = first.reconcile_once()
    second.reconcile_once()
    clock.now = T0 + dt.timedelta(days=61)  # past 2/3 of 90 days: both decide to renew
    barrier = threading.Barrier(2, timeout=20)
    real_renew = controller_module.renew
    calls = {"n": 0}

    def renew_together(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            barrier.wait()  # both have read the same resourceVersion
        return real_renew(*args)

    monkeypatch.setattr(controller_module, "renew", renew_together)
    threads = [threading.Thread(target=c.reconcile_once) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    renewed = stored(fake_api)
    assert renewed.serving != original.serving and renewed.ca == original.ca
    assert len(fake_api.requests_matching("PUT", f"/secrets/{SECRET}")) == 2  # one got 409
    assert (tmp_path / "a" / "tls.crt").read_bytes() == (tmp_path / "b" / "tls.crt").read_bytes()
    assert (tmp_path / "a" / "tls.crt").read_bytes() == renewed.serving.cert_pem  # type: ignore[union-attr]


def test_a_removed_ca_bundle_comes_back(fake_api: Any, kubeconfig: Path, tmp_path: Path) -> None:
    controller = make_controller(kubeconfig, tmp_path / "tls", interval=0.1)
    controller.start()
    try:
        assert fake_api.wait_for(lambda: None not in ca_bundles(fake_api), 15)
        bundle = ca_bundles(fake_api)[0]
        # `kubectl apply` of the chart's render (no caBundle) replaces the configuration.
        from .conftest import install_configurations

        install_configurations(fake_api)
        assert ca_bundles(fake_api) == [None, None, None]
        assert fake_api.wait_for(lambda: ca_bundles(fake_api) == [bundle] * 3, 15)
    finally:
        controller.stop()


def test_api_errors_are_reasons_and_retries_not_crashes(
    fake_api: Any, kubeconfig: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    controller = make_controller(kubeconfig, tmp_path / "tls", interval=0.1)
    fake_api.fail("GET", f"/secrets/{SECRET}", 500, "etcdserver: leader changed", times=3)
    with pytest.raises(ControllerError, match=r"reading Secret .*: HTTP 500 InternalError"):
        controller.reconcile_once()
    assert controller.attempt() is False
    status = ServingFiles(tmp_path / "tls").status()
    assert status.serving is False and "HTTP 500" in (status.problem or "")
    with caplog.at_level(logging.INFO, logger="webhook.certificates"):
        controller.start()
        try:
            assert fake_api.wait_for(lambda: ServingFiles(tmp_path / "tls").status().serving, 15)
        finally:
            controller.stop()
    assert ServingFiles(tmp_path / "tls").status().problem is None
    retries = [r for r in caplog.records if r.getMessage() == "certificate controller: retrying"]
    assert retries and all(not r.exc_info for r in retries)  # no traceback for an API error
    assert "HTTP 500" in retries[0].__dict__["error"]


def test_forbidden_ca_bundle_write_keeps_serving_and_says_why(
    fake_api: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    controller = make_controller(kubeconfig, tmp_path / "tls")
    fake_api.fail(
        "PUT",
        f"/mutatingwebhookconfigurations/{MUTATING}",
        403,
        "cannot update resource",
        times=1,
    )
    assert controller.attempt() is False
    status = ServingFiles(tmp_path / "tls").status()
    assert status.serving is True  # the certificate is in place: the pod can be ready
    assert status.problem is not None
    assert f"MutatingWebhookConfiguration {MUTATING}: HTTP 403 Forbidden" in status.problem
    assert controller.attempt() is True


def test_missing_webhook_configuration_is_reported(
    fake_api: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    fake_api.delete(MUTATING, namespace="", plural="mutatingwebhookconfigurations")
    controller = make_controller(kubeconfig, tmp_path / "tls")
    assert controller.attempt() is False
    assert f"reading MutatingWebhookConfiguration {MUTATING}: HTTP 404" in (
        controller.problem or ""
    )
    assert None not in ca_bundles_validating(fake_api)


def ca_bundles_validating(api: Any) -> list[str | None]:
    obj = api.get(VALIDATING, namespace="", plural="validatingwebhookconfigurations")
    return [w["clientConfig"].get("caBundle") for w in obj["webhooks"]]


def test_ca_rollover_through_the_api_never_serves_an_untrusted_certificate(
    fake_api: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    """Two replicas on one moved clock, reconciling in turn, through a whole CA
    rollover: whatever either serves is signed by a CA of every caBundle."""
    policy = RenewalPolicy(ca_validity=dt.timedelta(hours=3), cert_validity=dt.timedelta(hours=1))
    clock = Clock()
    replicas = [
        make_controller(kubeconfig, tmp_path / f"r{i}", clock=clock, policy=policy) for i in (0, 1)
    ]
    step = policy.settle / 2
    for replica in replicas:
        replica.reconcile_once()
    seen_bundle_sizes = set()
    roll_at = T0 + policy.ca_validity * (2 / 3)
    while clock.now < roll_at + 4 * policy.settle:
        for replica in replicas:
            replica.reconcile_once()
            bundles = {b for b in ca_bundles(fake_api)}
            assert len(bundles) == 1
            trusted = x509.load_pem_x509_certificates(base64.b64decode(bundles.pop()))
            seen_bundle_sizes.add(len(trusted))
            for other in replicas:
                served = x509.load_pem_x509_certificate(other.files.cert.read_bytes())
                assert served.not_valid_after_utc > clock.now
                assert any(signed_by(served, ca) for ca in trusted), clock.now
        clock.now += step
    assert seen_bundle_sizes == {1, 2}  # a rollover happened, and ended


def test_log_lines_never_carry_key_material(
    fake_api: Any, kubeconfig: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from webhook.server.logs import JsonFormatter

    with caplog.at_level(logging.DEBUG, logger="webhook.certificates"):
        controller = make_controller(kubeconfig, tmp_path / "tls")
        controller.attempt()
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert lines and all(json.loads(line)["secret"] == f"{NAMESPACE}/{SECRET}" for line in lines)
    secret = fake_api.get(SECRET, namespace=NAMESPACE, plural="secrets")
    for line in lines:
        assert "PRIVATE KEY" not in line and secret["data"]["tls.key"][:24] not in line
