"""What the one Secret holds, and how it is read and written.

The Secret is of type `kubernetes.io/tls` with cert-manager's key names, so anything
that reads a cert-manager Secret (a ServiceMonitor's `tlsConfig.ca`, `kubectl`, the
chart's volume) reads this one too:

    tls.crt   the serving certificate (for <service>.<namespace>.svc and friends)
    tls.key   its private key
    ca.crt    the trust bundle: the current CA, then any previous CA still trusted
              during a rollover. Exactly these bytes go into every webhook's caBundle.
    ca.key    the current CA's private key (what signs the next serving certificate)

The current CA is the certificate of `ca.crt` whose public key is `ca.key`'s, so the
order inside the bundle carries no meaning. Reading is tolerant: a missing or broken
entry is reported in `problems` (never with its content) and the renewal rules replace
whatever is unusable.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webhook.certificates.issuing import Issued, same_key

SECRET_TYPE = "kubernetes.io/tls"
TLS_CRT = "tls.crt"
TLS_KEY = "tls.key"
CA_CRT = "ca.crt"
CA_KEY = "ca.key"


@dataclass(frozen=True, slots=True)
class Material:
    """The CA (with key), the CAs still trusted from before, and the serving pair."""

    ca: Issued | None = None
    previous_cas: tuple[x509.Certificate, ...] = ()
    serving: Issued | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def trusted(self) -> tuple[x509.Certificate, ...]:
        return ((self.ca.cert,) if self.ca else ()) + self.previous_cas

    def bundle_pem(self) -> bytes:
        """`ca.crt`, and the caBundle: current CA first, then previous ones."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.trusted)

    @property
    def complete(self) -> bool:
        return self.ca is not None and self.serving is not None

    def secret_data(self) -> dict[str, str]:
        """The Secret's `data` (base64 values, as the API wants them)."""
        if self.ca is None or self.serving is None:
            raise ValueError("only complete material is written to the Secret")
        raw = {
            TLS_CRT: self.serving.cert_pem,
            TLS_KEY: self.serving.key_pem,
            CA_CRT: self.bundle_pem(),
            CA_KEY: self.ca.key_pem,
        }
        return {k: base64.b64encode(v).decode("ascii") for k, v in raw.items()}

    @classmethod
    def from_secret_data(cls, data: Mapping[str, object] | None) -> Material:
        """Read a Secret's `data` (base64 values); never raises on bad content."""
        problems: list[str] = []
        raw: dict[str, bytes] = {}
        for key, value in (data or {}).items():
            if not isinstance(value, str):
                problems.append(f"{key}: not a string")
                continue
            try:
                raw[key] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                problems.append(f"{key}: not base64")

        ca_key = _private_key(raw, CA_KEY, problems)
        bundle = _certificates(raw, CA_CRT, problems)
        ca: Issued | None = None
        previous: list[x509.Certificate] = []
        for cert in bundle:
            if ca is None and ca_key is not None and same_key(cert, ca_key):
                ca = Issued(cert, ca_key)
            elif cert not in previous:
                previous.append(cert)
        if ca_key is not None and ca is None and bundle:
            problems.append(f"{CA_KEY}: matches no certificate of {CA_CRT}")

        serving: Issued | None = None
        serving_key = _private_key(raw, TLS_KEY, problems)
        serving_certs = _certificates(raw, TLS_CRT, problems)
        if serving_key is not None and serving_certs:
            if same_key(serving_certs[0], serving_key):
                serving = Issued(serving_certs[0], serving_key)
            else:
                problems.append(f"{TLS_KEY}: does not match {TLS_CRT}")
        return cls(ca=ca, previous_cas=tuple(previous), serving=serving, problems=tuple(problems))


def _private_key(
    raw: Mapping[str, bytes], key: str, problems: list[str]
) -> ec.EllipticCurvePrivateKey | None:
    if key not in raw:
        problems.append(f"{key}: missing")
        return None
    try:
        loaded = serialization.load_pem_private_key(raw[key], password=None)
    except (ValueError, TypeError):
        problems.append(f"{key}: not a PEM private key")
        return None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        problems.append(f"{key}: not an ECDSA key")
        return None
    return loaded


def _certificates(
    raw: Mapping[str, bytes], key: str, problems: list[str]
) -> list[x509.Certificate]:
    if key not in raw:
        problems.append(f"{key}: missing")
        return []
    try:
        certs = x509.load_pem_x509_certificates(raw[key])
    except ValueError:
        problems.append(f"{key}: not PEM certificates")
        return []
    return list(certs)
