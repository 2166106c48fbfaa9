"""Where the Lease lives: the elector's only way to the cluster.

`LeaseStore` is the three calls client-go's `resourcelock.Interface` makes on a Lease:
get, create, update with optimistic concurrency (the object's
`metadata.resourceVersion`). `kube.KubeLeaseStore` does them through the project's
Kubernetes boundary (`webhook.kube`); `InMemoryLeaseStore` is the same contract in a
dict, for the state machine's unit tests and for trying the elector without a cluster.
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any, Protocol

from webhook.errors import GuardError

LeaseObject = dict[str, Any]


class LeaseError(GuardError):
    """The Lease could not be read or written (transport, 5xx, 403 ...)."""


class LeaseConflict(LeaseError):
    """409: someone else wrote (or created) the Lease since we read it."""


class LeaseStore(Protocol):
    """One Lease, named at construction."""

    @property
    def description(self) -> str:
        """`namespace/name`, for logs."""
        ...

    def get(self) -> LeaseObject | None:
        """The Lease, or None when it does not exist; `LeaseError` otherwise."""
        ...

    def create(self, lease: LeaseObject) -> LeaseObject:
        """Create it; `LeaseConflict` when it already exists."""
        ...

    def update(self, lease: LeaseObject) -> LeaseObject:
        """Replace it; `LeaseConflict` when `metadata.resourceVersion` is stale."""
        ...


class InMemoryLeaseStore:
    """A Lease in memory with the API server's concurrency rules. `fail_next(n)` makes
    the next n calls raise `LeaseError` (a partition, an API server down)."""

    def __init__(self, namespace: str = "default", name: str = "lease") -> None:
        self.namespace = namespace
        self.name = name
        self._lease: LeaseObject | None = None
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        self._failures = 0
        self.writes = 0

    @property
    def description(self) -> str:
        return f"{self.namespace}/{self.name}"

    def fail_next(self, calls: int) -> None:
        with self._lock:
            self._failures = calls

    def _maybe_fail(self) -> None:
        if self._failures > 0:
            self._failures -= 1
            raise LeaseError("injected failure: the API server is unreachable")

    def get(self) -> LeaseObject | None:
        with self._lock:
            self._maybe_fail()
            return copy.deepcopy(self._lease)

    def create(self, lease: LeaseObject) -> LeaseObject:
        with self._lock:
            self._maybe_fail()
            if self._lease is not None:
                raise LeaseConflict(f'leases "{self.name}" already exists')
            return self._store(lease)

    def update(self, lease: LeaseObject) -> LeaseObject:
        with self._lock:
            self._maybe_fail()
            current = self._lease
            if current is None:
                raise LeaseError(f'leases "{self.name}" not found')
            sent = (lease.get("metadata") or {}).get("resourceVersion")
            if sent != current["metadata"]["resourceVersion"]:
                raise LeaseConflict(
                    f'Operation cannot be fulfilled on leases "{self.name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
            return self._store(lease)

    def _store(self, lease: LeaseObject) -> LeaseObject:
        stored = copy.deepcopy(lease)
        metadata = stored.setdefault("metadata", {})
        metadata.update(
            name=self.name, namespace=self.namespace, resourceVersion=str(next(self._versions))
        )
        stored.setdefault("apiVersion", "coordination.k8s.io/v1")
        stored.setdefault("kind", "Lease")
        self._lease = stored
        self.writes += 1
        return copy.deepcopy(stored)
