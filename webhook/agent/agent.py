"""The in-cluster agent: serves WorkflowTaskSets for Argo's `disableAgentPodCreation`
mode (spec 4.1), with the dispatcher's `WorkerPool` and `TemplateExecutor`.

Argo's agent pod serves the one TaskSet of its workflow and exits when it is deleted or
completed (spec 6.1). This agent is long-running and serves every TaskSet of its
namespaces (or of all namespaces), so its state is keyed by TaskSet uid:

- one list + watch loop per namespace (spec 6.1): the list gives a resourceVersion to
  watch from; a closed watch is re-opened from the last version seen; 410 Gone (or any
  other failure, after a backoff) lists again, and TaskSets missing from the new list
  are forgotten;
- for every `spec.tasks` entry whose `status.nodes` phase is not final, a `Task` keyed
  `TaskKey(taskset uid, node id)` goes to the worker pool, which runs each key once
  however often events repeat it, until a requeue releases it (spec 6.2, 6.6); a task
  whose node turns final while it waits in the queue is dropped (the status is the
  source of truth, whoever wrote it);
- results with a phase go to the `PatchWorker` (spec 6.5), which patches with the
  resourceVersion last seen for that uid as a precondition: a TaskSet deleted and
  re-created under the same name never gets a result meant for the old one;
- a TaskSet labelled `workflows.argoproj.io/completed: "true"` is no longer served, and
  a deleted one is forgotten: its pool keys, pending results and requeues go (bounded
  memory; a requeue timer of a forgotten TaskSet finds it inactive and stops);
- `shutdown()` stops the watches, drops queued tasks and pending requeues (their nodes
  are not final, so the next agent runs them), waits for the calls in flight, and
  flushes the last patch.

The workflow metadata sent to plugins (spec 7.1) is the TaskSet's name and namespace
(the Workflow's: spec 5.1) and the uid of the Workflow in its ownerReferences.

With leader election (`webhook/agent/service.py`) one `Agent` serves one leadership term:
`suspected_reruns` are the keys the previous holder had in flight when it stopped
renewing; running one of them again is logged and counted (at-least-once).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.agent.metrics import AgentMetrics
from webhook.agent.patcher import (
    ARGO_PATCH_BACKOFF,
    DEFAULT_PATCH_INTERVAL,
    PatchBackoff,
    PatchWorker,
    TaskSetRef,
    node_json,
)
from webhook.dispatch.executor import FINAL_PHASES, Execution, TemplateExecutor, WorkflowMeta
from webhook.dispatch.pool import (
    DEFAULT_WORKERS,
    Scheduler,
    Task,
    TaskKey,
    TaskResult,
    WorkerPool,
)
from webhook.dispatch.rpc import PluginClient
from webhook.httptemplate import HTTPTemplateRunner
from webhook.kube import KubeApiError, ResourceClient, Watch

log = logging.getLogger(__name__)

COMPLETED_LABEL = "workflows.argoproj.io/completed"
TASKSET_KIND = "WorkflowTaskSet"
DEFAULT_WATCH_TIMEOUT = 300  # seconds; the server ends the watch, the agent re-watches
RELIST_BACKOFF = (1.0, 30.0)  # first and longest wait before listing again after a failure
DEFAULT_SHUTDOWN_TIMEOUT = 25.0  # within Kubernetes' default 30 s grace period


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """`namespaces` empty means all namespaces."""

    namespaces: tuple[str, ...] = ()
    workers: int = DEFAULT_WORKERS
    patch_interval: float = DEFAULT_PATCH_INTERVAL
    route_by_key: bool = False
    watch_timeout: int = DEFAULT_WATCH_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    patch_backoff: PatchBackoff = ARGO_PATCH_BACKOFF
    relist_backoff: tuple[float, float] = RELIST_BACKOFF


class AgentExecutor(TemplateExecutor):
    """Plugin templates as the dispatcher runs them (spec 6.4); HTTP templates (6.7)."""

    def __init__(
        self,
        clients: Sequence[PluginClient],
        *,
        route_by_key: bool = False,
        http: HTTPTemplateRunner | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        super().__init__(clients, route_by_key=route_by_key)
        self.http = http or HTTPTemplateRunner()
        self.metrics = metrics

    def execute(self, workflow: WorkflowMeta, template: Mapping[str, Any]) -> Execution:
        started = time.monotonic()
        if template.get("plugin") is None and isinstance(template.get("http"), Mapping):
            execution = self.http.execute(workflow, template)
        else:
            execution = super().execute(workflow, template)
        if self.metrics is not None:
            self.metrics.task_executed(template, execution, time.monotonic() - started)
        return execution


@dataclass(slots=True)
class _Served:
    """One TaskSet held in memory: the nodes submitted, and those final in its status."""

    ref: TaskSetRef
    scope: str | None
    workflow: WorkflowMeta
    nodes: set[str] = field(default_factory=set)
    final: set[str] = field(default_factory=set)
    requeued: set[str] = field(default_factory=set)  # asked to run again (spec 6.6)
    completed: bool = False

    def keys(self, nodes: Iterable[str]) -> list[TaskKey]:
        return [TaskKey(self.ref.uid, node) for node in nodes]


@dataclass(frozen=True, slots=True)
class _Identity:
    """Who a watched object is, when it is a WorkflowTaskSet at all."""

    uid: str
    namespace: str
    name: str
    metadata: Mapping[str, Any]

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> _Identity | None:
        metadata = obj.get("metadata") or {}
        identity = cls(
            str(metadata.get("uid") or ""),
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
            metadata,
        )
        if obj.get("kind", TASKSET_KIND) != TASKSET_KIND:
            return None
        if not (identity.uid and identity.name and identity.namespace):
            return None
        return identity

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def workflow_uid(metadata: Mapping[str, Any]) -> str:
    """The uid of the Workflow that owns the TaskSet (spec 5.1), or ""."""
    for owner in metadata.get("ownerReferences") or []:
        if isinstance(owner, Mapping) and owner.get("kind") == "Workflow":
            return str(owner.get("uid") or "")
    return ""


class Agent:
    """Serves WorkflowTaskSets; `start()`, then `shutdown()` (or `run(stop_event)`).

    `api` is the TaskSets' client: `cluster.resource(kinds.WORKFLOW_TASKSET)`.
    """

    def __init__(
        self,
        api: ResourceClient,
        clients: Sequence[PluginClient],
        config: AgentConfig | None = None,
        *,
        scheduler: Scheduler | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        http: HTTPTemplateRunner | None = None,
        metrics: AgentMetrics | None = None,
        suspected_reruns: Iterable[str] = (),
    ) -> None:
        self.api = api
        self.config = config or AgentConfig()
        self.clients = list(clients)
        self.metrics = metrics
        self._lock = threading.RLock()
        self._served: dict[str, _Served] = {}
        self._streams: dict[str | None, Watch] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_contact: dict[str | None, float] = {}  # per scope: last list/watch answer
        self._suspected_reruns = set(suspected_reruns)
        self.reruns: list[TaskKey] = []  # suspected re-runs submitted (tests, logs)
        self.executor = AgentExecutor(
            self.clients, route_by_key=self.config.route_by_key, http=http, metrics=metrics
        )
        self.patcher = PatchWorker(
            self._patch_status,
            interval=self.config.patch_interval,
            backoff=self.config.patch_backoff,
            sleep=sleep,
            jitter=jitter,
            on_error=metrics.patch_failed if metrics is not None else None,
            on_patched=metrics.patches.inc if metrics is not None else None,
        )
        self.pool = WorkerPool(
            self.executor,
            accept=self._is_active,
            workers=self.config.workers,
            scheduler=scheduler,
            on_executed=self._on_executed,
        )
        self.lists = 0  # list calls made (tests: relist after 410)
        self._shut_down = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def scopes(self) -> list[str | None]:
        return list(self.config.namespaces) or [None]

    def start(self) -> None:
        started = time.monotonic()
        self._last_contact = dict.fromkeys(self.scopes, started)
        log.info(
            "Starting Agent",
            extra={
                "taskWorkers": self.config.workers,
                "requeueTime": f"{self.config.patch_interval:g}s",
                "namespaces": list(self.config.namespaces) or "all",
                "plugins": [c.endpoint.label for c in self.clients],
            },
        )
        if not self.clients:
            log.warning(
                "no plugins configured: plugin tasks will fail with 'no plugin executed the "
                "template'; HTTP tasks are still served"
            )
        self.patcher.start()
        for scope in self.scopes:
            thread = threading.Thread(
                target=self._serve_scope, args=(scope,), name=f"watch-{scope or 'all'}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set, then shut down gracefully."""
        self.start()
        stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        """Stop watching, finish the calls in flight, flush the last patch."""
        if self._shut_down:
            return
        self._shut_down = True
        log.info("Stopping Agent")
        self._stopping.set()
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self.pool.close()  # queued tasks and pending requeues are dropped
        if not self.pool.wait_in_flight(self.config.shutdown_timeout):
            log.warning(
                "plugin calls still running at shutdown; their results are lost",
                extra={"waited": self.config.shutdown_timeout},
            )
        self.patcher.stop()  # the last flush
        for client in self.clients:
            client.close()
        log.info("Agent stopped")

    def _patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> object:
        return self.api.patch_status(name, patch, namespace)

    # ------------------------------------------------------------------ introspection

    def served(self) -> dict[str, str]:
        """`{uid: "namespace/name"}` of the TaskSets held in memory."""
        with self._lock:
            return {uid: str(s.ref) for uid, s in self._served.items()}

    def in_flight(self) -> tuple[str, ...]:
        """The keys of the plugin calls running now (published in the Lease)."""
        return tuple(str(key) for key in self.pool.running())

    def watch_problems(self) -> list[str]:
        """Why the watches are not alive: a loop thread ended, or no list or watch
        answered for two watch timeouts (a healthy watch is re-opened every timeout)."""
        if self._stopping.is_set() or not self._threads:
            return []
        problems = [f"the watch loop {t.name} ended" for t in self._threads if not t.is_alive()]
        limit = 2 * self.config.watch_timeout + self.config.relist_backoff[1]
        now = time.monotonic()
        with self._lock:
            contacts = dict(self._last_contact)
        for scope, contact in contacts.items():
            if now - contact > limit:
                problems.append(
                    f"no answer from the API server for {now - contact:.0f}s "
                    f"(namespace {scope or 'all'})"
                )
        return problems

    def _contact(self, scope: str | None) -> None:
        with self._lock:
            self._last_contact[scope] = time.monotonic()

    # ------------------------------------------------------------------ list + watch

    def _serve_scope(self, scope: str | None) -> None:
        failures = 0
        first, longest = self.config.relist_backoff
        while not self._stopping.is_set():
            try:
                listing = self.api.list(scope)
                self.lists += 1
                self._contact(scope)
                failures = 0
                self._sync(scope, listing.items)
                self._watch_from(scope, listing.resource_version)
            except KubeApiError as exc:
                if self._stopping.is_set():
                    return
                if exc.gone:  # spec 6.1: the version is too old; list again now
                    log.info(
                        "watch expired (410 Gone); listing again",
                        extra={"namespace": scope or "all", "error": exc.message},
                    )
                    continue
                failures += 1
                wait = min(first * 2 ** (failures - 1), longest)
                log.warning(
                    "listing or watching TaskSets failed; trying again",
                    extra={"namespace": scope or "all", "error": str(exc), "retry_in": wait},
                )
                self._stopping.wait(wait)
            except Exception:
                log.exception("watch loop failed", extra={"namespace": scope or "all"})
                self._stopping.wait(first)

    def _watch_from(self, scope: str | None, version: str) -> None:
        """Watch until stopped; a closed stream is re-opened from the last version."""
        quick_empty_closes = 0
        while not self._stopping.is_set():
            stream = self.api.watch(
                scope, resource_version=version, timeout=self.config.watch_timeout
            )
            with self._lock:
                self._streams[scope] = stream
            if self._stopping.is_set():
                return
            opened, events = time.monotonic(), 0
            for event in stream:
                if self._stopping.is_set():
                    return
                events += 1
                self._contact(scope)
                version = event.resource_version or version
                if event.type == "BOOKMARK":
                    continue
                self._on_event(scope, event.type, event.object)
            self._contact(scope)  # a watch the server ended in time is an answer too
            log.debug("watch closed; watching again", extra={"namespace": scope or "all"})
            # A server may close a watch at any time (timeouts, restarts): re-open it at
            # once. Only a stream that keeps closing empty right away means something is
            # wrong; then back off instead of spinning.
            if not events and time.monotonic() - opened < 1.0:
                quick_empty_closes += 1
                if quick_empty_closes > 1:
                    self._stopping.wait(self.config.relist_backoff[0])
            else:
                quick_empty_closes = 0

    def _sync(self, scope: str | None, items: list[dict[str, Any]]) -> None:
        """A fresh list: forget what is gone, then treat every item as an event."""
        present = {str((item.get("metadata") or {}).get("uid") or "") for item in items}
        with self._lock:
            gone = [u for u, s in self._served.items() if s.scope == scope and u not in present]
            for uid in gone:
                self._forget(uid, "not in the new list")
        for item in items:
            self._on_event(scope, "LISTED", item)

    # ------------------------------------------------------------------ events

    def _on_event(self, scope: str | None, event_type: str, obj: Mapping[str, Any]) -> None:
        identity = _Identity.of(obj)
        if identity is None:
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            log.warning("ignoring an object that is not a WorkflowTaskSet", extra={"uid": uid})
            return
        log.info("TaskSet Event", extra={"event_type": event_type, "taskset": str(identity)})
        with self._lock:
            if self._stopping.is_set():
                return
            if event_type == "DELETED":
                self._forget(identity.uid, "deleted")
                return
            served = self._served.get(identity.uid)
            if served is None:
                served = self._served[identity.uid] = self._serve(scope, identity)
            version = str(identity.metadata.get("resourceVersion") or "")
            if version:
                self.patcher.observe(identity.uid, version)
            labels = identity.metadata.get("labels") or {}
            if labels.get(COMPLETED_LABEL) == "true":
                self._on_completed(served)
                return
            served.completed = False
            self._on_tasks(served, obj)

    @staticmethod
    def _serve(scope: str | None, identity: _Identity) -> _Served:
        ref = TaskSetRef(identity.namespace, identity.name, identity.uid)
        workflow = WorkflowMeta(identity.name, identity.namespace, workflow_uid(identity.metadata))
        return _Served(ref, scope, workflow)

    def _on_completed(self, served: _Served) -> None:
        if served.completed:
            return
        log.info(
            "Workflow completed; no longer serving its TaskSet",
            extra={"taskset": str(served.ref)},
        )
        served.completed = True
        self._release(served)

    def _on_tasks(self, served: _Served, obj: Mapping[str, Any]) -> None:
        """Submit every task whose node is not final; forget the tasks the controller
        removed (they are fulfilled, spec 5.2 cleanup)."""
        tasks = (obj.get("spec") or {}).get("tasks") or {}
        nodes = (obj.get("status") or {}).get("nodes") or {}
        removed = [n for n in served.nodes if n not in tasks]
        if removed:
            self.pool.forget(served.keys(removed))
            served.nodes.difference_update(removed)
        served.final = {
            node_id
            for node_id, result in nodes.items()
            if isinstance(result, Mapping) and result.get("phase") in FINAL_PHASES
        }
        for node_id, template in tasks.items():
            if not isinstance(template, Mapping) or node_id in served.final:
                continue
            served.nodes.add(node_id)
            task = Task(node_id, served.workflow, dict(template), taskset_uid=served.ref.uid)
            self._note_rerun(task.key, served)
            self.pool.submit(task)

    def _note_rerun(self, key: TaskKey, served: _Served) -> None:
        """The previous holder had this task in flight when it died: this run may be
        its second (at-least-once); say so once."""
        text = str(key)
        if text not in self._suspected_reruns:
            return
        self._suspected_reruns.discard(text)
        self.reruns.append(key)
        if self.metrics is not None:
            self.metrics.failover_reruns.inc()
        log.warning(
            "running a task again that was in flight on the previous Lease holder",
            extra={"taskset": str(served.ref), "node": key.node_id},
        )

    def _forget(self, uid: str, why: str) -> None:
        served = self._served.pop(uid, None)
        if served is None:
            return
        log.info("Forgetting TaskSet", extra={"taskset": str(served.ref), "reason": why})
        self._release(served)

    def _release(self, served: _Served) -> None:
        self.pool.forget(served.keys(served.nodes))
        served.nodes.clear()
        self.patcher.forget(served.ref.uid)

    def _is_active(self, key: TaskKey) -> bool:
        """Run a queued task only if its TaskSet is still served and its node not final."""
        with self._lock:
            served = self._served.get(key.taskset_uid)
            return (
                served is not None
                and not served.completed
                # a Failed or Error reply with a requeue runs again (spec 6.6 edge case)
                and (key.node_id not in served.final or key.node_id in served.requeued)
                and not self._stopping.is_set()
            )

    def _on_executed(self, result: TaskResult) -> None:
        key = result.task.key
        node_id = key.node_id
        execution = result.execution
        with self._lock:
            served = self._served.get(key.taskset_uid)
            if served is None or served.completed:
                # The TaskSet went while the plugin was called: drop the result and
                # the key the pool just stored again.
                self.pool.forget([key])
                return
            ref = served.ref
            if execution.requeue_seconds > 0:
                served.requeued.add(node_id)
            else:
                served.requeued.discard(node_id)
        if not result.reported:  # spec 6.2: only results with a phase are patched
            return
        log.info(
            "Sending result",
            extra={
                "taskset": str(ref),
                "node": node_id,
                "phase": execution.node.phase,
                "node_message": execution.node.message,
                "requeue": execution.requeue,
            },
        )
        self.patcher.add(ref, node_id, node_json(execution.node))
