"""One audit pass: read the cluster, evaluate, build the reports, write them.

`Auditor.run(policy_set)` is what `plugin-guard audit` does once and what `--interval`
repeats. The evaluation context holds the cluster's executor plugins (the ConfigMaps
read), as the webhook's registry does with `--plugins-from-cluster`, so a plugin whose
port another installed plugin already uses fails `plugin-unique-ports` here too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.audit.cluster import ReportsUnavailable, ReportWriter, WriteOutcome, read_objects
from webhook.audit.metrics import AuditMetrics
from webhook.audit.report import AuditedObject, audit_objects, build_reports, violation_counts
from webhook.executor_plugin import read_plugin
from webhook.kube import Cluster
from webhook.policy import EvaluationContext, PolicySet
from webhook.server.registry import is_executor_plugin

log = logging.getLogger("webhook.audit")


@dataclass
class AuditRun:
    audited: list[AuditedObject]
    reports: list[dict[str, Any]]
    written: WriteOutcome | None = None  # None: not asked to, or no PolicyReport CRD
    unavailable: str | None = None  # why the reports were not written
    missing_kinds: list[str] = field(default_factory=list)


def cluster_plugins(objects: Sequence[dict[str, Any]]) -> list[Any]:
    plugins = []
    for obj in objects:
        if is_executor_plugin(obj):
            plugin = read_plugin(obj)
            if plugin is not None:
                plugins.append(plugin)
    return plugins


class Auditor:
    def __init__(
        self,
        cluster: Cluster,
        namespaces: Sequence[str] = (),
        *,
        write_reports: bool = False,
        metrics: AuditMetrics | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespaces = list(namespaces)
        self.write_reports = write_reports
        self.metrics = metrics
        self._writer = ReportWriter(cluster) if write_reports else None
        self._said_unavailable = False
        self._said_missing: set[str] = set()

    def run(self, policy_set: PolicySet) -> AuditRun:
        started = time.monotonic()
        try:
            found = read_objects(self.cluster, self.namespaces)
            for kind in sorted(set(found.missing_kinds) - self._said_missing):
                log.info("kind not installed; not audited", extra={"kind": kind})
                self._said_missing.add(kind)
            context = EvaluationContext(plugins=cluster_plugins(found.objects))
            audited = audit_objects(found.objects, policy_set, context)
            run = AuditRun(audited, [], missing_kinds=found.missing_kinds)
            if self._writer is not None:
                self._write(run)
            else:
                run.reports = build_reports(audited)
        except Exception:
            if self.metrics is not None:
                self.metrics.runs.labels("error").inc()
            raise
        if self.metrics is not None:
            self.metrics.record(violation_counts(audited), len(audited))
            self.metrics.runs.labels("ok").inc()
            self.metrics.last_success.set(time.time())
            self.metrics.duration.set(time.monotonic() - started)
        return run

    def _write(self, run: AuditRun) -> None:
        assert self._writer is not None
        try:
            stored = self._writer.stored_namespaces(self.namespaces)
            run.reports = build_reports(run.audited, namespaces=stored)
            run.written = self._writer.write(run.reports)
            self._said_unavailable = False
        except ReportsUnavailable as exc:
            run.reports = run.reports or build_reports(run.audited)
            run.unavailable = str(exc)
            if not self._said_unavailable:  # one line, not one per interval
                log.warning(
                    "PolicyReports not written: CRD not installed; printing the results",
                    extra={"reason": str(exc)},
                )
                self._said_unavailable = True
