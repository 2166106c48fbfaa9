"""The patch worker: task results back to their WorkflowTaskSet (spec section 6.5).

Results are kept per TaskSet and per node; a later result for a node overwrites an
earlier one. Every patch interval (`ARGO_AGENT_PATCH_RATE`, default 10 s), each TaskSet
with pending results gets one JSON merge patch `{"status": {"nodes": {...}}}` on its
`status` subresource:

- success: the patched results are dropped (a result that arrived during the call
  stays for the next tick);
- a transient failure is retried at once on Argo's patch backoff (1 s, factor 2,
  jitter 0.1, 5 attempts, cap 30 s); if it still fails the results wait for the next tick;
- a non-transient failure (etcd's "request is too large", a 403, a 422 ...) turns every
  pending result of that TaskSet into phase `Error` with Argo's message "HTTP request
  completed successfully but an error occurred when patching its result: <err>", which
  is sent on the next tick;
- 404: the TaskSet is gone; its results are dropped (Argo's agent would exit);
- every patch carries `metadata.resourceVersion`, the version last seen of *that uid*
  (from the watch, or from the answer to our previous patch), as a precondition: the API
  server answers 409 Conflict when the object changed since, which is how a TaskSet
  deleted and re-created under the same name is told apart (a status patch of a custom
  resource cannot be made conditional on the uid itself: the status strategy copies
  the stored metadata over the patched one). A conflict is retried on the same backoff
  with the newest version the watch has delivered meanwhile, and never turns results
  into Errors; when the uid is gone the watch's DELETED event (or the next list) drops
  them.

The sleep and the jitter source are injectable, so tests never wait for the backoff.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook.dispatch.rpc import NodeResult
from webhook.kube import KubeApiError

log = logging.getLogger(__name__)

PATCH_FAILED_MESSAGE = (
    "HTTP request completed successfully but an error occurred when patching its result: "
)
DEFAULT_PATCH_INTERVAL = 10.0  # ARGO_AGENT_PATCH_RATE default (spec 4.4, 6.1)

NodeJson = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PatchBackoff:
    """`wait.Backoff{Duration: 1s, Factor: 2, Jitter: 0.1, Steps: 5, Cap: 30s}` (6.5)."""

    duration: float = 1.0
    factor: float = 2.0
    jitter: float = 0.1
    steps: int = 5
    cap: float = 30.0


ARGO_PATCH_BACKOFF = PatchBackoff()


@dataclass(frozen=True, slots=True)
class TaskSetRef:
    """Which TaskSet a result belongs to; `uid` tells a re-created namesake apart."""

    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def node_json(node: NodeResult) -> NodeJson:
    """`NodeResult` as Argo marshals it: `phase`, `message` and `outputs` are omitempty."""
    result: NodeJson = {"phase": node.phase}
    if node.message:
        result["message"] = node.message
    if node.outputs is not None:
        result["outputs"] = node.outputs
    return result


PatchCall = Callable[[str, str, dict[str, Any]], object]


class PatchWorker:
    """Batches results per TaskSet and patches them every `interval` seconds."""

    def __init__(
        self,
        patch: PatchCall,
        *,
        interval: float = DEFAULT_PATCH_INTERVAL,
        backoff: PatchBackoff = ARGO_PATCH_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        on_error: Callable[[str], None] | None = None,
        on_patched: Callable[[], None] | None = None,
    ) -> None:
        self._patch = patch
        self._on_error = on_error or (lambda reason: None)
        self._on_patched = on_patched or (lambda: None)
        self._versions: dict[str, str] = {}  # uid -> resourceVersion last seen
        self._seen = 0  # versions observed from the watch so far
        self.interval = interval
        self.backoff = backoff
        self._sleep = sleep
        self._jitter = jitter
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[TaskSetRef, dict[str, NodeJson]]] = {}
        self._flushing = threading.Lock()  # one flush at a time (the ticker or the final one)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.patches_sent = 0

    # ------------------------------------------------------------------ results in

    def add(self, ref: TaskSetRef, node_id: str, node: NodeJson) -> None:
        with self._lock:
            entry = self._pending.get(ref.uid)
            if entry is None:
                entry = self._pending[ref.uid] = (ref, {})
            entry[1][node_id] = node

    def forget(self, uid: str) -> None:
        """Drop what is pending for a TaskSet that was deleted or completed."""
        with self._lock:
            self._pending.pop(uid, None)
            self._versions.pop(uid, None)

    def observe(self, uid: str, resource_version: str) -> None:
        """The TaskSet `uid` was seen at `resource_version` (a watch event or a list)."""
        with self._lock:
            self._versions[uid] = resource_version
            self._seen += 1

    def version(self, uid: str) -> str:
        with self._lock:
            return self._versions.get(uid, "")

    def pending(self) -> dict[str, dict[str, NodeJson]]:
        """`{"namespace/name": {node_id: node}}`, a copy (tests, debugging)."""
        with self._lock:
            return {str(ref): dict(nodes) for ref, nodes in self._pending.values()}

    # ------------------------------------------------------------------ ticking

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="patch-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking, then flush what is left (graceful shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # the ticker must survive anything
                log.exception("patch worker failed")

    def flush(self) -> None:
        """One tick: one patch per TaskSet with pending results."""
        with self._flushing:
            with self._lock:
                work = [(ref, dict(nodes)) for ref, nodes in self._pending.values() if nodes]
            for ref, nodes in work:
                self._patch_taskset(ref, nodes)

    def _body(self, ref: TaskSetRef, nodes: dict[str, NodeJson]) -> dict[str, Any]:
        body: dict[str, Any] = {"status": {"nodes": nodes}}
        version = self.version(ref.uid)
        if version:
            body["metadata"] = {"resourceVersion": version}
        return body

    def _patch_taskset(self, ref: TaskSetRef, nodes: dict[str, NodeJson]) -> None:
        log.info("Processing Patch", extra={"taskset": str(ref), "nodes": sorted(nodes)})
        delay = self.backoff.duration
        for attempt in range(1, self.backoff.steps + 1):
            with self._lock:
                seen = self._seen
            try:
                answer = self._patch(ref.namespace, ref.name, self._body(ref, nodes))
            except KubeApiError as exc:
                if exc.code == 404:
                    self._on_error("not-found")
                    log.info(
                        "TaskSet is gone; dropping its results",
                        extra={"taskset": str(ref), "nodes": sorted(nodes)},
                    )
                    self._settle(ref, nodes, None)
                    return
                if exc.code == 409:
                    self._on_error("conflict")
                elif not exc.transient:
                    self._on_error("permanent")
                    log.warning(
                        "TaskSet Patch Failed", extra={"taskset": str(ref), "error": exc.message}
                    )
                    error = {"phase": "Error", "message": PATCH_FAILED_MESSAGE + exc.message}
                    self._settle(ref, nodes, error)
                    return
                else:
                    self._on_error("transient")
                if attempt == self.backoff.steps:
                    log.warning(
                        "TaskSet Patch Failed; retrying on the next tick",
                        extra={"taskset": str(ref), "error": str(exc), "attempts": attempt},
                    )
                    return
                pause = min(delay + self._jitter() * self.backoff.jitter * delay, self.backoff.cap)
                log.info(
                    "TaskSet patch failed, retrying",
                    extra={"taskset": str(ref), "error": str(exc), "retry_in": round(pause, 3)},
                )
                self._sleep(pause)
                delay *= self.backoff.factor
                continue
            self.patches_sent += 1
            self._on_patched()
            self._observe_answer(ref, answer, seen)
            self._settle(ref, nodes, None)
            log.info("Patched TaskSet", extra={"taskset": str(ref), "nodes": sorted(nodes)})
            return

    def _observe_answer(self, ref: TaskSetRef, answer: object, seen: int) -> None:
        """Our own patch made a new version of the same object: patch from it next,
        unless the watch delivered a version meanwhile (it may be newer than the answer,
        which can arrive after the watch events that follow it)."""
        metadata = answer.get("metadata") if isinstance(answer, dict) else None
        if not isinstance(metadata, dict) or metadata.get("uid") != ref.uid:
            return
        version = str(metadata.get("resourceVersion") or "")
        with self._lock:
            if version and ref.uid in self._versions and self._seen == seen:
                self._versions[ref.uid] = version

    def _settle(self, ref: TaskSetRef, sent: dict[str, NodeJson], replace: NodeJson | None) -> None:
        """Drop (or replace) the sent results that were not overwritten meanwhile."""
        with self._lock:
            entry = self._pending.get(ref.uid)
            if entry is None:
                return
            pending = entry[1]
            for node_id, node in sent.items():
                if pending.get(node_id) is node:
                    if replace is None:
                        del pending[node_id]
                    else:
                        pending[node_id] = dict(replace)
            if not pending:
                del self._pending[ref.uid]
