"""The Lease state machine (webhook/leaderelection) against an in-memory Lease with the
API server's concurrency rules, on a manual clock: no test sleeps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from webhook.leaderelection import (
    IN_FLIGHT_ANNOTATION,
    InMemoryLeaseStore,
    LeaderElector,
    LeaderRecord,
    LeaseConflict,
    LeaseTiming,
    ManualClock,
    State,
    format_micro_time,
    parse_micro_time,
)

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def elector(
    store: InMemoryLeaseStore, identity: str, clock: ManualClock, **kwargs: object
) -> LeaderElector:
    return LeaderElector(store, identity, clock=clock, jitter=lambda: 0.0, **kwargs)  # type: ignore[arg-type]


def spec(store: InMemoryLeaseStore) -> dict[str, object]:
    lease = store.get()
    assert lease is not None
    return dict(lease["spec"])


def test_the_first_candidate_creates_the_lease_with_client_go_fields() -> None:
    store, clock = InMemoryLeaseStore("argo", "agent"), ManualClock(START)
    a = elector(store, "pod-a", clock)
    assert a.try_acquire_or_renew()
    assert spec(store) == {
        "holderIdentity": "pod-a",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 0,
        "acquireTime": "2026-03-01T12:00:00.000000Z",
        "renewTime": "2026-03-01T12:00:00.000000Z",
    }
    clock.advance(2.5)
    assert a.try_acquire_or_renew()  # a renewal keeps acquireTime and the transitions
    renewed = spec(store)
    assert renewed["acquireTime"] == "2026-03-01T12:00:00.000000Z"
    assert renewed["renewTime"] == "2026-03-01T12:00:02.500000Z"
    assert renewed["leaseTransitions"] == 0


def test_a_held_lease_is_taken_only_after_it_expired_as_seen_locally() -> None:
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    a, b = elector(store, "pod-a", clock), elector(store, "pod-b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert b.leader == "pod-a"
    # a renews for a while: b never gets it
    for _ in range(10):
        clock.advance(2)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    # a dies after its last renewal; b saw that renewal at the same moment
    clock.advance(14.9)
    assert not b.try_acquire_or_renew()
    clock.advance(0.2)
    assert b.try_acquire_or_renew()
    taken = spec(store)
    assert taken["holderIdentity"] == "pod-b"
    assert taken["leaseTransitions"] == 1
    assert taken["acquireTime"] == format_micro_time(clock.now())


def test_expiry_ignores_the_holders_clock() -> None:
    """A live holder whose node clock is an hour behind writes old renewTimes: it still
    holds, because expiry counts from when this replica saw the record change."""
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    skewed = ManualClock(START - timedelta(hours=1))
    a, b = elector(store, "pod-a", skewed), elector(store, "pod-b", clock)
    assert a.try_acquire_or_renew()
    for _ in range(20):
        clock.advance(2)
        skewed.advance(2)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()


def test_a_conflicting_write_loses_the_race() -> None:
    """Two candidates read the same expired Lease; the second write carries a stale
    resourceVersion, gets 409 and does not lead."""
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    store.create(LeaderRecord("gone", 15, START, START, 3).write_into({"metadata": {}}))
    a, b = elector(store, "pod-a", clock), elector(store, "pod-b", clock)
    assert not a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.advance(16)
    stale = store.get()
    assert a.try_acquire_or_renew()
    assert stale is not None
    with pytest.raises(LeaseConflict):
        store.update(stale)
    # b's own attempt reads again, sees a fresh holder, and stands by
    assert not b.try_acquire_or_renew()
    assert spec(store)["holderIdentity"] == "pod-a"
    assert spec(store)["leaseTransitions"] == 4


class Script:
    """Runs an elector's loop in the test thread; `at(t, action)` runs actions when the
    manual clock passes t; the loop stops at `until`."""

    def __init__(self, clock: ManualClock, until: float) -> None:
        self.clock = clock
        self.until = until
        self.stop = threading.Event()
        self.actions: list[tuple[float, object]] = []
        self.log: list[tuple[float, str]] = []
        clock.on_sleep = self._tick

    def at(self, moment: float, action: object) -> None:
        self.actions.append((moment, action))
        self.actions.sort(key=lambda item: item[0])

    def _tick(self, _: float) -> None:
        while self.actions and self.actions[0][0] <= self.clock.elapsed:
            _, action = self.actions.pop(0)
            action()  # type: ignore[operator]
        if self.clock.elapsed >= self.until:
            self.stop.set()


def test_a_holder_whose_renewals_fail_steps_down_then_leads_again() -> None:
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    script = Script(clock, until=60)
    events: list[tuple[float, str]] = []
    a = elector(
        store,
        "pod-a",
        clock,
        on_started_leading=lambda previous: events.append((clock.elapsed, "started")),
        on_stopped_leading=lambda: events.append((clock.elapsed, "stopped")),
    )
    script.at(10, lambda: store.fail_next(1000))  # the API server goes away at t=10
    script.at(30, lambda: store.fail_next(0))  # and comes back at t=30
    a.run(script.stop)
    started, stopped, again, released = events
    assert started == (0, "started")
    # renewals every 2 s; the attempt at t=10 already fails, so the last renewal was at
    # t=8 and the step down comes at the first attempt renew_deadline (10 s) after it
    assert stopped == (18, "stopped")
    assert again == (30, "started")  # standing by retries every 2 s (no jitter here)
    assert released[1] == "stopped"  # the loop's end, after the release
    assert spec(store)["holderIdentity"] == ""
    assert a.transitions == 2


def test_a_holder_that_sees_another_holder_steps_down_at_once() -> None:
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    script = Script(clock, until=20)
    stopped: list[float] = []
    a = elector(store, "pod-a", clock, on_stopped_leading=lambda: stopped.append(clock.elapsed))

    def steal() -> None:
        lease = store.get()
        assert lease is not None
        store.update(LeaderRecord("pod-x", 15, clock.now(), clock.now(), 9).write_into(lease))

    script.at(6, steal)
    a.run(script.stop)
    assert stopped == [6]  # the renewal attempt right after the theft, not the deadline
    assert spec(store)["holderIdentity"] == "pod-x"  # a never released what it lost
    assert a.state is State.STANDING_BY


def test_release_hands_over_at_the_next_attempt() -> None:
    """ReleaseOnCancel: holder cleared, leaseDurationSeconds 1; the standby takes it at
    its next attempt instead of waiting the 15 s."""
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    a, b = elector(store, "pod-a", clock), elector(store, "pod-b", clock)
    assert a.try_acquire_or_renew()
    a.state = State.LEADING
    clock.advance(1)
    assert not b.try_acquire_or_renew()
    assert a.release()
    released = spec(store)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    clock.advance(2)
    assert b.try_acquire_or_renew()
    assert spec(store)["leaseTransitions"] == 1


def test_a_standby_only_reads_while_the_holder_renews() -> None:
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    holder = elector(store, "pod-a", clock)
    assert holder.try_acquire_or_renew()
    script = Script(clock, until=30)
    for moment in range(2, 30, 2):
        script.at(moment, holder.try_acquire_or_renew)  # the holder keeps renewing
    writes_before = store.writes
    standby = elector(store, "pod-b", clock)
    standby.run(script.stop)
    writes = writes_before + 14  # the holder's renewals, and nothing else
    assert store.writes == writes  # standing by only reads
    assert spec(store)["holderIdentity"] == "pod-a"


def test_the_previous_holders_in_flight_keys_reach_the_next_holder() -> None:
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    a = elector(store, "pod-a", clock, in_flight=lambda: ("uid-1/node-a", "uid-1/node-b"))
    assert a.try_acquire_or_renew()
    lease = store.get()
    assert lease is not None
    assert lease["metadata"]["annotations"][IN_FLIGHT_ANNOTATION] == "uid-1/node-a,uid-1/node-b"
    previous: list[LeaderRecord] = []
    script = Script(clock, until=40)
    b = elector(store, "pod-b", clock, on_started_leading=previous.append)
    b.run(script.stop)
    assert previous[0].holder_identity == "pod-a"
    assert previous[0].in_flight == ("uid-1/node-a", "uid-1/node-b")
    released = store.get()
    assert released is not None
    assert IN_FLIGHT_ANNOTATION not in (released["metadata"].get("annotations") or {})


def test_health_follows_the_attempts() -> None:
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    a = elector(store, "pod-a", clock)
    assert a.healthy()
    assert a.try_acquire_or_renew()
    a.state = State.LEADING
    clock.advance(14)
    assert a.healthy()
    store.fail_next(100)
    assert not a.try_acquire_or_renew()
    clock.advance(2)
    assert not a.healthy()  # leading, and no renewal for more than the lease duration


@pytest.mark.parametrize(
    ("durations", "message"),
    [
        ((10, 10, 2), "greater than the renew deadline"),
        ((15, 2, 2), "greater than 1.2 x the retry period"),
        ((0.5, 0.2, 0.1), "at least 1 second"),
    ],
)
def test_bad_timings_are_refused(durations: tuple[float, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaseTiming(*durations)


def test_micro_times_round_trip_and_foreign_forms_are_read() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 1, 250000, tzinfo=UTC)
    assert parse_micro_time(format_micro_time(moment)) == moment
    assert parse_micro_time("2026-03-01T12:00:01Z") == moment.replace(microsecond=0)
    assert parse_micro_time("2026-03-01T13:00:01+01:00") == moment.replace(microsecond=0)
    assert parse_micro_time("yesterday") is None
    assert parse_micro_time(None) is None
    record = LeaderRecord.from_lease({"spec": {"holderIdentity": "x", "leaseDurationSeconds": "7"}})
    assert record.holder_identity == "x" and record.lease_duration_seconds == 7


def test_a_standby_that_cannot_read_the_lease_is_unhealthy() -> None:
    store, clock = InMemoryLeaseStore(), ManualClock(START)
    b = elector(store, "pod-b", clock)
    store.fail_next(100)
    assert not b.try_acquire_or_renew()
    clock.advance(10)
    assert not b.try_acquire_or_renew()
    assert b.healthy()  # within a lease duration (plus a retry) of the first attempt
    clock.advance(10)
    assert not b.try_acquire_or_renew()
    assert not b.healthy()
    store.fail_next(0)
    assert b.try_acquire_or_renew()
    assert b.healthy()
