"""The agent as a service: one `Agent` per leadership term, probes, metrics.

Without leader election the agent serves from start to SIGTERM. With it
(`--leader-elect`), this is the loop, driven by the `LeaderElector`'s two states:

    STARTING -> STANDING_BY        the first attempt on the Lease was made
    STANDING_BY -> LEADING         the Lease is ours: a fresh Agent lists, watches, runs
    LEADING -> STEPPING_DOWN       the Lease is lost (not renewed within the renew
                                   deadline, or another holder): the Agent stops
                                   submitting at once, waits for the calls in flight (up
                                   to the shutdown timeout) and flushes its patches
    STEPPING_DOWN -> STANDING_BY   then waits to lead again
    any -> STOPPED                 SIGTERM: the same drain while the elector keeps
                                   renewing, then the Lease is released (holder cleared)
                                   so the next replica takes over at once

Each term starts from nothing: what is final is read from the TaskSets' status, the one
source of truth shared by every replica. At each renewal the holder publishes the keys
of its calls in flight in the Lease; the next holder counts and logs a run of one of
them as a re-run after failover.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from enum import StrEnum

from webhook.agent.agent import Agent
from webhook.agent.health import Probe
from webhook.agent.metrics import AgentMetrics
from webhook.leaderelection import LeaderElector, LeaderRecord

log = logging.getLogger(__name__)

AgentFactory = Callable[[Iterable[str]], Agent]  # suspected re-runs -> a fresh Agent


class Phase(StrEnum):
    STARTING = "starting"
    STANDING_BY = "standing-by"
    LEADING = "leading"
    STEPPING_DOWN = "stepping-down"
    STOPPED = "stopped"


class AgentService:
    """`run(stop)` until `stop` is set; `health()` and `ready()` for the probes."""

    def __init__(
        self,
        make_agent: AgentFactory,
        metrics: AgentMetrics,
        *,
        elect: Callable[..., LeaderElector] | None = None,
    ) -> None:
        """`elect(on_started_leading=..., on_stopped_leading=..., in_flight=...)` builds
        the elector; None serves without leader election."""
        self._make_agent = make_agent
        self.metrics = metrics
        self._cond = threading.Condition()
        self._leading = False
        self._lease_term = 0
        self._suspects: tuple[str, ...] = ()
        self.agent: Agent | None = None
        self.phase = Phase.STARTING
        self.terms = 0
        self.elector: LeaderElector | None = None
        if elect is not None:
            self.elector = elect(
                on_started_leading=self._started_leading,
                on_stopped_leading=self._stopped_leading,
                in_flight=self._in_flight,
            )

    # ------------------------------------------------------------------ elector callbacks

    def _started_leading(self, previous: LeaderRecord) -> None:
        assert self.elector is not None
        suspects: tuple[str, ...] = ()
        if previous.holder_identity not in ("", self.elector.identity):
            suspects = previous.in_flight  # it stopped renewing with these calls running
        with self._cond:
            self._leading = True
            self._lease_term += 1  # a loss and a new win between two looks is still a loss
            self._suspects = suspects
            self._cond.notify_all()

    def _stopped_leading(self) -> None:
        with self._cond:
            self._leading = False
            self._cond.notify_all()

    def _in_flight(self) -> tuple[str, ...]:
        agent = self.agent
        return agent.in_flight() if agent is not None else ()

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        if self.elector is None:
            self._serve_term((), lambda: stop.is_set())
            self.phase = Phase.STOPPED
            return
        self.elector.start()
        try:
            while not stop.is_set():
                self._wait(lambda: self._leading or stop.is_set())
                if stop.is_set():
                    break
                with self._cond:
                    suspects, self._suspects = self._suspects, ()
                    term = self._lease_term

                def over(term: int = term) -> bool:
                    return stop.is_set() or not self._leading or self._lease_term != term

                self._serve_term(suspects, over)
                if not stop.is_set():
                    self.phase = Phase.STANDING_BY
        finally:
            self.elector.stop()  # releases the Lease when held
            self.phase = Phase.STOPPED

    def _wait(self, done: Callable[[], bool]) -> None:
        with self._cond:
            while not done():
                elector = self.elector
                if self.phase is Phase.STARTING and elector and elector.last_attempt is not None:
                    self.phase = Phase.STANDING_BY
                self._cond.wait(0.1)  # `stop` is an Event of its own: poll it

    def _serve_term(self, suspects: Iterable[str], over: Callable[[], bool]) -> None:
        agent = self._make_agent(suspects)
        self.terms += 1
        self.metrics.leader.set(1)
        if self.elector is not None:
            self.metrics.leader_transitions.inc()
        agent.start()
        self.agent = agent
        self.phase = Phase.LEADING
        self._wait(over)
        self.phase = Phase.STEPPING_DOWN
        self.metrics.leader.set(0)
        agent.shutdown()  # stop submitting, wait for calls in flight, flush the patches
        self.agent = None

    # ------------------------------------------------------------------ probes

    def health(self) -> Probe:
        problems: list[str] = []
        if self.elector is not None and not self.elector.healthy():
            problems.append("the Lease has not been read or renewed in time")
        agent = self.agent
        if agent is not None:
            problems.extend(agent.watch_problems())
        return Probe(not problems, self.phase.value, tuple(problems))

    def ready(self) -> Probe:
        ok = self.phase in (Phase.LEADING, Phase.STANDING_BY)
        return Probe(ok, self.phase.value)
