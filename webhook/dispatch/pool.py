"""Task workers and requeue: Argo's agent worker pool (spec sections 6.2 and 6.6), as a
Python API that `plugin-guard execute`, `dev` and the in-cluster agent share.

- `workers` threads (default 16, Argo's `ARGO_AGENT_TASK_WORKERS`) take tasks from one
  queue and run them through a `TemplateExecutor`.
- Each task runs once: a node id already considered is skipped ("Task is already
  considered"), however often it is submitted, until a requeue releases it (6.2).
- A requeue > 0 schedules the *same task snapshot* again after that duration (6.6).
- Only results with a non-empty phase are reported (`on_result`, what the agent patches
  into the TaskSet, 6.2); `on_executed` sees every execution, for callers that need to
  know when a task has been handled at all.

Timers go through a `Scheduler`, so tests drive requeues with `ManualScheduler` instead
of waiting.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from webhook.dispatch.executor import Execution, TemplateExecutor, WorkflowMeta
from webhook.dispatch.rpc import NodeResult

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 16  # ARGO_AGENT_TASK_WORKERS default (spec 6.1, 6.2)


@dataclass(frozen=True, slots=True, order=True)
class TaskKey:
    """What the pool runs once: a node of one TaskSet. `taskset_uid` tells a TaskSet
    re-created under the same name apart from the old one; `execute` and `dev` serve a
    single workflow and leave it empty."""

    taskset_uid: str
    node_id: str

    def __str__(self) -> str:
        return f"{self.taskset_uid}/{self.node_id}" if self.taskset_uid else self.node_id


@dataclass(frozen=True, slots=True)
class Task:
    """One `WorkflowTaskSet.spec.tasks[node_id]` entry: a processed template."""

    node_id: str
    workflow: WorkflowMeta
    template: Mapping[str, Any]
    taskset_uid: str = ""

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.taskset_uid, self.node_id)

    @property
    def template_name(self) -> str:
        name = self.template.get("name")
        return name if isinstance(name, str) else ""


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One execution of one task."""

    task: Task
    execution: Execution

    @property
    def node(self) -> NodeResult:
        return self.execution.node

    @property
    def reported(self) -> bool:
        """Argo sends a result to the patch worker only if its phase is set (spec 6.2)."""
        return self.execution.node.phase != ""


class Scheduler(Protocol):
    """Runs a callback after a delay; the only clock the pool uses."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


class ThreadScheduler:
    """One timer thread for every pending requeue (not one thread per timer)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="requeue-timer", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (self._clock() + delay, next(self._order), callback))
            self._cond.notify()

    def close(self) -> None:
        """Drop every pending timer; nothing fires after this returns."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > self._clock()):
                    timeout = self._heap[0][0] - self._clock() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, callback = heapq.heappop(self._heap)
            callback()


class ManualScheduler:
    """A scheduler whose time only moves when `advance` is called (for tests)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._pending: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.delays: list[float] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._lock:
            self.delays.append(delay)
            heapq.heappush(self._pending, (self.now + delay, next(self._order), callback))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def advance(self, seconds: float) -> None:
        """Move time forward and fire every timer that is due, in due order."""
        target = self.now + seconds
        while True:
            with self._lock:
                if not self._pending or self._pending[0][0] > target:
                    self.now = target
                    return
                due, _, callback = heapq.heappop(self._pending)
                self.now = due
            callback()

    def close(self) -> None:
        with self._lock:
            self._pending.clear()


_STOP = object()


@dataclass(slots=True)
class _Counters:
    outstanding: int = 0  # queued + running + waiting for a requeue timer
    executions: int = 0
    skipped: int = 0
    by_key: dict[TaskKey, int] = field(default_factory=dict)


class WorkerPool:
    """N task workers over one `TemplateExecutor` (spec 6.2), with requeue (spec 6.6).

    `follow_requeues=False` runs each task once and reports its requeue without
    scheduling it (`plugin-guard execute` without `--follow`). A long-running agent
    serving many TaskSets passes `accept` (a queued task whose TaskSet is no longer
    served is dropped), calls `forget` for tasks it will never see again (memory stays
    bounded) and `wait_in_flight` at shutdown.
    """

    def __init__(
        self,
        executor: TemplateExecutor,
        *,
        workers: int = DEFAULT_WORKERS,
        scheduler: Scheduler | None = None,
        on_result: Callable[[TaskResult], None] | None = None,
        on_executed: Callable[[TaskResult], None] | None = None,
        follow_requeues: bool = True,
        accept: Callable[[TaskKey], bool] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.executor = executor
        self.workers = workers
        self.follow_requeues = follow_requeues
        self._scheduler: Scheduler = scheduler or ThreadScheduler()
        self._on_result = on_result
        self._on_executed = on_executed
        self._accept = accept
        self._in_flight = 0
        # Argo's channel is unbuffered; an unbounded queue is used instead so that a
        # requeue timer never blocks behind busy workers (it would delay other timers).
        self._queue: queue.SimpleQueue[Task | object] = queue.SimpleQueue()
        self._considered: set[TaskKey] = set()
        self._running: set[TaskKey] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._counters = _Counters()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"task-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, task: Task) -> None:
        """Queue a task, as the watch loop does for every `spec.tasks` entry (spec 6.1)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            self._counters.outstanding += 1
        self._queue.put(task)

    def executions(self, key: TaskKey | str) -> int:
        """How many times a task was executed (a bare node id: a task with no TaskSet)."""
        if isinstance(key, str):
            key = TaskKey("", key)
        with self._lock:
            return self._counters.by_key.get(key, 0)

    def running(self) -> tuple[TaskKey, ...]:
        """The tasks whose plugin call is in flight now, sorted."""
        with self._lock:
            return tuple(sorted(self._running))

    @property
    def skipped(self) -> int:
        """Submissions dropped because the task was already considered."""
        with self._lock:
            return self._counters.skipped

    def forget(self, keys: Iterable[TaskKey]) -> None:
        """Drop what is remembered about these tasks (their TaskSet is gone)."""
        with self._lock:
            for key in keys:
                self._considered.discard(key)
                self._counters.by_key.pop(key, None)

    def remembered(self) -> int:
        """How many task keys are held in memory."""
        with self._lock:
            return len(self._considered) + len(self._counters.by_key)

    def wait_in_flight(self, timeout: float | None = None) -> bool:
        """Block until no plugin call is running (queued tasks do not count)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no task is queued, running or waiting for a requeue; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._counters.outstanding == 0, timeout)

    def close(self) -> None:
        """Stop the workers and drop pending requeues. A worker blocked in a plugin call
        finishes that call in the background (daemon thread); its result is discarded."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._scheduler.close()
        for _ in self._threads:
            self._queue.put(_STOP)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or not isinstance(item, Task):
                return
            try:
                self._process(item)
            finally:
                self._finish_one()

    def _process(self, task: Task) -> None:
        key = task.key
        if self._accept is not None and not self._accept(key):
            log.debug("Task no longer served: %s", key)
            return
        with self._lock:
            if self._closed:
                return
            if key in self._considered:  # sync.Map LoadOrStore (spec 6.2)
                self._counters.skipped += 1
                log.debug("Task is already considered: %s", key)
                return
            self._considered.add(key)
            self._counters.executions += 1
            self._counters.by_key[key] = self._counters.by_key.get(key, 0) + 1
            self._in_flight += 1
            self._running.add(key)
        try:
            self._execute(task)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._running.discard(key)
                self._idle.notify_all()

    def _execute(self, task: Task) -> None:
        log.debug("Processing task %s", task.key)
        try:
            execution = self.executor.execute(task.workflow, task.template)
        except Exception as exc:  # the executor never raises; keep the worker alive anyway
            log.exception("executor failed on %s", task.key)
            execution = Execution(NodeResult(phase="Failed", message=str(exc)))
        result = TaskResult(task, execution)
        self._notify(self._on_executed, result)
        if result.reported:
            self._notify(self._on_result, result)
        if execution.requeue_seconds > 0 and self.follow_requeues:
            self._schedule_requeue(task, execution.requeue_seconds)

    def _schedule_requeue(self, task: Task, delay: float) -> None:
        with self._lock:
            if self._closed:
                return
            self._counters.outstanding += 1  # the timer keeps the pool busy

        def requeue() -> None:
            # spec 6.6: forget the node, then push the same snapshot back on the queue
            with self._lock:
                self._considered.discard(task.key)
                closed = self._closed
            if closed:
                self._finish_one()
                return
            self._queue.put(task)  # its `outstanding` slot moves from the timer to the queue

        self._scheduler.call_later(delay, requeue)

    def _finish_one(self) -> None:
        with self._idle:
            self._counters.outstanding -= 1
            if self._counters.outstanding <= 0:
                self._idle.notify_all()

    @staticmethod
    def _notify(callback: Callable[[TaskResult], None] | None, result: TaskResult) -> None:
        if callback is None:
            return
        try:
            callback(result)
        except Exception:  # a broken observer must not kill a worker
            log.exception("result callback failed for %s", result.task.key)
