"""Inline-secret detection for Kubernetes and Argo manifests.

Public API::

    from webhook.secrets import scan, ScanConfig, SecretFinding, config_from_parameters

    findings = scan(obj)                       # built-in rules and allow list
    findings = scan(obj, config=config_from_parameters(policy_rule_parameters))
    findings = scan(configmap, container_override=plugin.container,
                    container_path=plugin.container_path)   # reuse a parsed plugin

`scan` never raises on odd input (non-dict nodes are skipped) and never scans
`kind: Secret`. Each `SecretFinding` has `path` (absolute JSON path from the object's
root, e.g. `data[sidecar.container].env[0].value`), `rule` (rule id), `description`,
`hint` (at most the first 4 characters, then `…`) and `line` (1-based, for multi-line
strings). A finding never holds the secret value: not in its fields, its `repr` or its
`message`.

A scan is bounded (`limits.py`): at most `ScanConfig.limits.findings` findings, and at
most `limits.judged_values` values judged by the entropy and credential-name tests. When
a limit is reached, one more finding (rule `scan-limit`, `is_limit`, listed first) says
where, so that nothing is skipped silently.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from webhook.secrets.detector import Detector, Hit, redact
from webhook.secrets.limits import (
    DEFAULT_FINDINGS,
    DEFAULT_JUDGED_VALUES,
    SCAN_LIMIT_RULE,
    UNLIMITED,
    Budget,
    ScanLimits,
)
from webhook.secrets.rules import Rule, RuleError, RuleSet, builtin_ruleset, parse_rule
from webhook.secrets.walker import Walker

__all__ = [
    "DEFAULT_SKIP_ANNOTATIONS",
    "SCAN_LIMIT_RULE",
    "UNLIMITED",
    "Detector",
    "RuleError",
    "ScanConfig",
    "ScanLimits",
    "SecretFinding",
    "config_from_parameters",
    "default_config",
    "redact",
    "scan",
    "scan_value",
]

# kubectl's copy of the applied object: the object itself is scanned, so scanning its
# JSON copy again would only report every finding twice.
DEFAULT_SKIP_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})

ADVICE = (
    "move the value into a Secret and reference it with env[].valueFrom.secretKeyRef "
    "(or mount the Secret as a file)"
)
PLUGIN_ADVICE = (
    "move the value into a Secret and reference it from the sidecar container with "
    "env[].valueFrom.secretKeyRef (or mount the Secret as a file)"
)


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """One inline secret. Holds no secret value, only a redacted hint."""

    path: str
    rule: str
    description: str
    hint: str
    line: int | None = None
    in_plugin: bool = False
    advice: str = ""  # a scan-limit finding's fix, in a few words

    @property
    def is_limit(self) -> bool:
        """Not a secret: the scan stopped (or stopped judging) here; see `limits.py`."""
        return self.rule == SCAN_LIMIT_RULE

    @property
    def message(self) -> str:
        if self.is_limit:
            return f"secret scan limit at {self.path}: {self.description}"
        where = f" (line {self.line})" if self.line else ""
        advice = PLUGIN_ADVICE if self.in_plugin else ADVICE
        return (
            f"inline secret at {self.path}{where}: {self.description} "
            f"[rule {self.rule}, value starts {self.hint!r}]; {advice}"
        )


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """How to scan. Build it once (e.g. per policy) and reuse it: it holds compiled rules."""

    rules: RuleSet = field(default_factory=builtin_ruleset)
    allow_values: tuple[re.Pattern[str], ...] = ()
    exempt_names: tuple[str, ...] = ()  # glob patterns on key names (env, data, annotation)
    skip_annotations: frozenset[str] = DEFAULT_SKIP_ANNOTATIONS
    entropy: bool = True
    entropy_min_length: int = 16
    limits: ScanLimits = field(default_factory=ScanLimits)

    def detector(self) -> Detector:
        return _detector_for(self)

    def is_exempt_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exempt_names)


@lru_cache(maxsize=64)
def _detector_for(config: ScanConfig) -> Detector:
    return Detector(
        config.rules,
        allow_values=config.allow_values,
        entropy=config.entropy,
        entropy_min_length=config.entropy_min_length,
    )


@lru_cache(maxsize=1)
def default_config() -> ScanConfig:
    return ScanConfig()


def scan(
    obj: Mapping[str, Any],
    *,
    container_override: Mapping[str, Any] | None = None,
    container_path: str | None = None,
    config: ScanConfig | None = None,
) -> list[SecretFinding]:
    """Every inline secret in one Kubernetes/Argo object.

    `container_override` is an already-parsed ExecutorPlugin container (from
    `data["sidecar.container"]` or `spec.sidecar.container`), so the YAML string is not
    parsed twice; `container_path` is where it sits (defaults to
    `data[sidecar.container]` for ConfigMaps, `spec.sidecar.container` for plugin.yaml).
    """
    cfg = config or default_config()
    findings: list[SecretFinding] = []
    plugin_prefixes: tuple[str, ...] = ("data[sidecar.container]", "spec.sidecar.container")
    if container_path:
        plugin_prefixes = (*plugin_prefixes, container_path)
    most = cfg.limits.findings

    def emit(path: str, name: str, hit: Hit, value: str) -> None:
        if most is not None and len(findings) >= most:
            raise _FindingsLimitReached(path)
        line = value.count("\n", 0, hit.start) + 1 if "\n" in value else None
        description = hit.description
        if hit.judged is not None:
            description += (
                f" (a value of {hit.end - hit.start} characters: judged on its first {hit.judged})"
            )
        findings.append(
            SecretFinding(
                path=path,
                rule=hit.rule,
                description=description,
                hint=hit.hint,
                line=line,
                in_plugin=path.startswith(plugin_prefixes),
            )
        )

    budget = Budget(cfg.limits.judged_values)
    walker = Walker(
        cfg.detector(),
        emit,
        skip_annotations=cfg.skip_annotations,
        exempt_name=cfg.is_exempt_name if cfg.exempt_names else _never,
        budget=budget,
    )
    limits: list[SecretFinding] = []
    if isinstance(obj, Mapping):
        try:
            walker.resource(obj, container_override, container_path)
        except _FindingsLimitReached as reached:
            limits.append(
                _limit_finding(
                    reached.path,
                    f"more than {most} findings; the rest of the object was not scanned "
                    "(parameter limits.findings)",
                    "not scanned from here: raise limits.findings",
                    plugin_prefixes,
                )
            )
    if walker.first_not_judged is not None:
        limits.append(
            _limit_finding(
                walker.first_not_judged,
                f"more than {budget.left} values needed judging; {budget.skipped} from here "
                "on were checked only by the value-format, key and URL rules "
                "(parameter limits.judgedValues)",
                "not judged from here: raise limits.judgedValues",
                plugin_prefixes,
            )
        )
    return limits + findings


class _FindingsLimitReached(Exception):
    """Raised by `emit` at the first finding over the limit: stops the walk there."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _limit_finding(
    path: str, description: str, advice: str, plugin_prefixes: tuple[str, ...]
) -> SecretFinding:
    return SecretFinding(
        path=path,
        rule=SCAN_LIMIT_RULE,
        description=description,
        hint="",
        in_plugin=path.startswith(plugin_prefixes),
        advice=advice,
    )


def scan_value(
    value: str, name: str | None = None, *, config: ScanConfig | None = None
) -> list[Hit]:
    """Scan one string, as if it sat under the key `name`. Hits carry spans and hints."""
    return (config or default_config()).detector().scan_string(value, name)


def _never(_: str) -> bool:
    return False


def config_from_parameters(parameters: Mapping[str, Any]) -> ScanConfig:
    """Build a ScanConfig from the `inlineSecrets` check parameters (see the policy).

    Recognised keys: `rules` (list of rule mappings, same fields as rules.yaml),
    `allow.values` (regexes: a match containing one is not reported),
    `exempt.keyNames` (globs on env/data/annotation/flag names), `skipAnnotations`,
    `entropy` ({enabled, minLength}), `limits` ({findings, judgedValues}). Raises
    RuleError on a bad rule or regex.
    """
    extra: list[Rule] = [
        parse_rule(r, f"parameters.rules[{i}]") for i, r in enumerate(parameters.get("rules") or [])
    ]
    allow = parameters.get("allow") or {}
    exempt = parameters.get("exempt") or {}
    entropy = parameters.get("entropy") or {}
    limits = parameters.get("limits") or {}
    try:
        allow_values = tuple(re.compile(p) for p in _str_list(allow.get("values")))
    except re.error as exc:
        raise RuleError(f"parameters.allow.values: invalid regex: {exc}") from None
    skip = parameters.get("skipAnnotations")
    return ScanConfig(
        rules=builtin_ruleset().extended(extra),
        allow_values=allow_values,
        exempt_names=tuple(_str_list(exempt.get("keyNames"))),
        skip_annotations=frozenset(_str_list(skip))
        if skip is not None
        else DEFAULT_SKIP_ANNOTATIONS,
        entropy=bool(entropy.get("enabled", True)),
        entropy_min_length=int(entropy.get("minLength", 16)),
        limits=ScanLimits(
            findings=int(limits.get("findings", DEFAULT_FINDINGS)),
            judged_values=int(limits.get("judgedValues", DEFAULT_JUDGED_VALUES)),
        ),
    )


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise RuleError(f"expected a list of strings, got {type(value).__name__}")
    out = [v for v in value if isinstance(v, str)]
    if len(out) != len(list(value)):
        raise RuleError("expected a list of strings")
    return out
