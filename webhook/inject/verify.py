"""The validating half of injection: an opted-in Argo agent pod that reaches validation
without the plugins the mutating webhook gives it (spec section 4; the admission
webhook good practice of pairing a fail-open mutation with a validation).

The mutating webhook fails open (`failurePolicy: Ignore`): when it is down, slow or not
installed, the API server creates the pod unchanged, and Argo's agent then answers
every plugin task with "no plugin executed the template". `injection_problems` says,
for one pod, why it must not run as it is:

- **not mutated**: the pod carries no `argo-plugin-guard/inject-status` annotation and
  injection, run now on the same registry and policies, would still add sidecars
  (a pod for which the mutation found nothing to add has nothing missing either);
- **changed after the mutation**: the pod says `inject-status: injected`, but a sidecar
  listed in `argo-plugin-guard/injected-plugins` is gone, no longer in the `main`
  container's `ARGO_PLUGIN_NAMES`, or runs another image than the registry's plugin.

Pure: the pod, the registry plugins and the policy set in, problems out. Plugins added
to the registry after a pod was injected are not demanded of it (the mutation could
not know them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.executor_plugin import ExecutorPlugin
from webhook.inject.hardening import SidecarPolicies
from webhook.inject.pod import (
    AGENT_COMPONENT,
    COMPONENT_LABEL,
    INJECT_LABEL,
    MAIN_CONTAINER,
    NAMES_ENV,
    PLUGINS_ANNOTATION,
    STATUS_ANNOTATION,
    STATUS_INJECTED,
    Result,
    inject,
)

NO_PLUGIN_EXECUTED = "no plugin executed the template"


@dataclass(frozen=True, slots=True)
class InjectionProblem:
    path: str  # relative to the pod ({"metadata", "spec"})
    message: str
    warning: str  # the fix in a few words (an admission warning's short form)


def is_opted_in_agent_pod(pod: Mapping[str, Any]) -> bool:
    labels = _dict(_dict(pod.get("metadata")).get("labels"))
    return labels.get(COMPONENT_LABEL) == AGENT_COMPONENT and labels.get(INJECT_LABEL) == "true"


def injection_problems(
    pod: Mapping[str, Any],
    plugins: Sequence[Any],
    *,
    policies: SidecarPolicies | None = None,
    namespace: str = "",
) -> list[InjectionProblem]:
    """Why this opted-in agent pod lacks its injection (empty: nothing is missing)."""
    if not is_opted_in_agent_pod(pod):
        return []
    annotations = _dict(_dict(pod.get("metadata")).get("annotations"))
    if annotations.get(STATUS_ANNOTATION) == STATUS_INJECTED:
        return _changed_after_injection(pod, annotations, plugins, namespace)
    outcome = inject(pod, plugins, policies=policies, namespace=namespace)
    if outcome.result is not Result.INJECTED:
        return []
    names = ", ".join(outcome.injected)
    return [
        InjectionProblem(
            "metadata.annotations",
            f'this Argo agent pod opted in to plugin injection ({INJECT_LABEL}: "true") '
            f"but reached validation without it: no {STATUS_ANNOTATION} annotation, and the "
            f"plugin sidecars {names} are missing. The mutating webhook did not handle the "
            "pod (it was down, timed out or is not installed, and fails open), so its plugin "
            f'tasks would fail with "{NO_PLUGIN_EXECUTED}". Make sure the argo-plugin-guard '
            "webhook is running and its MutatingWebhookConfiguration installed, then retry "
            "the workflow (argo retry); or remove the label to run without injected plugins",
            "start the plugin-guard mutating webhook, then argo retry",
        )
    ]


def _changed_after_injection(
    pod: Mapping[str, Any],
    annotations: Mapping[str, Any],
    plugins: Sequence[Any],
    namespace: str,
) -> list[InjectionProblem]:
    listed = [n for n in str(annotations.get(PLUGINS_ANNOTATION) or "").split(",") if n]
    spec = _dict(pod.get("spec"))
    containers = [c for c in _list(spec.get("containers")) if isinstance(c, dict)]
    by_name = {c.get("name"): (i, c) for i, c in enumerate(containers)}
    main = by_name.get(MAIN_CONTAINER)
    names_in_main = (_env_list(main[1], NAMES_ENV) or []) if main else None
    namespace = str(_dict(pod.get("metadata")).get("namespace") or namespace or "")
    registry = {
        p.container_name: p
        for p in plugins
        if isinstance(p, ExecutorPlugin) and (not p.namespace or p.namespace == namespace)
    }
    after = "was injected (" + STATUS_ANNOTATION + ": injected) but changed afterwards"
    hint = (
        "; the pod spec must keep what the mutating webhook added. Let Argo create the agent "
        "pod again (argo retry) instead of editing it"
    )
    problems: list[InjectionProblem] = []
    for name in listed:
        found = by_name.get(name)
        if found is None:
            problems.append(
                InjectionProblem(
                    "spec.containers",
                    f"this Argo agent pod {after}: the injected plugin sidecar {name} is "
                    f'missing, so its tasks would fail with "{NO_PLUGIN_EXECUTED}"{hint}',
                    "keep the injected sidecars; argo retry re-creates the pod",
                )
            )
            continue
        index, container = found
        if names_in_main is not None and name not in names_in_main:
            problems.append(
                InjectionProblem(
                    f"spec.containers[{main[0] if main else 0}].env",
                    f"this Argo agent pod {after}: the injected plugin {name} is not in "
                    f"{NAMES_ENV} of the main container, so the agent never calls it{hint}",
                    f"keep the injected plugins in {NAMES_ENV}; argo retry",
                )
            )
        plugin = registry.get(name)
        expected = _dict(plugin.container).get("image") if plugin is not None else None
        if expected is not None and container.get("image") != expected:
            problems.append(
                InjectionProblem(
                    f"spec.containers[{index}].image",
                    f"this Argo agent pod {after}: the injected plugin sidecar {name} runs "
                    f"image {container.get('image')!r}, not the registry's {expected!r}{hint}",
                    "keep the registry's image on injected sidecars; argo retry",
                )
            )
    return problems


def _env_list(container: Mapping[str, Any], name: str) -> list[str] | None:
    for var in _list(container.get("env")):
        if isinstance(var, dict) and var.get("name") == name and isinstance(var.get("value"), str):
            try:
                values = json.loads(var["value"])
            except ValueError:
                return []
            return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
