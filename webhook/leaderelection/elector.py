"""Leader election on a Lease: client-go's `leaderelection.LeaderElector`, in Python.

A small explicit state machine with two states, `STANDING_BY` and `LEADING`:

    STANDING_BY --acquired-->  LEADING     every retry period (with jitter) try to
                                           acquire; the Lease is free, expired, or ours
    LEADING     --renewed-->   LEADING     every retry period renew it
    LEADING     --lost------>  STANDING_BY no renewal for `renew_deadline`, or the Lease
                                           names another holder
    any         --stopped--->  (end)       a holder releases the Lease on the way out
                                           (client-go's ReleaseOnCancel)

`try_acquire_or_renew` is client-go's `tryAcquireOrRenew`: get the Lease; create it if
it does not exist; if another identity holds it and it has not expired, give up for now;
otherwise write ourselves in with the `resourceVersion` read (optimistic concurrency: a
409 means someone else wrote first, and this attempt failed). Expiry is judged as
client-go does, against the *local* time at which this replica last saw the record
change, never against the `renewTime` written by another node's clock, so clock skew
between nodes cannot make a live holder look expired.

Unlike client-go (whose `Run` returns after leadership is lost, and the process exits),
a holder that loses the Lease goes back to standing by: the agent drains and waits to
lead again.

The clock is injected (`Clock`): `ManualClock` moves time only when the elector sleeps,
so the whole state machine runs in a unit test without waiting.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from webhook.leaderelection.record import LeaderRecord
from webhook.leaderelection.store import LeaseConflict, LeaseError, LeaseObject, LeaseStore

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2  # client-go's JitterFactor: waits of retry_period * [1, 2.2)
MAX_IN_FLIGHT_KEYS = 200  # what is published in the Lease annotation, at most


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """client-go's defaults (the kube-controller-manager's `--leader-elect-*` flags)."""

    lease_duration: float = 15.0  # how long a Lease holds without renewal
    renew_deadline: float = 10.0  # how long a holder keeps trying to renew before stepping down
    retry_period: float = 2.0  # the wait between attempts

    def __post_init__(self) -> None:
        if self.lease_duration < 1:
            raise ValueError("the lease duration must be at least 1 second")
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be greater than the renew deadline")
        if not self.renew_deadline > JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"the renew deadline must be greater than {JITTER_FACTOR} x the retry period"
            )
        if self.retry_period <= 0:
            raise ValueError("the retry period must be positive")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Wait, or return early when `stop` is set; True when stopped."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(seconds)


class ManualClock:
    """Time moves only when someone sleeps (or `advance` is called); for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.elapsed = 0.0
        self.on_sleep: Callable[[float], None] | None = None  # a test's hook per sleep

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed)

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        return stop.is_set()


class State(StrEnum):
    STANDING_BY = "standing-by"
    LEADING = "leading"


@dataclass(slots=True)
class _Observed:
    """The last record read, and the local time it was first seen in that form."""

    record: LeaderRecord = field(default_factory=LeaderRecord)
    key: tuple[object, ...] = ()
    since: float = 0.0


class LeaderElector:
    """`run(stop)` (or `start()` / `stop()`) elects; callbacks tell the caller.

    `on_started_leading(previous)` gets the record the Lease held before we took it
    (its holder and the keys it had in flight); `on_stopped_leading()` runs when the
    Lease is lost or released. Both run on the elector's thread and must not block.
    `in_flight()` gives the keys to publish in the Lease at each renewal.
    """

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        timing: LeaseTiming | None = None,
        clock: Clock | None = None,
        jitter: Callable[[], float] = random.random,
        on_started_leading: Callable[[LeaderRecord], None] = lambda previous: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
        on_new_leader: Callable[[str], None] = lambda identity: None,
        in_flight: Callable[[], tuple[str, ...]] = tuple,
        release_on_cancel: bool = True,
    ) -> None:
        if not identity:
            raise ValueError("the leader election identity must not be empty")
        self.store = store
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self.clock: Clock = clock or SystemClock()
        self._jitter = jitter
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._in_flight = in_flight
        self.release_on_cancel = release_on_cancel
        self.state = State.STANDING_BY
        self._observed = _Observed()
        self._lease: LeaseObject | None = None  # the last Lease object read or written
        self._reported_leader = ""
        self.last_renewal = 0.0  # monotonic time of the last successful acquire or renew
        self.last_attempt: float | None = None  # monotonic time the last attempt finished
        self.last_read: float | None = None  # monotonic time the Lease was last read
        self._first_attempt: float | None = None
        self.transitions = 0  # times this elector started leading
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ running

    @property
    def is_leader(self) -> bool:
        return self.state is State.LEADING

    @property
    def leader(self) -> str:
        """The holder last seen in the Lease ("" when free or not read yet)."""
        return self._observed.record.holder_identity

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="leader-election")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop; a holder releases the Lease (`release_on_cancel`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self, stop: threading.Event) -> None:
        log.info(
            "leader election started",
            extra={"lease": self.store.description, "identity": self.identity},
        )
        while not stop.is_set():
            if not self._acquire(stop):
                break
            self._renew(stop)
        if self.state is State.LEADING:
            if self.release_on_cancel:
                self.release()
            self._step_down("stopped")

    def _acquire(self, stop: threading.Event) -> bool:
        """STANDING_BY until the Lease is ours (True) or `stop` (False)."""
        while True:
            previous = self._observed.record
            if self.try_acquire_or_renew():
                self.state = State.LEADING
                self.transitions += 1
                log.info(
                    "acquired the Lease; leading",
                    extra={
                        "lease": self.store.description,
                        "identity": self.identity,
                        "previous_holder": previous.holder_identity,
                    },
                )
                self._notify(self._on_started, previous)
                return True
            wait = self.timing.retry_period * (1 + self._jitter() * JITTER_FACTOR)
            if self.clock.sleep(wait, stop):
                return False

    def _renew(self, stop: threading.Event) -> None:
        """LEADING until the renewals fail for `renew_deadline`, or `stop`."""
        while not self.clock.sleep(self.timing.retry_period, stop):
            if self.try_acquire_or_renew():
                continue
            holder = self._observed.record.holder_identity
            if holder and holder != self.identity:
                self._step_down(f"the Lease is now held by {holder}")
                return
            late = self.clock.monotonic() - self.last_renewal
            if late >= self.timing.renew_deadline:
                self._step_down(f"failed to renew the Lease for {late:g}s")
                return

    def _step_down(self, why: str) -> None:
        self.state = State.STANDING_BY
        log.warning(
            "stopped leading",
            extra={"lease": self.store.description, "identity": self.identity, "reason": why},
        )
        self._notify(self._on_stopped)

    @staticmethod
    def _notify(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # a broken observer must not kill the election
            log.exception("leader election callback failed")

    # ------------------------------------------------------------------ one attempt

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the Lease afterwards."""
        try:
            return self._try_acquire_or_renew()
        finally:
            self.last_attempt = self.clock.monotonic()
            if self._first_attempt is None:
                self._first_attempt = self.last_attempt

    def _try_acquire_or_renew(self) -> bool:
        now = self.clock.now()
        desired = LeaderRecord(
            holder_identity=self.identity,
            lease_duration_seconds=max(1, round(self.timing.lease_duration)),
            acquire_time=now,
            renew_time=now,
            in_flight=tuple(self._in_flight())[:MAX_IN_FLIGHT_KEYS],
        )
        try:
            lease = self.store.get()
        except LeaseError as exc:
            log.warning(
                "cannot read the Lease", extra={"lease": self.store.description, "error": str(exc)}
            )
            return False
        self.last_read = self.clock.monotonic()
        if lease is None:
            blank: LeaseObject = {"metadata": {}}
            return self._write(self.store.create, desired.write_into(blank), desired)

        record = LeaderRecord.from_lease(lease)
        self._observe(record)
        self._lease = lease
        holder = record.holder_identity
        if holder and holder != self.identity:
            expires = self._observed.since + record.lease_duration_seconds
            if expires > self.clock.monotonic():
                return False  # held by another, and not expired
        if holder == self.identity:
            desired = replace(
                desired,
                acquire_time=record.acquire_time or now,
                lease_transitions=record.lease_transitions,
            )
        else:
            desired = replace(desired, lease_transitions=record.lease_transitions + 1)
        return self._write(self.store.update, desired.write_into(lease), desired)

    def _write(
        self,
        call: Callable[[LeaseObject], LeaseObject],
        lease: LeaseObject,
        record: LeaderRecord,
    ) -> bool:
        try:
            written = call(lease)
        except LeaseConflict as exc:
            log.info(
                "the Lease changed under us; trying again later",
                extra={"lease": self.store.description, "error": str(exc)},
            )
            return False
        except LeaseError as exc:
            log.warning(
                "cannot write the Lease", extra={"lease": self.store.description, "error": str(exc)}
            )
            return False
        self._lease = written
        self._observe(record)
        self.last_renewal = self.clock.monotonic()
        return True

    def _observe(self, record: LeaderRecord) -> None:
        key = (
            record.holder_identity,
            record.lease_duration_seconds,
            record.acquire_time,
            record.renew_time,
            record.lease_transitions,
        )
        if key != self._observed.key:
            self._observed = _Observed(record, key, self.clock.monotonic())
        if record.holder_identity != self._reported_leader:
            self._reported_leader = record.holder_identity
            if record.holder_identity:
                self._notify(self._on_new_leader, record.holder_identity)

    def release(self) -> bool:
        """Give the Lease up now (client-go's release): holder cleared, duration 1 s, so
        the next replica takes it at its next attempt instead of waiting for expiry."""
        if self._lease is None or self.state is not State.LEADING:
            return False
        now = self.clock.now()
        released = LeaderRecord(
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
            lease_transitions=self._observed.record.lease_transitions,
        )
        try:
            self._lease = self.store.update(released.write_into(self._lease))
        except LeaseError as exc:
            log.warning(
                "cannot release the Lease; it expires by itself",
                extra={"lease": self.store.description, "error": str(exc)},
            )
            return False
        log.info(
            "released the Lease", extra={"lease": self.store.description, "identity": self.identity}
        )
        self._observe(released)
        return True

    # ------------------------------------------------------------------ health

    def healthy(self) -> bool:
        """The renewals are alive: the Lease was read within the last lease duration plus
        one jittered retry (a standby that cannot reach the API server is not healthy
        either), and a holder renewed it within the lease duration."""
        if self._first_attempt is None:
            return True  # not started: nothing is late yet
        now = self.clock.monotonic()
        slack = self.timing.lease_duration + self.timing.retry_period * (1 + JITTER_FACTOR)
        last_read = self.last_read if self.last_read is not None else self._first_attempt
        if now - last_read > slack:
            return False
        return not (self.is_leader and now - self.last_renewal > self.timing.lease_duration)
