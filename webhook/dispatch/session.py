"""One dispatcher run over a fixed list of plugin templates: what `plugin-guard execute`
and `plugin-guard dev` do after they know the plugins and the templates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.dispatch.executor import Execution, TemplateExecutor
from webhook.dispatch.pool import DEFAULT_WORKERS, Scheduler, Task, TaskResult, WorkerPool
from webhook.dispatch.rpc import NodeResult, PluginClient, PluginEndpoint
from webhook.dispatch.templates import PluginTask

PHASE_PENDING = "Pending"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The last known state of one template: one JSON line of `execute`'s output."""

    template: str
    execution: Execution

    def as_json(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "node": self.execution.node.as_dict(),
            "requeue": self.execution.requeue,
        }

    @property
    def succeeded(self) -> bool:
        return self.execution.node.phase == "Succeeded"


def run_templates(
    tasks: Sequence[PluginTask],
    endpoints: Sequence[PluginEndpoint],
    *,
    route_by_key: bool = False,
    follow: bool = False,
    timeout: float | None = None,
    workers: int = DEFAULT_WORKERS,
    call_timeout: float = 30.0,
    scheduler: Scheduler | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[TaskResult], None] | None = None,
) -> list[Outcome]:
    """Run every task once (or, with `follow`, until no requeue is pending); return one
    outcome per task in input order. A task still unanswered at `timeout` is reported
    with its last result, or `Pending` if the plugins never answered."""
    clients = [PluginClient(ep, timeout=call_timeout, sleep=sleep) for ep in endpoints]
    executor = TemplateExecutor(clients, route_by_key=route_by_key)
    latest: dict[str, Execution] = {}
    lock = threading.Lock()

    def record(result: TaskResult) -> None:
        with lock:
            latest[result.task.node_id] = result.execution
        if on_progress is not None:
            on_progress(result)

    pool = WorkerPool(
        executor,
        workers=max(1, min(workers, len(tasks))),
        scheduler=scheduler,
        on_executed=record,
        follow_requeues=follow,
    )
    try:
        for task in tasks:
            pool.submit(Task(task.node_id, task.workflow, task.template))
        pool.wait_idle(timeout)
    finally:
        pool.close()
        for client in clients:
            client.close()
    outcomes: list[Outcome] = []
    with lock:
        for task in tasks:
            execution = latest.get(task.node_id)
            if execution is None:
                waited = f" after {timeout:g}s" if timeout is not None else ""
                message = f"timed out{waited} waiting for the plugins to reply"
                execution = Execution(NodeResult(phase=PHASE_PENDING, message=message))
            outcomes.append(Outcome(task.name, execution))
    return outcomes
