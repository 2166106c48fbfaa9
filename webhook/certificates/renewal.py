"""When to make a new CA, a new serving certificate, and when to stop trusting an old CA.

`renew(material, names, now, policy)` is pure: it returns the material to store (the
same object when nothing is due), the changes made and why, and when the next decision
falls due. The rules, with the defaults (CA 5 years, serving certificate 90 days, the
lifetimes of the chart's cert-manager mode):

- the serving certificate is renewed when it has a third of its lifetime left (at 2/3:
  30 days before the end), or at once when it is missing, broken, expired, or does not
  cover the service names;
- the CA is rolled over when it has a third of its lifetime left (1.7 years before the
  end). The new CA joins the trust bundle *next to* the old one; the serving
  certificate stays the old CA's until the new CA has been in the bundle for `overlap`
  (every replica and every webhook configuration has the new bundle by then), then a
  serving certificate of the new CA replaces it; `overlap` after that, the old CA leaves
  the bundle. At every moment the certificate any replica serves is signed by a CA in
  the bundle the API server holds, so no call fails during the switch;
- a CA past its end, or one whose key is lost, is replaced at once (nothing to keep).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography import x509

from webhook.certificates.issuing import (
    Issued,
    backdate,
    covers,
    issue_serving,
    new_ca,
    signed_by,
)
from webhook.certificates.material import Material

DEFAULT_CA_VALIDITY = dt.timedelta(hours=43800)  # 5 years
DEFAULT_CERT_VALIDITY = dt.timedelta(hours=2160)  # 90 days
MAX_OVERLAP = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    ca_validity: dt.timedelta = DEFAULT_CA_VALIDITY
    cert_validity: dt.timedelta = DEFAULT_CERT_VALIDITY
    # Renew when this fraction of the lifetime is used (cert-manager's default is 2/3).
    renew_at: float = 2 / 3
    # How long a new CA sits in the bundle before it signs, and an old CA stays after it
    # stopped signing. None: 10 minutes, or a tenth of the serving certificate's life
    # when that is shorter. Must exceed the time a replica takes to notice a new Secret
    # (the reconcile interval) plus the API server's webhook-config refresh (~1 s).
    overlap: dt.timedelta | None = None
    ca_common_name: str = "argo-plugin-guard webhook CA"

    def __post_init__(self) -> None:
        if not 0 < self.renew_at < 1:
            raise ValueError("renew_at is a fraction of the lifetime, between 0 and 1")
        if self.cert_validity <= dt.timedelta(0) or self.ca_validity <= dt.timedelta(0):
            raise ValueError("validities must be positive")
        if self.cert_validity > self.ca_validity:
            raise ValueError("the serving certificate cannot outlive its CA")

    @property
    def settle(self) -> dt.timedelta:
        if self.overlap is not None:
            return self.overlap
        return min(MAX_OVERLAP, self.cert_validity / 10)

    def renew_before(self, validity: dt.timedelta) -> dt.timedelta:
        return validity * (1 - self.renew_at)


class Change(Enum):
    NEW_CA = "new CA"  # no usable CA: a fresh one, trusted alone
    ROLL_CA = "CA rollover"  # a new CA next to the old one
    ISSUE = "serving certificate issued"
    DROP_CA = "previous CA dropped from the bundle"


@dataclass(frozen=True, slots=True)
class Renewal:
    material: Material
    changes: tuple[tuple[Change, str], ...]
    next_due: dt.datetime  # when `renew` would next change something (if nothing else does)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _issued_at(cert: x509.Certificate, validity: dt.timedelta) -> dt.datetime:
    return cert.not_valid_before_utc + backdate(validity)


def renew(
    material: Material, names: Sequence[str], now: dt.datetime, policy: RenewalPolicy
) -> Renewal:
    changes: list[tuple[Change, str]] = []
    ca = material.ca
    previous = list(material.previous_cas)
    serving = material.serving
    settle = policy.settle

    # -- the CA
    if ca is None or ca.not_after <= now:
        why = "no usable CA in the Secret" if ca is None else "the CA has expired"
        ca = new_ca(now=now, validity=policy.ca_validity, common_name=policy.ca_common_name)
        changes.append((Change.NEW_CA, why))
    elif now >= ca.not_after - policy.renew_before(policy.ca_validity):
        previous.insert(0, ca.cert)
        ca = new_ca(now=now, validity=policy.ca_validity, common_name=policy.ca_common_name)
        changes.append((Change.ROLL_CA, f"the CA ends {ca_end(material)}: rolling over"))
    ca_settled_at = _issued_at(ca.cert, policy.ca_validity) + settle

    # Expired CAs verify nothing.
    kept = [c for c in previous if c.not_valid_after_utc > now]
    for cert in previous:
        if cert not in kept:
            changes.append((Change.DROP_CA, f"a previous CA expired on {_day(cert)}"))
    previous = kept

    # -- the serving certificate
    trusted_signer = serving is not None and any(
        signed_by(serving.cert, c) for c in (ca.cert, *previous)
    )
    why_issue = _why_issue(serving, names, now, policy, trusted_signer)
    if why_issue is None and serving is not None and not signed_by(serving.cert, ca.cert):
        if now >= ca_settled_at:
            why_issue = "switching to the new CA (it has been trusted long enough)"
    elif (
        why_issue is not None
        and serving is not None
        and previous
        and now < ca_settled_at
        and trusted_signer
        and serving.not_after > now
        and covers(serving.cert, names)
    ):
        # Due, but the new CA is not trusted everywhere yet and the current certificate
        # is still good: wait until it is (well within the remaining lifetime).
        why_issue = None
    if why_issue is not None:
        serving = issue_serving(ca, list(names), now=now, validity=policy.cert_validity)
        changes.append((Change.ISSUE, why_issue))

    # -- stop trusting previous CAs once the new CA's certificate has been out for a while
    assert serving is not None
    if previous and signed_by(serving.cert, ca.cert):
        out_since = _issued_at(serving.cert, policy.cert_validity)
        if now >= out_since + settle:
            for _ in previous:
                changes.append((Change.DROP_CA, "every replica serves the new CA's certificate"))
            previous = []

    if not changes:
        result = material
    else:
        result = Material(ca=ca, previous_cas=tuple(previous), serving=serving)
    return Renewal(result, tuple(changes), _next_due(result, now, policy))


def _why_issue(
    serving: Issued | None,
    names: Sequence[str],
    now: dt.datetime,
    policy: RenewalPolicy,
    trusted_signer: bool,
) -> str | None:
    if serving is None:
        return "no usable serving certificate in the Secret"
    if serving.not_after <= now:
        return "the serving certificate has expired"
    if not covers(serving.cert, names):
        return "the serving certificate does not cover " + ", ".join(names)
    if not trusted_signer:
        return "the serving certificate is not signed by a trusted CA"
    if now >= serving.not_after - policy.renew_before(policy.cert_validity):
        return f"the serving certificate ends {_day(serving.cert)}: renewing"
    return None


def _next_due(material: Material, now: dt.datetime, policy: RenewalPolicy) -> dt.datetime:
    ca, serving = material.ca, material.serving
    assert ca is not None and serving is not None
    times = [
        ca.not_after - policy.renew_before(policy.ca_validity),
        serving.not_after - policy.renew_before(policy.cert_validity),
    ]
    if material.previous_cas:
        settle = policy.settle
        if signed_by(serving.cert, ca.cert):
            times.append(_issued_at(serving.cert, policy.cert_validity) + settle)
        else:
            times.append(_issued_at(ca.cert, policy.ca_validity) + settle)
        times += [c.not_valid_after_utc for c in material.previous_cas]
    return max(now, min(times))


def ca_end(material: Material) -> str:
    return _day(material.ca.cert) if material.ca else "?"


def _day(cert: x509.Certificate) -> str:
    return cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> dt.timedelta:
    """`2160h`, `90d`, `1h30m`, `45s` (Go/cert-manager style, plus days)."""
    cleaned = text.strip().lower()
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned) or seconds <= 0:
        raise ValueError(f"{text!r} is not a duration like 2160h, 90d, 30m or 45s")
    return dt.timedelta(seconds=seconds)
