"""Which API resources the project talks to: one `Kind` per resource, and its URL paths.

A `Kind` is all the generic client needs to reach a resource (`Cluster.resource(kind)`),
so adding a resource is one constant here (or one `Kind(...)` at the caller):

    LEASE = Kind("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)

Paths follow the API server's layout: `/api/v1/...` for the core group ("" here),
`/apis/<group>/<version>/...` for every other group; a namespaced resource lives under
`.../namespaces/<ns>/<plural>`, and is listed across every namespace at `.../<plural>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Kind:
    """One API resource: `group` is "" for the core group; `plural` is the URL's name."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """The objects' `apiVersion`: `v1` (core) or `<group>/<version>`."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """`<plural>.<group>` (or `<plural>` for core), as the API server's messages and
        RBAC rules name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        """The URL path of the collection (no `name`) or of one object.

        `namespace=None` on a namespaced kind is the all-namespaces collection (list and
        watch only). A namespace given for a cluster-scoped kind, or an object of a
        namespaced kind without one, is a programming error (ValueError).
        """
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            root += f"/namespaces/{_segment(namespace, 'namespace')}"
        elif self.namespaced and name is not None:
            raise ValueError(f"{self.kind} {name!r}: a namespaced object needs a namespace")
        elif not self.namespaced and namespace:
            raise ValueError(f"{self.kind} is cluster-scoped: no namespace ({namespace!r})")
        path = f"{root}/{self.plural}"
        if name is not None:
            path += f"/{_segment(name, 'name')}"
            if subresource:
                path += f"/{_segment(subresource, 'subresource')}"
        elif subresource:
            raise ValueError(f"{self.kind}: a subresource needs an object name")
        return path

    def __str__(self) -> str:
        return f"{self.kind} ({self.resource}/{self.version})"


def _segment(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value:
        raise ValueError(f"not a valid {what} for a URL path: {value!r}")
    return quote(value, safe="")


# Core (`/api/v1`)
CONFIG_MAP = Kind("", "v1", "configmaps", "ConfigMap")
SECRET = Kind("", "v1", "secrets", "Secret")
POD = Kind("", "v1", "pods", "Pod")
NAMESPACE = Kind("", "v1", "namespaces", "Namespace", namespaced=False)

# Argo Workflows (`argoproj.io/v1alpha1`)
WORKFLOW = Kind("argoproj.io", "v1alpha1", "workflows", "Workflow")
WORKFLOW_TEMPLATE = Kind("argoproj.io", "v1alpha1", "workflowtemplates", "WorkflowTemplate")
CLUSTER_WORKFLOW_TEMPLATE = Kind(
    "argoproj.io",
    "v1alpha1",
    "clusterworkflowtemplates",
    "ClusterWorkflowTemplate",
    namespaced=False,
)
CRON_WORKFLOW = Kind("argoproj.io", "v1alpha1", "cronworkflows", "CronWorkflow")
# Namespaced, with a status subresource (spec 5): the agent patches `.../status`.
WORKFLOW_TASKSET = Kind("argoproj.io", "v1alpha1", "workflowtasksets", "WorkflowTaskSet")

# Leader election
LEASE = Kind("coordination.k8s.io", "v1", "leases", "Lease")

# Admission webhook registrations (cluster-scoped; their `caBundle` is the serving CA)
VALIDATING_WEBHOOK_CONFIGURATION = Kind(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    namespaced=False,
)
MUTATING_WEBHOOK_CONFIGURATION = Kind(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    namespaced=False,
)

# Policy reports (the Policy WG's `wgpolicyk8s.io/v1alpha2`, as Kyverno writes them)
POLICY_REPORT = Kind("wgpolicyk8s.io", "v1alpha2", "policyreports", "PolicyReport")
CLUSTER_POLICY_REPORT = Kind(
    "wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports", "ClusterPolicyReport", namespaced=False
)
