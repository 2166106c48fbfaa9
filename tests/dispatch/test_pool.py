"""Worker pool and requeue (spec 6.2, 6.6), against scripted plugins on loopback; time
is a `ManualScheduler`, so a 30 s requeue takes no time."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from webhook.dispatch import (
    DEFAULT_WORKERS,
    ManualScheduler,
    PluginClient,
    PluginEndpoint,
    Task,
    TaskKey,
    TaskResult,
    TemplateExecutor,
    ThreadScheduler,
    WorkerPool,
    WorkflowMeta,
    parse_go_duration,
)
from webhook.dispatch.duration import DurationError

WORKFLOW = WorkflowMeta("wf", "argo", "uid")
TEMPLATE = {"name": "main", "plugin": {"hello": {"n": 1}}}


class Collector:
    def __init__(self) -> None:
        self.reported: list[TaskResult] = []
        self.executed: list[TaskResult] = []
        self.lock = threading.Lock()

    def on_result(self, result: TaskResult) -> None:
        with self.lock:
            self.reported.append(result)

    def on_executed(self, result: TaskResult) -> None:
        with self.lock:
            self.executed.append(result)


def make_pool(plugin: Any, scheduler: Any, collector: Collector, workers: int = 4) -> WorkerPool:
    executor = TemplateExecutor(
        [PluginClient(PluginEndpoint(plugin.address), sleep=lambda s: None)]
    )
    return WorkerPool(
        executor,
        workers=workers,
        scheduler=scheduler,
        on_result=collector.on_result,
        on_executed=collector.on_executed,
    )


def test_a_default_pool_runs_argos_sixteen_tasks_at_once(scripted, steps):
    """spec 6.1/6.2: ARGO_AGENT_TASK_WORKERS default 16: sixteen calls in flight together,
    the seventeenth waits for a free worker."""
    in_flight = threading.Semaphore(0)
    release = threading.Event()
    plugin = scripted(steps.Reply(body={"node": {"phase": "Succeeded"}}))
    client = PluginClient(PluginEndpoint(plugin.address), sleep=lambda s: None)
    original = client.call

    def held_call(method: str, args: Any) -> Any:
        in_flight.release()
        assert release.wait(10)
        return original(method, args)

    client.call = held_call  # type: ignore[method-assign]
    with WorkerPool(TemplateExecutor([client])) as pool:
        for i in range(17):
            pool.submit(Task(f"n{i}", WORKFLOW, TEMPLATE))
        for _ in range(DEFAULT_WORKERS):
            assert in_flight.acquire(timeout=10)
        assert not in_flight.acquire(timeout=0.3)  # the 17th has no worker yet
        release.set()
        assert pool.wait_idle(10)
    assert plugin.calls == 17
    assert DEFAULT_WORKERS == 16


def test_each_task_runs_once_however_often_it_is_submitted(scripted, steps):
    """spec 6.2: consideredTasks; a repeated node id is skipped."""
    plugin = scripted(steps.Reply(body={"node": {"phase": "Succeeded"}}))
    collector = Collector()
    with make_pool(plugin, ManualScheduler(), collector) as pool:
        for _ in range(3):
            pool.submit(Task("node-1", WORKFLOW, TEMPLATE))
        assert pool.wait_idle(5)
        assert pool.executions("node-1") == 1
        assert pool.skipped == 2
    assert plugin.calls == 1
    assert len(collector.reported) == 1


def test_requeue_calls_the_plugin_again_with_the_same_template_after_the_duration(scripted, steps):
    """spec 6.6: after the requeue duration the node is forgotten and the same task
    snapshot is queued again; the intermediate Running result is reported."""
    plugin = scripted(
        steps.Reply(body={"node": {"phase": "Running", "message": "1/2"}, "requeue": "30s"}),
        steps.Reply(body={"node": {"phase": "Succeeded", "message": "2/2"}}),
    )
    scheduler = ManualScheduler()
    collector = Collector()
    with make_pool(plugin, scheduler, collector) as pool:
        pool.submit(Task("node-1", WORKFLOW, TEMPLATE))
        _wait(lambda: scheduler.pending == 1)
        assert scheduler.delays == [30.0]
        assert plugin.calls == 1
        assert not pool.wait_idle(0.05)  # a pending requeue keeps the pool busy
        scheduler.advance(29.9)
        assert plugin.calls == 1
        scheduler.advance(0.1)
        assert pool.wait_idle(5)
    assert [r.node.phase for r in collector.reported] == ["Running", "Succeeded"]
    assert plugin.requests[0].body["template"] == plugin.requests[1].body["template"] == TEMPLATE


def test_result_without_phase_is_not_reported_but_requeued(scripted, steps):
    """spec 6.2 and 6.6: phase "" -> nothing is patched; the requeue still happens."""
    plugin = scripted(
        steps.Reply(body={"node": {"message": "still thinking"}, "requeue": "1s"}),
        steps.Reply(body={"node": {"phase": "Succeeded"}}),
    )
    scheduler = ManualScheduler()
    collector = Collector()
    with make_pool(plugin, scheduler, collector) as pool:
        pool.submit(Task("node-1", WORKFLOW, TEMPLATE))
        _wait(lambda: scheduler.pending == 1)
        assert collector.reported == []
        assert len(collector.executed) == 1
        scheduler.advance(1)
        assert pool.wait_idle(5)
    assert [r.node.phase for r in collector.reported] == ["Succeeded"]


def test_failed_with_requeue_is_reported_and_executed_again(scripted, steps):
    """spec 6.6 edge case: Failed + requeue is patched and re-executed later."""
    plugin = scripted(
        steps.Reply(body={"node": {"phase": "Failed", "message": "x"}, "requeue": "2m"}),
        steps.Reply(body={"node": {"phase": "Succeeded"}}),
    )
    scheduler = ManualScheduler()
    collector = Collector()
    with make_pool(plugin, scheduler, collector) as pool:
        pool.submit(Task("node-1", WORKFLOW, TEMPLATE))
        _wait(lambda: scheduler.pending == 1)
        assert scheduler.delays == [120.0]
        scheduler.advance(120)
        assert pool.wait_idle(5)
    assert [r.node.phase for r in collector.reported] == ["Failed", "Succeeded"]


def test_follow_requeues_off_reports_the_requeue_without_scheduling(scripted, steps):
    """`execute` without --follow: one execution per task, requeue only reported."""
    plugin = scripted(steps.Reply(body={"node": {"phase": "Running"}, "requeue": "30s"}))
    scheduler = ManualScheduler()
    collector = Collector()
    executor = TemplateExecutor([PluginClient(PluginEndpoint(plugin.address))])
    with WorkerPool(
        executor, scheduler=scheduler, on_executed=collector.on_executed, follow_requeues=False
    ) as pool:
        pool.submit(Task("n", WORKFLOW, TEMPLATE))
        assert pool.wait_idle(5)
    assert scheduler.pending == 0
    assert collector.executed[0].execution.requeue == "30s"


def test_workers_run_tasks_in_parallel(scripted, steps):
    """spec 6.2: N workers call plugins concurrently (16 slow calls, 16 workers)."""
    plugin = scripted(steps.Hang(0.3))  # each call waits 0.3 s, then the client gives up
    executor = TemplateExecutor(
        [
            PluginClient(
                PluginEndpoint(plugin.address),
                timeout=0.3,
                sleep=lambda s: None,
                backoff=_one_try(),
            )
        ]
    )
    started = time.monotonic()
    with WorkerPool(executor, workers=16) as pool:
        for i in range(16):
            pool.submit(Task(f"n{i}", WORKFLOW, TEMPLATE))
        assert pool.wait_idle(10)
    # Concurrency, not speed: serially it would take 16 x 0.3 s = 4.8 s (headroom for a
    # loaded machine).
    assert time.monotonic() - started < 4.0
    assert plugin.calls == 16


def test_thread_scheduler_fires_in_due_order_and_close_drops_pending():
    fired: list[str] = []
    now = [0.0]
    scheduler = ThreadScheduler(clock=lambda: now[0])
    scheduler.call_later(0.0, lambda: fired.append("first"))
    _wait(lambda: fired == ["first"])
    scheduler.call_later(100.0, lambda: fired.append("never"))
    scheduler.close()
    now[0] = 200.0
    time.sleep(0.05)
    assert fired == ["first"]


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("30s", 30 * 10**9),
        ("2m", 120 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("1.5s", 1_500_000_000),
        ("300ms", 300_000_000),
        ("1µs", 1000),
        ("-1m", -60 * 10**9),
        ("+5s", 5 * 10**9),
        (".5s", 500_000_000),
    ],
)
def test_go_duration_parsing(text, nanoseconds):
    """spec 6.6: time.ParseDuration."""
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("5", 'time: missing unit in duration "5"'),
        ("5d", 'time: unknown unit "d" in duration "5d"'),
        (".s", 'time: invalid duration ".s"'),
        ("1 s", 'time: unknown unit " s" in duration "1 s"'),
        ("9999999999999999999h", 'time: invalid duration "9999999999999999999h"'),
    ],
)
def test_go_duration_errors(text, message):
    with pytest.raises(DurationError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


def _one_try() -> Any:
    from webhook.dispatch import Backoff

    return Backoff(steps=1)


def _wait(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_forget_lets_a_task_run_again_and_frees_memory(scripted, steps):
    """A long-running agent forgets the tasks of deleted TaskSets (bounded memory)."""
    plugin = scripted(
        steps.Reply(body={"node": {"phase": "Succeeded"}}),
        steps.Reply(body={"node": {"phase": "Succeeded"}}),
    )
    collector = Collector()
    task = Task("node-1", WORKFLOW, TEMPLATE, taskset_uid="ts-1")
    with make_pool(plugin, ManualScheduler(), collector) as pool:
        pool.submit(task)
        assert pool.wait_idle(5)
        assert pool.remembered() == 2  # considered + its execution count
        pool.forget([TaskKey("ts-1", "node-1")])
        assert pool.remembered() == 0
        pool.submit(task)
        assert pool.wait_idle(5)
    assert plugin.calls == 2


def test_the_same_node_of_two_tasksets_runs_twice_and_a_key_names_both(scripted, steps):
    """A TaskSet deleted and re-created under the same name has a new uid: its node is a
    new task, not one already considered."""
    plugin = scripted(steps.Reply(body={"node": {"phase": "Succeeded"}}))
    with make_pool(plugin, ManualScheduler(), Collector()) as pool:
        pool.submit(Task("node-1", WORKFLOW, TEMPLATE, taskset_uid="old-uid"))
        pool.submit(Task("node-1", WORKFLOW, TEMPLATE, taskset_uid="new-uid"))
        assert pool.wait_idle(5)
        assert pool.executions(TaskKey("old-uid", "node-1")) == 1
        assert pool.executions(TaskKey("new-uid", "node-1")) == 1
        assert pool.executions("node-1") == 0  # no TaskSet: a different key again
    assert plugin.calls == 2
    assert str(TaskKey("old-uid", "node-1")) == "old-uid/node-1"
    assert str(TaskKey("", "node-1")) == "node-1"


def test_accept_drops_tasks_no_longer_served(scripted, steps):
    plugin = scripted(steps.Reply(body={"node": {"phase": "Succeeded"}}))
    executor = TemplateExecutor(
        [PluginClient(PluginEndpoint(plugin.address), sleep=lambda s: None)]
    )
    with WorkerPool(
        executor, workers=1, scheduler=ManualScheduler(), accept=lambda key: key.taskset_uid == "a"
    ) as pool:
        pool.submit(Task("node", WORKFLOW, TEMPLATE, taskset_uid="b"))
        pool.submit(Task("node", WORKFLOW, TEMPLATE, taskset_uid="a"))
        assert pool.wait_idle(5)
        assert pool.wait_in_flight(1)
        assert pool.executions(TaskKey("b", "node")) == 0
        assert pool.executions(TaskKey("a", "node")) == 1
        assert pool.running() == ()
    assert plugin.calls == 1
