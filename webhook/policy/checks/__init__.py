"""Named built-in checks: what a JSON Schema cannot say.

A check is a function `(view, parameters, context) -> iterable of Finding`. It is
registered under a name (used as `check:` in policy files) with a JSON Schema for its
`parameters`, which the policy loader validates so a typo in a parameter is caught at
load time, not at evaluation time.

Check functions are pure: no I/O, no globals mutated, same input, same findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.policy.model import Action, EvaluationContext, Target


@dataclass(frozen=True, slots=True)
class Finding:
    """A check's result. `path` is relative to the view's value ("" means the value itself).

    `action`, when set, overrides the policy's action for this finding (the secret
    policy enforces on plugin ConfigMaps and only warns elsewhere).
    """

    path: str
    message: str
    action: Action | None = None


@dataclass(slots=True)
class TargetView:
    """One thing a policy is applied to, cut out of a resource.

    `value` is what schemas and checks see (a container, a pod, the whole resource...);
    `path` is where `value` sits inside the submitted resource, so that finding paths can
    be reported from the resource's root. `plugin` is the parsed ExecutorPlugin when the
    resource is (or contains) one, so no check has to parse `sidecar.container` again.
    """

    target: Target
    value: Any
    path: str
    resource: Mapping[str, Any]
    kind: str
    namespace: str | None
    name: str
    container_name: str | None = None
    plugin: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


CheckFunction = Callable[[TargetView, Mapping[str, Any], EvaluationContext], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    function: CheckFunction
    parameters_schema: Mapping[str, Any]
    targets: frozenset[Target]
    description: str


REGISTRY: dict[str, CheckSpec] = {}


def register(
    name: str,
    *,
    targets: Iterable[Target],
    parameters_schema: Mapping[str, Any] | None = None,
    description: str = "",
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a built-in check under `name` (used as `check: name` in policies)."""

    def decorate(function: CheckFunction) -> CheckFunction:
        if name in REGISTRY:
            raise ValueError(f"check {name!r} registered twice")
        schema = parameters_schema or {"type": "object", "additionalProperties": False}
        REGISTRY[name] = CheckSpec(
            name, function, schema, frozenset(targets), description or (function.__doc__ or "")
        )
        return function

    return decorate


def load_builtin_checks() -> None:
    """Import every module that registers checks (idempotent)."""
    from webhook.policy.checks import builtin  # noqa: F401
