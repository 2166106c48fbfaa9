"""What `/readyz` answers, built from conditions the server's parts register.

Ready means "can answer reviews". A policy edit or a certificate rotation that fails to
load leaves the last good set serving: that is reported (200, status "degraded", with the
problems; also a metric and a log line), not turned into 503, which would take every
replica out of the Service at once and, with failurePolicy Fail, block every plugin
ConfigMap in the cluster. 503 ("not ready") only while there is nothing to serve with:
no policies loaded, or a condition that says the server cannot serve yet.

A part of the server that has something to say registers a probe with the state:

    state.add_readiness_probe("certificate", lambda: Condition(ready=True, problem=None))

The probe runs on every `/readyz` request (keep it to a stat or a small file read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ReadinessStatus = Literal["ready", "degraded", "not ready"]


@dataclass(frozen=True, slots=True)
class Condition:
    """One probe's answer. `ready=False`: the server cannot answer reviews yet (503).
    A `problem` with `ready=True`: it serves, degraded (200, the problem listed)."""

    ready: bool = True
    problem: str | None = None
    # Shown in the /readyz body under the probe's name (e.g. which Secret, until when).
    details: Mapping[str, Any] | None = None


Probe = Callable[[], Condition]

READY = Condition()


@dataclass(frozen=True, slots=True)
class Readiness:
    """The `/readyz` answer."""

    status: ReadinessStatus
    policies: int
    plugins: int
    problems: tuple[str, ...] = ()
    details: Mapping[str, Mapping[str, Any]] | None = None

    @property
    def http_status(self) -> int:
        return 503 if self.status == "not ready" else 200

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "policies": self.policies,
            "plugins": self.plugins,
        }
        for name, details in (self.details or {}).items():
            body[name] = dict(details)
        if self.problems:
            body["problems"] = list(self.problems)
        return body
