"""The leader election record: what a `coordination.k8s.io/v1` Lease's spec holds.

client-go's `resourcelock.LeaderElectionRecord`, with the Lease's field names
(`holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime`,
`leaseTransitions`). Times are Kubernetes `MicroTime`s: RFC 3339 with microseconds.

The record also carries this project's one annotation on the Lease, `in-flight`: the
task keys the holder was running at its last renewal, so that a replica taking over
from a holder that died can say which of its runs are re-runs (docs/agent.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

IN_FLIGHT_ANNOTATION = "argo-plugin-guard/in-flight"


def format_micro_time(moment: datetime) -> str:
    """`metav1.MicroTime` as the API server writes it: `2024-05-01T12:00:00.123456Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: Any) -> datetime | None:
    """A `MicroTime` or `Time` (`...Z`, with or without fraction, or an offset); None if
    absent or unreadable (a record written by another tool is still usable)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """Who holds the Lease, for how long, since when, and how often it changed hands."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int = 0
    in_flight: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaderRecord:
        spec = lease.get("spec") or {}
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        in_flight = tuple(
            key for key in str(annotations.get(IN_FLIGHT_ANNOTATION) or "").split(",") if key
        )
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=_int(spec.get("leaseDurationSeconds")),
            acquire_time=parse_micro_time(spec.get("acquireTime")),
            renew_time=parse_micro_time(spec.get("renewTime")),
            lease_transitions=_int(spec.get("leaseTransitions")),
            in_flight=in_flight,
        )

    def spec(self) -> dict[str, Any]:
        """The Lease's `spec`; absent fields are left out, as client-go does."""
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.lease_transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = format_micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = format_micro_time(self.renew_time)
        return spec

    def write_into(self, lease: dict[str, Any]) -> dict[str, Any]:
        """`lease` (as read: metadata with its resourceVersion) with this record in it."""
        metadata = dict(lease.get("metadata") or {})
        annotations = dict(metadata.get("annotations") or {})
        if self.in_flight:
            annotations[IN_FLIGHT_ANNOTATION] = ",".join(self.in_flight)
        else:
            annotations.pop(IN_FLIGHT_ANNOTATION, None)
        metadata["annotations"] = annotations
        if not annotations:
            del metadata["annotations"]
        return {**lease, "metadata": metadata, "spec": {**(lease.get("spec") or {}), **self.spec()}}

    def with_in_flight(self, keys: tuple[str, ...]) -> LeaderRecord:
        return replace(self, in_flight=keys)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
