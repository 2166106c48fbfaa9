"""The files the TLS reloader reads, and the status file /readyz reads."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

from webhook.certificates import CertificateStatus, Material, RenewalPolicy, ServingFiles, renew
from webhook.certificates.issuing import service_names

NAMES = service_names("guard", "argo-plugin-guard")


def test_write_puts_a_loadable_pair_and_bundle_in_place_once(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    material = renew(Material(), NAMES, now, RenewalPolicy()).material
    files = ServingFiles(tmp_path / "tls")
    assert files.write(material) is True
    assert files.write(material) is False  # unchanged: no rename, no reload in the workers
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    assert files.ca.read_bytes() == material.bundle_pem()
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert not list(files.folder.glob(".*"))  # no temp file left behind
    renewed = renew(material, NAMES, now + dt.timedelta(days=61), RenewalPolicy()).material
    before = files.cert.stat().st_ino
    assert files.write(renewed) is True
    assert files.cert.stat().st_ino != before  # replaced by rename: the reloader's stat sees it


def test_placeholder_lets_the_server_listen_before_the_secret_is_read(tmp_path: Path) -> None:
    files = ServingFiles(tmp_path / "tls")
    files.write_placeholder(NAMES, dt.datetime.now(dt.UTC))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    assert not files.ca.exists()  # nothing is told to trust it


def test_status_round_trip_and_unreadable_status(tmp_path: Path) -> None:
    files = ServingFiles(tmp_path)
    assert files.status().serving is False
    assert "not started" in (files.status().problem or "")
    status = CertificateStatus(serving=True, problem="caBundle: 403", secret="ns/name")
    files.set_status(status)
    assert files.status() == status
    files.status_path.write_text("{half")
    broken = files.status()
    assert broken.serving is False and "not readable" in (broken.problem or "")
