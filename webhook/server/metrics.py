"""Prometheus metrics, multiprocess-safe under gunicorn workers.

`plugin-guard serve` sets `PROMETHEUS_MULTIPROC_DIR` to a fresh folder before any worker
imports `prometheus_client`; each worker then writes its values to mmap'ed files there,
and `/metrics` aggregates every worker's files (`MultiProcessCollector`). Without that
variable (tests, `create_app()` in-process) each app gets its own registry.

Names follow Kyverno's (`kyverno_admission_review_duration_seconds`,
`kyverno_admission_requests_total`, `kyverno_policy_results_total`) with the prefix
`plugin_guard_`. Label values are bounded: `kind` comes from the request and is
folded into `other` past a small number of distinct values, so a hostile client cannot
grow the series count.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import values as _values

if TYPE_CHECKING:
    from webhook.admission import Outcome

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "plugin_guard"
MAX_KINDS = 64
MAX_NAMESPACES = 256
# Admission reviews take well under a millisecond to a few ms; the API server's
# timeoutSeconds caps the top at 10 s by default.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,62}$")
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def _ensure_value_class() -> None:
    """prometheus_client picks its value class at import; if it was imported before
    serve set the variable, pick again so this process writes to the shared files."""
    if multiprocess_enabled() and _values.ValueClass.__name__ == "MutexValue":
        _values.ValueClass = _values.get_value_class()  # type: ignore[no-untyped-call]


class Metrics:
    """The webhook's metrics; one instance per app."""

    def __init__(self) -> None:
        _ensure_value_class()
        self.multiprocess = multiprocess_enabled()
        self.registry: Any = None if self.multiprocess else prometheus_client.CollectorRegistry()
        reg = self.registry
        self.review_duration = prometheus_client.Histogram(
            f"{PREFIX}_admission_review_duration_seconds",
            "Time to answer one AdmissionReview, from body read to encoded answer.",
            ["webhook", "operation", "kind", "allowed"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.requests = prometheus_client.Counter(
            f"{PREFIX}_admission_requests_total",
            "AdmissionReviews answered, by webhook, operation, kind and verdict.",
            ["webhook", "operation", "kind", "allowed"],
            registry=reg,
        )
        self.policy_results = prometheus_client.Counter(
            f"{PREFIX}_policy_results_total",
            "Policy violations found in admitted or denied objects, by policy and action.",
            ["policy", "action", "operation", "kind"],
            registry=reg,
        )
        self.bad_requests = prometheus_client.Counter(
            f"{PREFIX}_http_errors_total",
            "Requests answered with an HTTP error (malformed review, wrong route, ...).",
            ["code"],
            registry=reg,
        )
        self.policy_reloads = prometheus_client.Counter(
            f"{PREFIX}_policy_reloads_total",
            "Policy or plugin-registry reloads, by result (success or error).",
            ["result"],
            registry=reg,
        )
        self.injections = prometheus_client.Counter(
            f"{PREFIX}_injections_total",
            "Agent pods seen by /mutate, by namespace and injection result (injected, "
            "nothing-to-inject, already-injected, not-opted-in, unsupported-pod, error).",
            ["namespace", "result"],
            registry=reg,
        )
        self.injected_plugins = prometheus_client.Counter(
            f"{PREFIX}_injected_plugins_total",
            "Plugin sidecars attached to agent pods (injected) or left out with a warning "
            "(skipped), by namespace.",
            ["namespace", "result"],
            registry=reg,
        )
        self._kinds: set[str] = set()
        self._namespaces: set[str] = set()
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._results: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def _kind(self, kind: str) -> str:
        if kind in self._kinds:
            return kind
        if not kind:
            return ""
        if not _KIND_RE.match(kind):
            return "other"
        with self._lock:
            if len(self._kinds) >= MAX_KINDS:
                return "other"
            self._kinds.add(kind)
        return kind

    def _namespace(self, namespace: str) -> str:
        if namespace in self._namespaces or not namespace:
            return namespace
        if not _NAMESPACE_RE.match(namespace):
            return "other"
        with self._lock:
            if len(self._namespaces) >= MAX_NAMESPACES:
                return "other"
            self._namespaces.add(namespace)
        return namespace

    def observe(self, webhook: str, outcome: Outcome, seconds: float) -> None:
        kind = self._kind(outcome.kind)
        key = (webhook, outcome.operation, kind, "true" if outcome.allowed else "false")
        children = self._children.get(key)
        if children is None:
            children = (self.review_duration.labels(*key), self.requests.labels(*key))
            self._children[key] = children
        children[0].observe(seconds)
        children[1].inc()
        # Counted per label set first: an object with thousands of findings (a Pod with
        # 20,000 env entries) is then a few increments, not one lock round per finding.
        per_result: dict[tuple[str, str, str, str], int] = {}
        for violation in outcome.violations:
            result_key = (violation.policy, violation.action.value, outcome.operation, kind)
            per_result[result_key] = per_result.get(result_key, 0) + 1
        for result_key, count in per_result.items():
            child = self._results.get(result_key)
            if child is None:
                child = self._results[result_key] = self.policy_results.labels(*result_key)
            child.inc(count)
        injection = outcome.injection
        if injection is not None and injection.agent_pod:
            namespace = self._namespace(outcome.namespace)
            self.injections.labels(namespace, injection.result.value).inc()
            if injection.injected:
                self.injected_plugins.labels(namespace, "injected").inc(len(injection.injected))
            if injection.skipped:
                self.injected_plugins.labels(namespace, "skipped").inc(len(injection.skipped))

    def http_error(self, code: int) -> None:
        self.bad_requests.labels(str(code)).inc()

    def reload(self, ok: bool) -> None:
        self.policy_reloads.labels("success" if ok else "error").inc()

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = prometheus_client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """gunicorn `child_exit` hook: drop a dead worker's live gauges."""
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
