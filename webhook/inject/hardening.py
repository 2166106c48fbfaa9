"""Hardened defaults for a plugin sidecar, driven by the policy files.

A policy that targets `pluginSidecar` with action Enforce or Warn may carry `fixes:`
(JSON Patch operations relative to the container). When that policy reports the
sidecar, its `add` fixes are applied as *defaults*: they fill what is missing and never
overwrite a value the plugin sets itself (`runAsNonRoot: false` stays false, and the
plugin is then refused below). `replace` and `remove` fixes change explicit choices, so
injection does not use them.

After the defaults, the plugin is evaluated again by the whole policy set, in the form
it was installed in (ConfigMap or plugin.yaml): a plugin that still has an Enforce
violation (including an inline secret: `no-inline-secrets` enforces inside plugins) is
never injected. So an injected sidecar is one the validating webhook would accept.

The policy set is asked through `SidecarPolicies`, two questions in plain data, and
never imported: the policy engine's `injection` check runs this module, so an import
the other way would make the two packages a circle.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from webhook.executor_plugin import (
    AUTOMOUNT_KEY,
    CONFIGMAP_TYPE_LABEL,
    CONTAINER_KEY,
    EXECUTOR_PLUGIN_KIND,
    FORM_CONFIGMAP,
    ExecutorPlugin,
    container_yaml,
)

# A sidecar default: where, as a JSON pointer relative to the container, and what.
Default = tuple[str, Any]


class SidecarPolicies(Protocol):
    """What hardening asks of a policy set (`webhook.policy.PolicySet` answers)."""

    def sidecar_defaults(self) -> Mapping[str, tuple[Default, ...]]:
        """The `add` fixes of the Enforce and Warn pluginSidecar policies, by policy id."""
        ...

    def violated_by(
        self, obj: Mapping[str, Any], namespace: str | None
    ) -> tuple[tuple[str, bool], ...]:
        """(policy id, enforced) of every policy `obj` breaks, in order."""
        ...


# Hardened containers, per (plugin object, namespace); a registry reload makes new objects.
_RESULT_CACHE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Hardened:
    """A plugin's container with the defaults filled in, and what still denies it."""

    container: dict[str, Any]
    denied_by: tuple[str, ...]  # Enforce policy ids left after the defaults
    defaults: tuple[str, ...]  # ids of the policies whose fixes were applied


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _fill_missing(target: dict[str, Any], value: Mapping[str, Any]) -> bool:
    changed = False
    for key, item in value.items():
        current = target.get(key)
        if current is None:
            target[key] = copy.deepcopy(item)
            changed = True
        elif isinstance(current, dict) and isinstance(item, Mapping):
            changed |= _fill_missing(current, item)
    return changed


def apply_default(container: dict[str, Any], path: str, value: Any) -> bool:
    """Apply one `add` fix (`path` a JSON pointer, `value`) to `container` as a default:
    fill what is missing, never overwrite; True when something was added."""
    if not path.startswith("/"):
        return False
    parts = [_unescape(p) for p in path[1:].split("/")]
    if not parts or parts == [""]:
        return False
    node: Any = container
    for part in parts[:-1]:
        if isinstance(node, dict):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            node = child
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    last = parts[-1]
    if isinstance(node, dict):
        current = node.get(last)
        if current is None:
            node[last] = copy.deepcopy(value)
            return True
        if isinstance(current, dict) and isinstance(value, Mapping):
            return _fill_missing(current, value)
        return False
    if isinstance(node, list) and last == "-" and value not in node:
        node.append(copy.deepcopy(value))
        return True
    return False


def plugin_object(plugin: ExecutorPlugin, container: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin as it was installed (ConfigMap or plugin.yaml), with `container`."""
    metadata: dict[str, Any] = {"name": plugin.resource_name or plugin.name}
    if plugin.namespace:
        metadata["namespace"] = plugin.namespace
    if plugin.annotations:
        metadata["annotations"] = dict(plugin.annotations)
    if plugin.form == FORM_CONFIGMAP:
        metadata["labels"] = {**plugin.labels, CONFIGMAP_TYPE_LABEL: plugin.kind}
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {
                AUTOMOUNT_KEY: "true" if plugin.automount_service_account_token else "false",
                CONTAINER_KEY: container_yaml(container),
            },
        }
    if plugin.labels:
        metadata["labels"] = dict(plugin.labels)
    sidecar: dict[str, Any] = {"container": dict(container)}
    if plugin.automount_service_account_token:
        sidecar["automountServiceAccountToken"] = True
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": plugin.kind or EXECUTOR_PLUGIN_KIND,
        "metadata": metadata,
        "spec": {"sidecar": sidecar},
    }


class _Caches:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: dict[tuple[int, int, str], tuple[Any, Any, Hardened]] = {}


_CACHES = _Caches()


def harden(
    plugin: ExecutorPlugin, policy_set: SidecarPolicies | None, namespace: str | None
) -> Hardened:
    """The plugin's container with the policies' defaults, and the Enforce policies left.

    Pure, and cached per (plugin object, policy set, namespace): registry entries and
    loaded policy sets are never changed in place (a reload builds new objects).
    """
    if plugin.container is None:
        raise ValueError("plugin has no container")
    if policy_set is None:
        return Hardened(copy.deepcopy(plugin.container), (), ())
    key = (id(plugin), id(policy_set), namespace or "")
    cached = _CACHES.results.get(key)
    if cached is not None and cached[0] is plugin and cached[1] is policy_set:
        return cached[2]
    result = _harden(plugin, policy_set, namespace)
    with _CACHES.lock:
        if len(_CACHES.results) >= _RESULT_CACHE_LIMIT:
            _CACHES.results.clear()
        _CACHES.results[key] = (plugin, policy_set, result)
    return result


def _harden(plugin: ExecutorPlugin, policy_set: SidecarPolicies, namespace: str | None) -> Hardened:
    assert plugin.container is not None
    container = copy.deepcopy(plugin.container)
    namespace = plugin.namespace or namespace
    violated = policy_set.violated_by(plugin_object(plugin, container), namespace)
    defaults = policy_set.sidecar_defaults()
    applied: list[str] = []
    for policy_id, _ in violated:
        changed = False
        for path, value in defaults.get(policy_id, ()):
            changed |= apply_default(container, path, value)
        if changed:
            applied.append(policy_id)
    if applied:
        violated = policy_set.violated_by(plugin_object(plugin, container), namespace)
    denied = tuple(policy_id for policy_id, enforced in violated if enforced)
    return Hardened(container, denied, tuple(applied))
