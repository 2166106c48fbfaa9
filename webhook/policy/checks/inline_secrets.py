"""Check `inlineSecrets` (policy `no-inline-secrets`): the adapter of the `webhook.secrets`
library to the policy engine.

It scans the whole resource (Target.RESOURCE) and reuses the ExecutorPlugin container the
engine already parsed. The scan configuration (compiled rules, allow list) is built once
per policy rule when the policy loads (`prepare`). Findings inside an executor plugin (plugin ConfigMap, plugin.yaml,
a Workflow's `executorPlugins`) carry `pluginAction` (default Enforce); the others take
the policy's own action (Warn in the shipped policy). A scan that reached one of its
limits (`limits.findings`, `limits.judgedValues`) says so in one more finding, listed
first, with the same action as a finding at its path.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.policy.model import Action, EvaluationContext, Finding, Target, TargetView
from webhook.policy.registry import Parameters, register
from webhook.secrets import RuleError, ScanConfig, config_from_parameters, default_config, scan

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
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "findings": {"type": "integer", "minimum": 1},
                "judgedValues": {"type": "integer", "minimum": 0},
            },
        },
    },
}

_PLUGIN_KINDS = frozenset({"ConfigMap", "ExecutorPlugin"})


@dataclass(frozen=True, slots=True)
class SecretScanRule:
    """The prepared parameters: how to scan, what is exempt, the action inside plugins."""

    config: ScanConfig
    exempt_kinds: frozenset[str]
    exempt_namespaces: tuple[str, ...]
    plugin_action: Action

    def exempts(self, kind: str, namespace: str | None) -> bool:
        if kind in self.exempt_kinds:
            return True
        return namespace is not None and any(
            fnmatch.fnmatchcase(namespace, pattern) for pattern in self.exempt_namespaces
        )


def prepare_secret_scan(parameters: Parameters) -> SecretScanRule:
    """Compile the rule's scan configuration (RuleError, a ValueError, on a bad regex)."""
    try:
        config = config_from_parameters(parameters) if parameters else default_config()
    except RuleError as exc:
        raise ValueError(str(exc)) from None
    exempt = parameters.get("exempt") or {}
    return SecretScanRule(
        config=config,
        exempt_kinds=frozenset(exempt.get("kinds") or ()),
        exempt_namespaces=tuple(exempt.get("namespaces") or ()),
        plugin_action=Action(parameters.get("pluginAction", Action.ENFORCE.value)),
    )


@register(
    "inlineSecrets",
    targets=[Target.RESOURCE],
    prepare=prepare_secret_scan,
    parameters_schema=PARAMETERS_SCHEMA,
    description="Secrets written inline in a manifest (env values, args, scripts, "
    "annotations, ConfigMap data, the executor plugin's sidecar container).",
)
def inline_secrets(
    view: TargetView, rule: SecretScanRule, context: EvaluationContext
) -> Iterator[Finding]:
    """Report every inline secret of the resource, with a redacted hint and the fix."""
    if rule.exempts(view.kind, view.namespace or context.namespace):
        return
    resource = view.value
    if not isinstance(resource, Mapping):
        return
    plugin = view.plugin
    container = getattr(plugin, "container", None) if plugin is not None else None
    container_path = getattr(plugin, "container_path", None) if plugin is not None else None
    whole_is_plugin = plugin is not None and view.kind in _PLUGIN_KINDS
    for finding in scan(
        resource,
        container_override=container if isinstance(container, Mapping) else None,
        container_path=container_path if isinstance(container_path, str) else None,
        config=rule.config,
    ):
        in_plugin = whole_is_plugin or finding.in_plugin or ".executorPlugins[" in finding.path
        short = (
            f"secret scan limit: {finding.advice}"
            if finding.is_limit
            else f"{finding.rule} {finding.hint!r} inline: use a Secret via valueFrom.secretKeyRef"
        )
        yield Finding(
            finding.path, finding.message, rule.plugin_action if in_plugin else None, short
        )
