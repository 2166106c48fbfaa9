"""The policy data model: what a loaded policy is and what evaluating it produces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What a violation does: Enforce denies, Warn warns the client, Audit only records."""

    ENFORCE = "Enforce"
    WARN = "Warn"
    AUDIT = "Audit"


class Target(StrEnum):
    """The part of a resource a policy looks at."""

    PLUGIN_SIDECAR = "pluginSidecar"  # the container of an ExecutorPlugin (ConfigMap, plugin.yaml, spec.executorPlugins)
    PLUGIN = "plugin"  # the ExecutorPlugin as a whole (name, labels, automount, raw form)
    CONTAINER = "container"  # every container of Pods, workloads and Argo workflows
    POD = "pod"  # Pods and the pod templates of workloads: {"metadata", "spec"}
    RESOURCE = "resource"  # the whole object as submitted


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


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's result on one view. `path` is relative to the view's value ("" means the
    value itself).

    `action`, when set, overrides the policy's action for this finding (the secret
    policy enforces on plugin ConfigMaps and only warns elsewhere).
    """

    path: str
    message: str
    action: Action | None = None
    # The short form `kubectl apply` shows as a warning: what to do, in a few words
    # (the path is shown beside it). Empty: the message is shown.
    warning: str = ""


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a resource breaks one policy, at one JSON path."""

    policy: str
    action: Action
    path: str
    message: str
    # What a kubectl warning shows instead of `message` (see `Finding.warning`).
    warning: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "action": self.action.value,
            "path": self.path,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every violation of every matching policy for one resource."""

    violations: tuple[Violation, ...] = ()

    @property
    def allowed(self) -> bool:
        return not any(v.action is Action.ENFORCE for v in self.violations)

    def by_action(self, action: Action) -> list[Violation]:
        return [v for v in self.violations if v.action is action]


@dataclass(frozen=True, slots=True)
class Patch:
    """A JSON Patch operation a policy offers as its fix, relative to the target."""

    op: str
    path: str
    value: Any = None


@dataclass(slots=True)
class EvaluationContext:
    """What the engine may know beyond the object itself.

    `plugins` are the other executor plugins known to be installed (the cluster's, the
    `--plugins DIR` registry, or the other resources of one `check` run); cross-plugin
    checks such as port collisions read them. `namespace` is the request namespace when
    the object itself carries none (AdmissionReview `request.namespace`). `policies` is
    the PolicySet being evaluated (set by it): the injection check reproduces the
    mutation, whose hardening depends on the policies.
    """

    plugins: list[Any] = field(default_factory=list)
    namespace: str | None = None
    policies: Any = None
    _by_port: dict[int, list[Any]] | None = field(default=None, repr=False, compare=False)

    def plugins_on_port(self, port: int) -> list[Any]:
        """The known plugins whose address port is `port` (indexed once: a `check` of
        1,000 plugins would otherwise compare every pair)."""
        if self._by_port is None:
            index: dict[int, list[Any]] = {}
            for plugin in self.plugins:
                plugin_port = getattr(plugin, "port", None)
                if plugin_port is not None:
                    index.setdefault(plugin_port, []).append(plugin)
            self._by_port = index
        return self._by_port.get(port, [])
