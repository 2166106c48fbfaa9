"""The audit's Prometheus metrics (`--metrics-port`), one registry per process.

Names follow the server's and the agent's: prefix `plugin_guard_audit_`, base units.
`plugin_guard_audit_violations` is set whole after every audit (a policy/namespace pair
that no longer has a violation goes back to 0 and then away), so an alert on it clears
when the objects are fixed.
"""

from __future__ import annotations

from collections import Counter

import prometheus_client

PREFIX = "plugin_guard_audit"


class AuditMetrics:
    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        reg = self.registry
        self.violations = prometheus_client.Gauge(
            f"{PREFIX}_violations",
            "Objects with a fail or warn result in the last audit, by policy, namespace "
            "('' for cluster-scoped objects) and result.",
            ["policy", "namespace", "result"],
            registry=reg,
        )
        self.objects = prometheus_client.Gauge(
            f"{PREFIX}_objects", "Objects read in the last audit.", registry=reg
        )
        self.runs = prometheus_client.Counter(
            f"{PREFIX}_runs_total",
            "Audits, by outcome (ok, error).",
            ["outcome"],
            registry=reg,
        )
        self.last_success = prometheus_client.Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "When the last audit that read the cluster and wrote its reports ended.",
            registry=reg,
        )
        self.duration = prometheus_client.Gauge(
            f"{PREFIX}_duration_seconds", "How long the last audit took.", registry=reg
        )
        self._seen: set[tuple[str, str, str]] = set()

    def record(self, counts: Counter[tuple[str, str, str]], objects: int) -> None:
        for labels in self._seen - set(counts):
            self.violations.remove(*labels)
        for labels, value in counts.items():
            self.violations.labels(*labels).set(value)
        self._seen = set(counts)
        self.objects.set(objects)

    def render(self) -> tuple[bytes, str]:
        return prometheus_client.generate_latest(
            self.registry
        ), prometheus_client.CONTENT_TYPE_LATEST
