"""A local CA and a server certificate for `plugin-guard serve` without `--cert-file`.

Made with `cryptography` (already a dependency, unlike kopf's certbuilder/oscrypto
choice, whose reason was install size), by the same code as the self-managed cluster
certificates (`webhook.certificates.issuing`). Keys are ECDSA P-256: the handshake is several
times cheaper than RSA-2048 and every Kubernetes API server and curl accepts it.

Files live in a state folder with the names of a `kubernetes.io/tls` Secret, so the same
layout works when mounted: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`. They are reused
across restarts; the server certificate is re-issued (by the same CA) when it is about
to expire or does not cover the requested names.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webhook.certificates import issuing

DEFAULT_SANS: tuple[str, ...] = ("localhost", "127.0.0.1")
CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CertPaths:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "argo-plugin-guard"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalise_sans(sans: Iterable[str]) -> list[str]:
    """Default names first, then the extra ones; no duplicates, no wildcard addresses."""
    out: list[str] = []
    for san in (*DEFAULT_SANS, *sans):
        san = san.strip()
        if not san or san in ("0.0.0.0", "::") or san in out:
            continue
        out.append(san)
    return out


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically (temp file + rename), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_ca(common_name: str = "argo-plugin-guard local CA") -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    ca = issuing.new_ca(now=_now(), validity=dt.timedelta(days=CA_DAYS), common_name=common_name)
    return ca.cert_pem, ca.key_pem


def issue_server_cert(
    ca_cert_pem: bytes, ca_key_pem: bytes, sans: Sequence[str], *, days: int = SERVER_DAYS
) -> tuple[bytes, bytes]:
    """A server certificate for `sans`, signed by the CA: (certificate PEM, key PEM)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key")
    pair = issuing.issue_serving(
        issuing.Issued(ca_cert, ca_key),
        normalise_sans(sans),
        now=_now(),
        validity=dt.timedelta(days=days),
    )
    return pair.cert_pem, pair.key_pem


def _reusable(paths: CertPaths, sans: Sequence[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - RENEW_BEFORE > _now() and issuing.covers(cert, sans)


def ensure_local_certs(state_dir: Path, sans: Iterable[str] = ()) -> tuple[CertPaths, bool]:
    """Create (or reuse) the CA and server certificate; returns (paths, created)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = CertPaths(
        ca_cert=state_dir / "ca.crt",
        ca_key=state_dir / "ca.key",
        cert=state_dir / "tls.crt",
        key=state_dir / "tls.key",
    )
    names = normalise_sans(sans)
    if _reusable(paths, names):
        return paths, False
    try:
        ca_cert_pem, ca_key_pem = paths.ca_cert.read_bytes(), paths.ca_key.read_bytes()
        ca = x509.load_pem_x509_certificate(ca_cert_pem)
        serialization.load_pem_private_key(ca_key_pem, password=None)
        if ca.not_valid_after_utc - RENEW_BEFORE <= _now():
            raise ValueError("CA about to expire")
    except (OSError, ValueError, TypeError):
        ca_cert_pem, ca_key_pem = make_ca()
        write_private(paths.ca_key, ca_key_pem)
        write_private(paths.ca_cert, ca_cert_pem, 0o644)
    cert_pem, key_pem = issue_server_cert(ca_cert_pem, ca_key_pem, names)
    # Key first: a reader that sees the new certificate finds its key already there.
    write_private(paths.key, key_pem)
    write_private(paths.cert, cert_pem, 0o644)
    return paths, True
