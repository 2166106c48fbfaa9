"""Evaluate a policy set on one resource: every violation of every policy, with paths.

The engine is pure: `PolicySet.evaluate(obj, context)` reads nothing but its
arguments, so the webhook, the `check` CLI and `build` give the same verdicts.
Everything that can be prepared once (schemas compiled, matchers, message templates)
is prepared when the set is loaded.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema

from webhook.errors import PolicyLoadError
from webhook.paths import join_path

# Importing the package registers the built-in checks in `default_registry`; the list of
# them is that package's `__init__`. The engine itself never names a check.
from webhook.policy import checks as _builtin_checks  # noqa: F401
from webhook.policy.fastschema import compile_error_paths, compile_validity
from webhook.policy.loader import (
    DEFAULT_CATEGORY,
    bundled_policies_dir,
    default_severity,
    read_policy_documents,
    read_policy_file,
    validate_policy_document,
)
from webhook.policy.model import (
    Action,
    EvaluationContext,
    Finding,
    Patch,
    Target,
    TargetView,
    Verdict,
    Violation,
)
from webhook.policy.registry import CheckRegistry, CheckSpec, default_registry
from webhook.policy.targets import ResourceViews

_PLACEHOLDER = re.compile(r"\{(container|name|namespace|kind|plugin)\}")


def concat_paths(prefix: str, suffix: str) -> str:
    if not prefix:
        return suffix
    if not suffix:
        return prefix
    return prefix + suffix if suffix.startswith("[") else f"{prefix}.{suffix}"


def render_message(template: str, view: TargetView) -> str:
    """Fill `{container}`, `{name}`, `{namespace}`, `{kind}`, `{plugin}` (never a value
    from the object's content: messages must not echo what could be a secret)."""
    if "{" not in template:
        return template
    values = {
        "container": view.container_name or "",
        "name": view.name,
        "namespace": view.namespace or "",
        "kind": view.kind,
        "plugin": getattr(view.plugin, "name", "") if view.plugin is not None else "",
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


class _Globs:
    """include/exclude glob lists; an empty include list means everything."""

    __slots__ = ("everything", "exclude", "include")

    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        spec = spec or {}
        self.include = [re.compile(fnmatch.translate(p)) for p in spec.get("include", [])]
        self.exclude = [re.compile(fnmatch.translate(p)) for p in spec.get("exclude", [])]
        self.everything = not self.include and not self.exclude

    def allows(self, value: str | None) -> bool:
        # An unknown namespace (a manifest checked offline without one) is not excluded:
        # it will be applied to some namespace, and the policy should speak then.
        if value is None or self.everything:
            return True
        if self.include and not any(p.match(value) for p in self.include):
            return False
        return not any(p.match(value) for p in self.exclude)


@dataclass(frozen=True, slots=True)
class Match:
    targets: tuple[Target, ...]
    kinds: frozenset[str] | None
    namespaces: _Globs
    names: _Globs

    def applies_to(self, views: ResourceViews) -> bool:
        if self.kinds is not None and views.kind not in self.kinds:
            return False
        return self.namespaces.allows(views.namespace) and self.names.allows(views.name or None)


class SchemaRule:
    """A JSON Schema (Draft 2020-12) the target must satisfy; one violation per error."""

    __slots__ = ("error_paths", "is_valid", "message", "name", "validator", "warning")

    def __init__(
        self, schema: Any, message: str, name: str | None, warning: str | None = None
    ) -> None:
        self.validator = jsonschema.Draft202012Validator(schema)
        # Most objects comply: a compiled predicate answers that in ~1 µs, and the
        # full validator (exact errors and paths) runs only when it says "invalid".
        self.is_valid = compile_validity(schema)
        self.error_paths = compile_error_paths(schema) if self.is_valid is not None else None
        self.message = message
        self.name = name
        self.warning = warning

    def findings(self, view: TargetView, context: EvaluationContext) -> Iterator[Finding]:
        if self.is_valid is not None and self.is_valid(view.value):
            return
        message = render_message(self.message, view)
        warning = render_message(self.warning, view) if self.warning else ""
        if self.error_paths is not None:
            for parts in self.error_paths(view.value, ()):
                yield Finding(join_path("", *parts), message, warning=warning)
            return
        for error in self.validator.iter_errors(view.value):
            base = list(error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                for missing in error.validator_value:
                    if missing not in error.instance:
                        yield Finding(join_path("", *base, missing), message, warning=warning)
            else:
                yield Finding(join_path("", *base), message, warning=warning)


class CheckRule:
    """A registered check with its parameters, validated and prepared once at load."""

    __slots__ = ("message", "name", "prepared", "spec", "warning")

    def __init__(
        self,
        spec: CheckSpec[Any],
        prepared: Any,
        message: str | None,
        name: str | None,
        warning: str | None = None,
    ) -> None:
        self.spec = spec
        self.prepared = prepared
        self.message = message
        self.name = name
        self.warning = warning

    def findings(self, view: TargetView, context: EvaluationContext) -> Iterator[Finding]:
        for finding in self.spec.function(view, self.prepared, context):
            # A rule's own message replaces the check's; its own warning replaces the
            # check's short form, which would no longer match that message.
            if self.message is not None:
                message, warning = self.message, self.warning or ""
            else:
                message, warning = finding.message, self.warning or finding.warning
            yield Finding(
                finding.path,
                render_message(message, view),
                finding.action,
                render_message(warning, view) if warning else "",
            )


Rule = SchemaRule | CheckRule


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    description: str
    action: Action
    match: Match
    rules: tuple[Rule, ...]
    fixes: tuple[Patch, ...]
    source: str
    # what PolicyReports say of a violation (see the loader's SEVERITIES)
    severity: str = "medium"
    category: str = DEFAULT_CATEGORY

    @classmethod
    def from_document(
        cls, document: Mapping[str, Any], source: str, checks: CheckRegistry | None = None
    ) -> Policy:
        """The policy of one document, validated first (PolicyLoadError naming `source`,
        the policy and the field; an unknown check is named, with the closest known one).

        `checks` is where `check:` names are looked up (the built-in checks by default).
        """
        registry = checks if checks is not None else default_registry
        validate_policy_document(document, source, registry)
        return cls._from_valid_document(document, source, registry)

    @classmethod
    def _from_valid_document(
        cls, document: Mapping[str, Any], source: str, checks: CheckRegistry
    ) -> Policy:
        match = document["match"]
        rules: list[Rule] = []
        for index, rule in enumerate(document["rules"]):
            if "schema" in rule:
                rules.append(
                    SchemaRule(
                        rule["schema"], rule["message"], rule.get("name"), rule.get("warning")
                    )
                )
            else:
                rules.append(_check_rule(rule, checks, source, document["id"], index))
        kinds = match.get("kinds")
        action = Action(document["action"])
        return cls(
            id=document["id"],
            description=document["description"],
            action=action,
            match=Match(
                targets=tuple(Target(t) for t in match["targets"]),
                kinds=frozenset(kinds) if kinds else None,
                namespaces=_Globs(match.get("namespaces")),
                names=_Globs(match.get("names")),
            ),
            rules=tuple(rules),
            fixes=tuple(
                Patch(f["op"], f["path"], f.get("value")) for f in document.get("fixes", [])
            ),
            source=source,
            severity=document.get("severity") or default_severity(action),
            category=document.get("category") or DEFAULT_CATEGORY,
        )

    def applies(self, views: ResourceViews) -> bool:
        """The policy looks at this resource: its match selects it and its targets find
        something in it (a pass means something only then)."""
        if not self.match.applies_to(views):
            return False
        return any(views.get(target) for target in self.match.targets)

    def evaluate(self, views: ResourceViews) -> Iterator[Violation]:
        if not self.match.applies_to(views):
            return
        for target in self.match.targets:
            for view in views.get(target):
                for rule in self.rules:
                    for finding in rule.findings(view, views.context):
                        yield Violation(
                            self.id,
                            finding.action or self.action,
                            concat_paths(view.path, finding.path),
                            finding.message,
                            finding.warning,
                        )


def _check_rule(
    rule: Mapping[str, Any], checks: CheckRegistry, source: str, policy_id: str, index: int
) -> CheckRule:
    """Look the check up and prepare its parameters (validated by the loader already)."""
    spec = checks.get(rule["check"])
    if spec is None:  # validated against another registry than the one given here
        raise PolicyLoadError(
            source, f"unknown check {rule['check']!r}", policy_id, f"rules[{index}].check"
        )
    try:
        prepared = spec.prepare(rule.get("parameters", {}))
    except ValueError as exc:
        raise PolicyLoadError(
            source, f"check {spec.name!r}: {exc}", policy_id, f"rules[{index}].parameters"
        ) from None
    return CheckRule(spec, prepared, rule.get("message"), rule.get("name"), rule.get("warning"))


class PolicySet:
    """A loaded, validated set of policies; immutable, safe to share between threads."""

    def __init__(self, policies: Sequence[Policy], source: str = "") -> None:
        self.policies = tuple(policies)
        self.source = source

    @property
    def policy_ids(self) -> list[str]:
        return [p.id for p in self.policies]

    def get(self, policy_id: str) -> Policy | None:
        return next((p for p in self.policies if p.id == policy_id), None)

    def evaluate(self, obj: Mapping[str, Any], context: EvaluationContext | None = None) -> Verdict:
        context = context or EvaluationContext()
        if context.policies is None:
            context.policies = self  # a check may need the set it runs in (injection)
        views = ResourceViews(obj, context)
        seen: set[Violation] = set()
        violations: list[Violation] = []
        for policy in self.policies:
            for violation in policy.evaluate(views):
                if violation not in seen:
                    seen.add(violation)
                    violations.append(violation)
        return Verdict(tuple(violations))

    # What injection asks of a policy set (`webhook.inject.hardening.SidecarPolicies`):
    # plain data, so that the injection never imports the engine it is judged by.

    @cached_property
    def _sidecar_defaults(self) -> dict[str, tuple[tuple[str, Any], ...]]:
        out: dict[str, tuple[tuple[str, Any], ...]] = {}
        for policy in self.policies:
            if policy.action is Action.AUDIT or Target.PLUGIN_SIDECAR not in policy.match.targets:
                continue
            adds = tuple((fix.path, fix.value) for fix in policy.fixes if fix.op == "add")
            if adds:
                out[policy.id] = adds
        return out

    def sidecar_defaults(self) -> Mapping[str, tuple[tuple[str, Any], ...]]:
        """The `add` fixes of the Enforce and Warn policies targeting pluginSidecar, as
        (JSON pointer relative to the container, value), by policy id."""
        return self._sidecar_defaults

    def violated_by(
        self, obj: Mapping[str, Any], namespace: str | None
    ) -> tuple[tuple[str, bool], ...]:
        """(policy id, enforced) of every policy `obj` breaks, each once, in order."""
        verdict = self.evaluate(obj, EvaluationContext(namespace=namespace))
        enforced: dict[str, bool] = {}
        for violation in verdict.violations:
            enforced[violation.policy] = enforced.get(violation.policy, False) or (
                violation.action is Action.ENFORCE
            )
        return tuple(enforced.items())


def load_policies(
    directory: str | Path | None = None, *, checks: CheckRegistry | None = None
) -> PolicySet:
    """Load and validate every policy in `directory` (the bundled set when None), each
    check rule prepared once; `checks` as for `Policy.from_document`.

    Raises `PolicyLoadError` naming the file, the policy and the field at the first
    problem: a set is loaded whole or not at all.
    """
    root = Path(directory) if directory is not None else bundled_policies_dir()
    registry = checks if checks is not None else default_registry
    documents = read_policy_documents(root, registry)
    return PolicySet(
        [Policy._from_valid_document(document, source, registry) for source, document in documents],
        str(root),
    )


def load_policy_file(path: str | Path, *, checks: CheckRegistry | None = None) -> Policy:
    """Load one policy file (validated, named `<id>.yaml`); `checks` as for `from_document`."""
    registry = checks if checks is not None else default_registry
    document = read_policy_file(Path(path), registry)
    return Policy._from_valid_document(document, str(path), registry)
