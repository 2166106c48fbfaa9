"""Making a CA and the webhook's serving certificate (ECDSA P-256, `cryptography`).

Every function takes the time as an argument: renewal is decided on certificate dates,
and the tests move the clock instead of waiting. Certificates start a little before
`now` (`backdate`) so an API server whose clock is slightly behind still accepts a
certificate issued a moment ago.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_BACKDATE = dt.timedelta(minutes=5)


def backdate(validity: dt.timedelta) -> dt.timedelta:
    """How far before `now` a certificate starts: 5 minutes, less for short lifetimes
    (the tests use seconds), so the backdate never dominates the lifetime."""
    return min(MAX_BACKDATE, validity / 10)


@dataclass(frozen=True, slots=True, eq=False)
class Issued:
    """A certificate and its private key, parsed and as PEM. Equal when both are."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Issued):
            return NotImplemented
        return self.cert == other.cert and (
            self.key.private_numbers() == other.key.private_numbers()
        )

    def __hash__(self) -> int:
        return hash(self.cert)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def not_before(self) -> dt.datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc


def service_names(service: str, namespace: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The names the API server (and in-cluster clients) reach a Service by; the first,
    `<service>.<namespace>.svc`, is what the API server checks for `clientConfig.service`."""
    names = [
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        f"{service}.{namespace}",
        service,
    ]
    for name in extra:
        name = name.strip()
        if name and name not in names:
            names.append(name)
    return tuple(names)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(*, now: dt.datetime, validity: dt.timedelta, common_name: str) -> Issued:
    """A self-signed CA valid from (about) `now` for `validity`."""
    key = ec.generate_private_key(ec.SECP256R1())
    # A serial-like suffix: two CAs of one rollover are told apart by name in tools.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, now.strftime("%Y%m%dT%H%M%S%fZ")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(validity))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue_serving(
    ca: Issued, names: Sequence[str], *, now: dt.datetime, validity: dt.timedelta
) -> Issued:
    """A serving certificate for `names` (DNS names or IPs) signed by `ca`; it never
    outlives its CA."""
    if not names:
        raise ValueError("a serving certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + validity, ca.not_after)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(validity))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def covers(cert: x509.Certificate, names: Sequence[str]) -> bool:
    """True when every name is among the certificate's subject alternative names."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in ext.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in ext.get_values_for_type(x509.IPAddress)}
    want = set()
    for name in names:
        try:
            want.add(str(ipaddress.ip_address(name)))
        except ValueError:
            want.add(name)
    return want <= have


def same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    public = cert.public_key()
    return isinstance(public, ec.EllipticCurvePublicKey) and public.public_numbers() == (
        key.public_key().public_numbers()
    )
