"""The agent service: one Agent per leadership term on a Lease (in-memory here; the
real processes on the fake API are in test_failover.py), its probes and metrics."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from webhook.agent.health import HealthServer
from webhook.agent.metrics import AgentMetrics
from webhook.agent.service import AgentService, Phase
from webhook.leaderelection import (
    InMemoryLeaseStore,
    LeaderElector,
    LeaseError,
    LeaseObject,
    LeaseTiming,
)

TIMING = LeaseTiming(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)


class StubAgent:
    """Stands in for `Agent`: records its life, reports calls in flight."""

    def __init__(self, suspects: Iterable[str], in_flight: tuple[str, ...]) -> None:
        self.suspects = tuple(suspects)
        self._in_flight = in_flight
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def shutdown(self) -> None:
        self.stopped = True

    def in_flight(self) -> tuple[str, ...]:
        return self._in_flight

    def watch_problems(self) -> list[str]:
        return []


class Partitionable:
    """One replica's view of the shared Lease; `cut()` makes its calls fail."""

    def __init__(self, store: InMemoryLeaseStore) -> None:
        self.store = store
        self.broken = False
        self.description = store.description

    def cut(self) -> None:
        self.broken = True

    def _check(self) -> None:
        if self.broken:
            raise LeaseError("connection refused")

    def get(self) -> LeaseObject | None:
        self._check()
        return self.store.get()

    def create(self, lease: LeaseObject) -> LeaseObject:
        self._check()
        return self.store.create(lease)

    def update(self, lease: LeaseObject) -> LeaseObject:
        self._check()
        return self.store.update(lease)


def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.01)
    return value


class Replica:
    def __init__(self, name: str, store: Any, in_flight: tuple[str, ...] = ()) -> None:
        self.name = name
        self.agents: list[StubAgent] = []
        self.metrics = AgentMetrics()

        def make(suspects: Iterable[str]) -> Any:
            agent = StubAgent(suspects, in_flight)
            self.agents.append(agent)
            return agent

        def elect(**callbacks: Any) -> LeaderElector:
            return LeaderElector(store, name, timing=TIMING, **callbacks)

        self.service = AgentService(make, self.metrics, elect=elect)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), daemon=True)

    def start(self) -> Replica:
        self.thread.start()
        return self

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def gauge(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name)
        return 0.0 if value is None else value


@pytest.fixture
def replicas() -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(name: str, store: Any, **kwargs: Any) -> Replica:
        replica = Replica(name, store, **kwargs).start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.thread.is_alive():
            replica.halt()


def test_one_replica_leads_the_other_stands_by_and_takes_over_a_failed_holder(replicas):
    store = InMemoryLeaseStore("argo", "agent")
    view_a = Partitionable(store)
    a = replicas("pod-a", view_a, in_flight=("uid-1/node-1",))
    until(lambda: a.service.phase is Phase.LEADING)
    b = replicas("pod-b", Partitionable(store))
    until(lambda: b.service.phase is Phase.STANDING_BY)
    assert a.service.ready().ok and b.service.ready().ok
    assert a.gauge("plugin_guard_agent_leader") == 1 and b.gauge("plugin_guard_agent_leader") == 0
    until(lambda: (store.get() or {}).get("metadata", {}).get("annotations"))
    assert b.agents == []  # standing by: no Agent, so no list, no watch, no task

    view_a.cut()  # pod-a can no longer renew: it steps down, pod-b takes over
    until(lambda: a.service.phase is Phase.STANDING_BY)
    assert a.agents[0].stopped  # drained: no submission, calls in flight waited for
    assert a.gauge("plugin_guard_agent_leader") == 0
    until(lambda: b.service.phase is Phase.LEADING)
    # pod-a's last published calls in flight are pod-b's suspected re-runs
    assert b.agents[0].suspects == ("uid-1/node-1",)
    until(lambda: not a.service.health().ok)  # its renewals are dead
    assert b.service.health().ok


def test_a_stopped_holder_releases_and_the_standby_leads_at_once(replicas):
    store = InMemoryLeaseStore()
    a = replicas("pod-a", store)
    until(lambda: a.service.phase is Phase.LEADING)
    b = replicas("pod-b", store)
    until(lambda: b.service.phase is Phase.STANDING_BY)
    a.halt()
    lease = store.get()
    assert lease is not None and lease["spec"]["holderIdentity"] in ("", "pod-b")
    started = time.monotonic()
    until(lambda: b.service.phase is Phase.LEADING)
    # the next attempt, not the lease duration: a released Lease is free at once
    assert time.monotonic() - started < TIMING.lease_duration
    assert b.agents[0].suspects == ()  # a clean hand-over leaves nothing in flight
    assert a.service.phase is Phase.STOPPED and a.agents[0].stopped


def test_without_leader_election_the_agent_serves_until_stopped() -> None:
    metrics = AgentMetrics()
    agents: list[StubAgent] = []
    service = AgentService(lambda s: agents.append(StubAgent(s, ())) or agents[-1], metrics)  # type: ignore[func-returns-value]
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    until(lambda: service.phase is Phase.LEADING)
    assert service.ready().ok and service.health().ok
    assert metrics.registry.get_sample_value("plugin_guard_agent_leader") == 1
    stop.set()
    thread.join(5)
    assert agents[0].stopped and service.phase is Phase.STOPPED
    assert not service.ready().ok


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_the_health_listener_answers_probes_and_metrics(replicas):
    store = InMemoryLeaseStore()
    view = Partitionable(store)
    a = replicas("pod-a", view)
    until(lambda: a.service.phase is Phase.LEADING)
    a.metrics.failover_reruns.inc()
    a.metrics.patch_failed("conflict")
    server = HealthServer(
        "127.0.0.1", 0, health=a.service.health, ready=a.service.ready, metrics=a.metrics
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        code, kind, body = get(base + "/readyz")
        assert (code, kind, json.loads(body)) == (
            200,
            "application/json",
            {"status": "ok", "state": "leading"},
        )
        code, _, body = get(base + "/metrics")
        assert code == 200
        assert "plugin_guard_agent_leader 1.0" in body
        assert "plugin_guard_agent_failover_reruns_total 1.0" in body
        assert 'plugin_guard_agent_patch_errors_total{reason="conflict"} 1.0' in body
        code, _, body = get(base + "/nope")
        assert code == 404 and "error" in json.loads(body)
        view.cut()
        until(lambda: a.service.phase is Phase.STANDING_BY)
        until(lambda: get(base + "/healthz")[0] == 503)
        problems = json.loads(get(base + "/healthz")[2])["problems"]
        assert problems == ["the Lease has not been read or renewed in time"]
    finally:
        server.stop()
