"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection.

store = KubeLeaseStore(cluster, namespace="argo", name="plugin-guard-agent")
elector = LeaderElector(store, identity=pod_name, on_started_leading=...,
                        on_stopped_leading=...)
elector.start()      # a thread: STANDING_BY <-> LEADING (see elector.py)
elector.stop()       # releases the Lease if held
"""

from webhook.leaderelection.elector import (
    JITTER_FACTOR,
    Clock,
    LeaderElector,
    LeaseTiming,
    ManualClock,
    State,
    SystemClock,
)
from webhook.leaderelection.record import (
    IN_FLIGHT_ANNOTATION,
    LeaderRecord,
    format_micro_time,
    parse_micro_time,
)
from webhook.leaderelection.store import (
    InMemoryLeaseStore,
    LeaseConflict,
    LeaseError,
    LeaseObject,
    LeaseStore,
)

__all__ = [
    "IN_FLIGHT_ANNOTATION",
    "JITTER_FACTOR",
    "Clock",
    "InMemoryLeaseStore",
    "LeaderElector",
    "LeaderRecord",
    "LeaseConflict",
    "LeaseError",
    "LeaseObject",
    "LeaseStore",
    "LeaseTiming",
    "ManualClock",
    "State",
    "SystemClock",
    "format_micro_time",
    "parse_micro_time",
]
