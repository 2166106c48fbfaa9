"""The `inlineSecrets` built-in check (policy `no-inline-secrets`).

Loaded by `webhook.policy.checks.builtin` (`from webhook.secrets import check`). It
scans the whole resource (Target.RESOURCE) and reuses the ExecutorPlugin container the
engine already parsed. Findings inside an executor plugin (plugin ConfigMap, plugin.yaml,
a Workflow's `executorPlugins`) carry `pluginAction` (default Enforce); the others take
the policy's own action (Warn in the shipped policy).
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from webhook.policy.checks import Finding, TargetView, register
from webhook.policy.model import Action, EvaluationContext, Target
from webhook.secrets import ScanConfig, config_from_parameters, default_config, scan

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}

PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "pluginAction": {"enum": [a.value for a in Action]},
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "regex"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,62}$"},
                    "description": {"type": "string"},
                    "regex": {"type": "string", "minLength": 1},
                    "prefixes": _STRINGS,
                    "keywords": _STRINGS,
                    "boundary": {"type": "boolean"},
                    "ignoreCase": {"type": "boolean"},
                    "minEntropy": {"type": "number", "minimum": 0},
                    "allow": _STRINGS,
                },
            },
        },
        "allow": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"values": _STRINGS},
        },
        "exempt": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"namespaces": _STRINGS, "kinds": _STRINGS, "keyNames": _STRINGS},
        },
        "skipAnnotations": _STRINGS,
        "entropy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "minLength": {"type": "integer", "minimum": 8},
            },
        },
    },
}

_PLUGIN_KINDS = frozenset({"ConfigMap", "ExecutorPlugin"})

# Compiled configs per parameters object (the engine keeps one mapping per loaded rule;
# we keep a reference so its id cannot be reused while cached).
_CACHE: dict[int, tuple[Mapping[str, Any], ScanConfig]] = {}
_LOCK = threading.Lock()


def _config(parameters: Mapping[str, Any]) -> ScanConfig:
    if not parameters:
        return default_config()
    cached = _CACHE.get(id(parameters))
    if cached is not None and cached[0] is parameters:
        return cached[1]
    config = config_from_parameters(parameters)
    with _LOCK:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[id(parameters)] = (parameters, config)
    return config


@register(
    "inlineSecrets",
    targets=[Target.RESOURCE],
    parameters_schema=PARAMETERS_SCHEMA,
    description="Secrets written inline in a manifest (env values, args, scripts, "
    "annotations, ConfigMap data, the executor plugin's sidecar container).",
)
def inline_secrets(
    view: TargetView, parameters: Mapping[str, Any], context: EvaluationContext
) -> Iterator[Finding]:
    """Report every inline secret of the resource, with a redacted hint and the fix."""
    exempt = parameters.get("exempt") or {}
    if view.kind in (exempt.get("kinds") or ()):
        return
    namespace = view.namespace or context.namespace
    if namespace is not None and any(
        fnmatch.fnmatchcase(namespace, pattern) for pattern in exempt.get("namespaces") or ()
    ):
        return
    config = _config(parameters)
    plugin = view.plugin
    container = getattr(plugin, "container", None) if plugin is not None else None
    container_path = getattr(plugin, "container_path", None) if plugin is not None else None
    whole_is_plugin = plugin is not None and view.kind in _PLUGIN_KINDS
    plugin_action = Action(parameters.get("pluginAction", Action.ENFORCE.value))
    value = view.value
    if not isinstance(value, Mapping):
        return
    for finding in scan(
        value,
        container_override=container if isinstance(container, Mapping) else None,
        container_path=container_path if isinstance(container_path, str) else None,
        config=config,
    ):
        in_plugin = whole_is_plugin or finding.in_plugin or ".executorPlugins[" in finding.path
        yield Finding(finding.path, finding.message, plugin_action if in_plugin else None)
