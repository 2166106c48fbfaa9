"""`LeaseStore` on a cluster: a `coordination.k8s.io/v1` Lease through `webhook.kube`.

RBAC it needs, in the Lease's namespace: `create` on leases (unrestricted: RBAC cannot
restrict `create` by name), and `get`, `update` with `resourceNames: [<lease name>]`.
"""

from __future__ import annotations

from webhook.kube import Cluster, KubeApiError, kinds
from webhook.leaderelection.store import LeaseConflict, LeaseError, LeaseObject


class KubeLeaseStore:
    def __init__(self, cluster: Cluster, *, namespace: str, name: str) -> None:
        self._leases = cluster.resource(kinds.LEASE)
        self.namespace = namespace
        self.name = name

    @property
    def description(self) -> str:
        return f"{self.namespace}/{self.name}"

    def get(self) -> LeaseObject | None:
        try:
            return self._leases.get(self.name, namespace=self.namespace)
        except KubeApiError as exc:
            if exc.not_found:
                return None
            raise LeaseError(str(exc)) from exc

    def create(self, lease: LeaseObject) -> LeaseObject:
        body = {**lease, "metadata": {**lease.get("metadata", {}), "name": self.name}}
        try:
            return self._leases.create(body, namespace=self.namespace)
        except KubeApiError as exc:
            if exc.code == 409:
                raise LeaseConflict(str(exc)) from exc
            raise LeaseError(str(exc)) from exc

    def update(self, lease: LeaseObject) -> LeaseObject:
        try:
            return self._leases.update(lease, namespace=self.namespace)
        except KubeApiError as exc:
            if exc.code == 409:
                raise LeaseConflict(str(exc)) from exc
            raise LeaseError(str(exc)) from exc
