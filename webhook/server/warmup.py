"""Start-up work of a server: evaluate sample objects before the first real review.

The engine builds some things on first use (the Kubernetes container model, the secret
detector, the PSS tables, imports); a server pays for them once here, before forking
its workers (which then inherit the work) and after each policy reload.
"""

from __future__ import annotations

from typing import Any

from webhook.policy import EvaluationContext, PolicySet

# A plugin ConfigMap and a Pod that touch every target and every lazily built piece
# (the Kubernetes container model, the secret detector, the PSS tables).
_WARM_UP_OBJECTS: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "warm-up-executor-plugin",
            "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
        },
        "data": {
            "sidecar.container": "name: warm-up\nimage: example:1\nports: [{containerPort: 1}]\n"
            "resources: {requests: {cpu: 1m, memory: 1Mi}, limits: {cpu: 1m, memory: 1Mi}}\n"
            "securityContext: {runAsNonRoot: true}\nenv: [{name: A, value: b}]\n"
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "warm-up", "annotations": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "example:1", "args": ["--x=y"]}]},
    },
)


def warm_up(policy_set: PolicySet) -> None:
    """Evaluate a few sample objects, so that the first real review does not pay for
    imports and caches built on first use (about 150 ms). A server calls this before
    forking its workers, which then inherit the work."""
    for obj in _WARM_UP_OBJECTS:
        policy_set.evaluate(obj, EvaluationContext(namespace="default"))
