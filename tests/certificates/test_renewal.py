"""The certificate life cycle on a moved clock: issuing, the Secret layout, renewal and
CA rollover. Every renewal rule is checked at the moment it falls due and just before;
a whole multi-year timeline is walked with lagging views of the bundle and of the
served certificate (another replica, the API server) to show no moment fails."""

from __future__ import annotations

import base64
import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from webhook.certificates import (
    Change,
    Material,
    RenewalPolicy,
    issue_serving,
    new_ca,
    parse_duration,
    renew,
    service_names,
)
from webhook.certificates.issuing import Issued, covers, signed_by
from webhook.certificates.material import CA_CRT, CA_KEY, TLS_CRT, TLS_KEY

T0 = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
NAMES = service_names("guard", "argo-plugin-guard")
DAY = dt.timedelta(days=1)
DEFAULT = RenewalPolicy()


def kinds(renewal: object) -> list[Change]:
    return [c for c, _ in renewal.changes]  # type: ignore[attr-defined]


def fresh(now: dt.datetime = T0, policy: RenewalPolicy = DEFAULT) -> Material:
    first = renew(Material(), NAMES, now, policy)
    assert kinds(first) == [Change.NEW_CA, Change.ISSUE]
    return first.material


def handshake(server: Issued, bundle_pem: bytes, hostname: str) -> None:
    """A real TLS handshake in memory: server with `server`, client trusting only
    `bundle_pem` and checking `hostname` (what the API server does)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_bytes(server.cert_pem)
        key.write_bytes(server.key_pem)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cadata=bundle_pem.decode())
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    srv = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for end, out, peer_in in ((client, c_out, s_in), (srv, s_out, c_in)):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
        if done == 2:
            return
    raise AssertionError("handshake did not finish")


# --------------------------------------------------------------------------- issuing


def test_service_names_start_with_what_the_api_server_checks() -> None:
    assert NAMES == (
        "guard.argo-plugin-guard.svc",
        "guard.argo-plugin-guard.svc.cluster.local",
        "guard.argo-plugin-guard",
        "guard",
    )
    assert service_names("a", "b", ["guard", " x.example ", ""])[-1] == "x.example"


def test_serving_certificate_passes_a_real_handshake_for_the_service_name_only() -> None:
    now = dt.datetime.now(dt.UTC)  # the TLS library checks dates on the real clock
    material = fresh(now)
    assert material.serving is not None
    handshake(material.serving, material.bundle_pem(), "guard.argo-plugin-guard.svc")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(material.serving, material.bundle_pem(), "other.argo-plugin-guard.svc")
    stranger = new_ca(now=now, validity=DAY, common_name="someone else")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(material.serving, stranger.cert_pem, "guard.argo-plugin-guard.svc")


def test_ca_and_serving_certificate_shape() -> None:
    material = fresh()
    assert material.ca is not None and material.serving is not None
    ca, leaf = material.ca.cert, material.serving.cert
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert signed_by(leaf, ca) and covers(leaf, NAMES)
    assert material.serving.not_after == T0 + DEFAULT.cert_validity
    assert material.ca.not_after == T0 + DEFAULT.ca_validity
    assert T0 - dt.timedelta(minutes=5) == material.serving.not_before


def test_serving_certificate_never_outlives_its_ca() -> None:
    ca = new_ca(now=T0, validity=DAY, common_name="short")
    leaf = issue_serving(ca, list(NAMES), now=T0, validity=10 * DAY)
    assert leaf.not_after == ca.not_after


# --------------------------------------------------------------------------- Secret layout


def test_secret_round_trip_uses_cert_manager_key_names() -> None:
    material = fresh()
    data = material.secret_data()
    assert set(data) == {TLS_CRT, TLS_KEY, CA_CRT, CA_KEY}
    assert base64.b64decode(data[CA_CRT]) == material.bundle_pem()
    again = Material.from_secret_data(data)
    assert again == material and again.problems == ()


def test_current_ca_is_found_by_its_key_not_by_its_place_in_the_bundle() -> None:
    material = fresh()
    rolled = renew(material, NAMES, T0 + DEFAULT.ca_validity * 0.7, DEFAULT).material
    assert len(rolled.trusted) == 2
    data = rolled.secret_data()
    certs = x509.load_pem_x509_certificates(base64.b64decode(data[CA_CRT]))
    swapped = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in reversed(certs))
    data[CA_CRT] = base64.b64encode(swapped).decode()
    read = Material.from_secret_data(data)
    assert read.ca is not None and rolled.ca is not None
    assert read.ca.cert == rolled.ca.cert
    assert read.previous_cas == rolled.previous_cas


def test_broken_entries_are_named_never_quoted() -> None:
    material = fresh()
    data = material.secret_data()
    other = fresh()
    data[TLS_KEY] = other.secret_data()[TLS_KEY]  # a key that does not match tls.crt
    data[CA_KEY] = "!!!not base64"
    read = Material.from_secret_data(data)
    assert read.serving is None and read.ca is None
    assert read.previous_cas == material.trusted  # the bundle is still trusted
    assert "tls.key: does not match tls.crt" in read.problems
    assert "ca.key: not base64" in read.problems
    text = " ".join(read.problems)
    assert "PRIVATE" not in text and data[TLS_KEY][:16] not in text
    assert Material.from_secret_data(None).problems == (
        "ca.key: missing",
        "ca.crt: missing",
        "tls.key: missing",
        "tls.crt: missing",
    )


def test_only_complete_material_is_written() -> None:
    with pytest.raises(ValueError):
        Material().secret_data()


# --------------------------------------------------------------------------- renewal rules


def test_nothing_changes_until_two_thirds_of_the_serving_life() -> None:
    material = fresh()
    due = T0 + DEFAULT.cert_validity * (2 / 3)
    quiet = renew(material, NAMES, due - dt.timedelta(seconds=1), DEFAULT)
    assert not quiet.changed and quiet.material is material
    assert quiet.next_due == due
    renewed = renew(material, NAMES, due, DEFAULT)
    assert kinds(renewed) == [Change.ISSUE]
    assert renewed.material.ca == material.ca  # same CA: the caBundle does not change
    assert renewed.material.bundle_pem() == material.bundle_pem()
    assert renewed.material.serving != material.serving


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ("expired", "has expired"),
        ("names", "does not cover"),
        ("foreign", "not signed by a trusted CA"),
    ],
)
def test_serving_certificate_replaced_at_once_when_unusable(change: str, expect: str) -> None:
    material = fresh()
    names = NAMES
    now = T0 + DAY
    if change == "expired":
        now = T0 + DEFAULT.cert_validity
    elif change == "names":
        names = service_names("renamed", "argo-plugin-guard")
    else:
        stranger = new_ca(now=T0, validity=DAY * 400, common_name="stranger")
        foreign = issue_serving(stranger, list(NAMES), now=T0, validity=DAY * 90)
        material = Material(ca=material.ca, serving=foreign)
    renewal = renew(material, names, now, DEFAULT)
    assert kinds(renewal) == [Change.ISSUE]
    assert expect in renewal.changes[0][1]
    serving = renewal.material.serving
    assert serving is not None and covers(serving.cert, names)


def test_ca_rollover_keeps_both_cas_then_switches_then_drops_the_old_one() -> None:
    policy = RenewalPolicy()
    settle = policy.settle
    assert settle == dt.timedelta(minutes=10)
    material = fresh(policy=policy)
    old_ca = material.ca
    assert old_ca is not None
    roll_at = T0 + policy.ca_validity * (2 / 3)
    material = renew(material, NAMES, roll_at - 10 * DAY, policy).material  # a recent one
    assert not renew(material, NAMES, roll_at - dt.timedelta(seconds=1), policy).changed

    rolled = renew(material, NAMES, roll_at, policy)
    assert kinds(rolled) == [Change.ROLL_CA]
    step1 = rolled.material
    assert step1.previous_cas == (old_ca.cert,)
    assert step1.serving == material.serving  # still the old CA's certificate
    assert rolled.next_due == roll_at + settle

    assert not renew(step1, NAMES, roll_at + settle - dt.timedelta(seconds=1), policy).changed
    switched = renew(step1, NAMES, roll_at + settle, policy)
    assert kinds(switched) == [Change.ISSUE]
    step2 = switched.material
    assert step2.ca == step1.ca and step2.previous_cas == (old_ca.cert,)
    assert step2.serving is not None and step2.ca is not None
    assert signed_by(step2.serving.cert, step2.ca.cert)
    assert switched.next_due == roll_at + 2 * settle

    dropped = renew(step2, NAMES, roll_at + 2 * settle, policy)
    assert kinds(dropped) == [Change.DROP_CA]
    assert dropped.material.previous_cas == ()
    assert dropped.material.serving == step2.serving


def test_serving_renewal_due_during_a_rollover_waits_for_the_new_ca() -> None:
    policy = RenewalPolicy()
    material = fresh(policy=policy)
    roll_at = T0 + policy.ca_validity * (2 / 3)
    # The last serving certificate before the rollover is due at the same moment.
    material = renew(material, NAMES, roll_at - policy.cert_validity * (2 / 3), policy).material
    rolled = renew(material, NAMES, roll_at, policy)
    assert kinds(rolled) == [Change.ROLL_CA]  # no ISSUE yet: the new CA is not trusted yet
    assert rolled.material.serving == material.serving
    later = renew(rolled.material, NAMES, roll_at + policy.settle, policy)
    assert kinds(later) == [Change.ISSUE]


def test_expired_ca_is_replaced_alone() -> None:
    material = fresh()
    later = T0 + DEFAULT.ca_validity + DAY  # the cluster was off for years
    renewal = renew(material, NAMES, later, DEFAULT)
    assert kinds(renewal) == [Change.NEW_CA, Change.ISSUE]
    assert renewal.material.previous_cas == ()


def test_lost_ca_key_keeps_the_old_ca_trusted_through_the_switch() -> None:
    material = fresh()
    data = material.secret_data()
    del data[CA_KEY]
    broken = Material.from_secret_data(data)
    now = T0 + DAY
    renewal = renew(broken, NAMES, now, DEFAULT)
    assert kinds(renewal) == [Change.NEW_CA]
    assert renewal.material.previous_cas == material.trusted
    assert renewal.material.serving == material.serving  # still served until the switch
    assert renewal.next_due == now + DEFAULT.settle


@pytest.mark.parametrize(
    "policy",
    [
        RenewalPolicy(),
        RenewalPolicy(ca_validity=dt.timedelta(hours=2), cert_validity=dt.timedelta(minutes=20)),
        RenewalPolicy(
            ca_validity=dt.timedelta(minutes=30),
            cert_validity=dt.timedelta(minutes=29),
            overlap=dt.timedelta(minutes=2),
        ),
    ],
    ids=["defaults", "short", "serving-as-long-as-ca"],
)
def test_timeline_no_moment_without_a_trusted_valid_certificate(policy: RenewalPolicy) -> None:
    """Walk four CA lifetimes. At every step, both a replica that is `lag` behind (still
    serving the certificate it read then) and an API server `lag` behind (still holding
    the caBundle of then) must complete the handshake check with the present."""
    step = min(policy.settle / 4, policy.cert_validity / 40)
    lag_steps = 1  # a lag below the overlap: what a reconcile interval shorter than it gives
    history: list[Material] = []
    now = T0
    material = Material()
    seen: set[Change] = set()
    end = T0 + policy.ca_validity * 4
    guard = 0
    while now < end:
        guard += 1
        assert guard < 20000, "timeline too long"
        renewal = renew(material, NAMES, now, policy)
        seen |= set(kinds(renewal))
        material = renewal.material
        assert renewal.next_due >= now
        history.append(material)
        views = history[-1 - lag_steps :]
        for past in views:
            for served, bundle in ((past, material), (material, past)):
                assert served.serving is not None
                leaf = served.serving.cert
                assert leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc
                assert any(
                    signed_by(leaf, ca) and ca.not_valid_after_utc > now for ca in bundle.trusted
                ), f"{now}: served certificate not trusted by a lagging bundle"
        assert len(material.trusted) <= 2
        # Jump to just before the next decision, or one step: never skip a decision.
        now = max(now + step, min(renewal.next_due, now + policy.cert_validity / 8))
    assert {Change.NEW_CA, Change.ROLL_CA, Change.ISSUE, Change.DROP_CA} <= seen


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RenewalPolicy(renew_at=1.0)
    with pytest.raises(ValueError):
        RenewalPolicy(ca_validity=DAY, cert_validity=2 * DAY)
    assert RenewalPolicy(cert_validity=dt.timedelta(seconds=30)).settle == dt.timedelta(seconds=3)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2160h", 2160 * 3600), ("90d", 90 * 86400), ("1h30m", 5400), ("45s", 45), ("1.5m", 90)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "90", "h", "10x", "0s", "5m3", "-5m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
