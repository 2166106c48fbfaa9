"""The agent's Prometheus metrics (`--metrics-port`), one registry per process.

Names follow the server's (`webhook/server/metrics.py`): prefix `plugin_guard_agent_`,
base units, `_total` counters. Label values are bounded: `plugin` is the template's
`plugin:` key (or `http` for HTTP templates), folded into `other` past a small number
of distinct values, since templates come from workflows anyone may submit.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

import prometheus_client

from webhook.dispatch.executor import Execution, plugin_key

PREFIX = "plugin_guard_agent"
MAX_PLUGINS = 64
# A plugin call is a local HTTP round trip (milliseconds) up to Argo's retry schedule
# (about 15-18 s of sleeps, 30 s per attempt).
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0)
_LABEL_RE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$")


def task_plugin(template: Mapping[str, Any]) -> str:
    """The `plugin` label of a task: its plugin key, `http`, or `unknown`."""
    key = plugin_key(template)
    if key is not None:
        return key
    if template.get("plugin") is None and isinstance(template.get("http"), Mapping):
        return "http"
    return "unknown"


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        reg = self.registry
        self.tasks = prometheus_client.Counter(
            f"{PREFIX}_tasks_total",
            "Task executions, by plugin (the template's plugin key, or http) and the "
            "phase the node got (empty: no phase, nothing patched).",
            ["plugin", "phase"],
            registry=reg,
        )
        self.call_duration = prometheus_client.Histogram(
            f"{PREFIX}_plugin_call_duration_seconds",
            "Time to execute one task: every plugin asked, retries included.",
            ["plugin"],
            buckets=CALL_BUCKETS,
            registry=reg,
        )
        self.retries = prometheus_client.Counter(
            f"{PREFIX}_plugin_call_retries_total",
            "Plugin calls retried after a transient error (503, connection refused, "
            "timeouts), by plugin sidecar.",
            ["sidecar"],
            registry=reg,
        )
        self.requeues = prometheus_client.Counter(
            f"{PREFIX}_requeues_total",
            "Executions that asked to be run again later (requeue), by plugin.",
            ["plugin"],
            registry=reg,
        )
        self.patch_errors = prometheus_client.Counter(
            f"{PREFIX}_patch_errors_total",
            "Failed status patches of TaskSets, by reason: transient (retried), conflict "
            "(stale resourceVersion, retried), permanent (results became Error), not-found.",
            ["reason"],
            registry=reg,
        )
        self.patches = prometheus_client.Counter(
            f"{PREFIX}_patches_total",
            "Status patches sent to TaskSets successfully.",
            registry=reg,
        )
        self.leader = prometheus_client.Gauge(
            f"{PREFIX}_leader",
            "1 while this replica holds the Lease and serves TaskSets, else 0.",
            registry=reg,
        )
        self.leader_transitions = prometheus_client.Counter(
            f"{PREFIX}_leader_transitions_total",
            "Times this replica started leading.",
            registry=reg,
        )
        self.failover_reruns = prometheus_client.Counter(
            f"{PREFIX}_failover_reruns_total",
            "Tasks run again after a failover because they were in flight on the previous "
            "holder when it stopped renewing the Lease (at-least-once, see docs/agent.md).",
            registry=reg,
        )
        self._plugins: set[str] = set()
        self._lock = threading.Lock()

    def _plugin(self, name: str) -> str:
        if name in self._plugins:
            return name
        if not _LABEL_RE.match(name):
            return "other"
        with self._lock:
            if len(self._plugins) >= MAX_PLUGINS:
                return "other"
            self._plugins.add(name)
        return name

    def task_executed(
        self, template: Mapping[str, Any], execution: Execution, seconds: float
    ) -> None:
        plugin = self._plugin(task_plugin(template))
        self.tasks.labels(plugin, execution.node.phase).inc()
        self.call_duration.labels(plugin).observe(seconds)
        if execution.requeue_seconds > 0:
            self.requeues.labels(plugin).inc()

    def retried(self, sidecar: str) -> None:
        self.retries.labels(self._plugin(sidecar or "unnamed")).inc()

    def patch_failed(self, reason: str) -> None:
        self.patch_errors.labels(reason).inc()

    def render(self) -> tuple[bytes, str]:
        return prometheus_client.generate_latest(
            self.registry
        ), prometheus_client.CONTENT_TYPE_LATEST
