"""Rewrite one file's plugins so the policies with a mechanical fix pass.

Each plugin (a ConfigMap's `data["sidecar.container"]` string, or `plugin.yaml`'s
`spec.sidecar.container`) is evaluated by the same engine as the webhook; the fixers of
the policies that report its sidecar write into a round-trip copy of the container; the
file is then evaluated again, and whatever is still reported is what fix could not do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.error import YAMLError

from webhook.check import plugins_in
from webhook.errors import GuardError, ManifestError
from webhook.executor_plugin import CONTAINER_KEY, FORM_CONFIGMAP, FORM_MANIFEST, read_plugin
from webhook.fix.fixers import (
    EXPLICIT_CHOICES,
    FIXERS,
    NO_SAFE_FIX,
    FixSettings,
    apply_add_patches,
)
from webhook.fix.roundtrip import carry_over, dump, dump_all, literal, load_all, round_trip_yaml
from webhook.manifests import Document, parse_documents
from webhook.policy import Action, EvaluationContext, PolicySet, Violation


class FixError(GuardError):
    """A file fix cannot read or rewrite (its line when known)."""


@dataclass(frozen=True, slots=True)
class Left:
    """A violation still there after the fix, and why fix did not touch it."""

    resource: str
    violation: Violation
    why: str


@dataclass(slots=True)
class FileFix:
    path: str
    original: str
    fixed: str
    changes: list[tuple[str, list[str]]] = field(default_factory=list)  # (resource, what)
    left: list[Left] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.fixed != self.original


def _plain(document: Any) -> Any:
    # ruamel's scalars subclass the builtins; timestamps and the like become strings
    return json.loads(json.dumps(document, default=str))


def _label(obj: Any) -> str:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{obj.get('kind', '?')}/{name or '?'}" if isinstance(obj, dict) else "?"


def _sidecar_policies(violations: Sequence[Violation], container_path: str) -> list[str]:
    ids: list[str] = []
    for violation in violations:
        inside = violation.path == container_path or violation.path.startswith(
            (container_path + ".", container_path + "[")
        )
        if inside and violation.action is not Action.AUDIT and violation.policy not in ids:
            ids.append(violation.policy)
    return ids


def _fix_container(
    container: Any, policy_ids: Sequence[str], policy_set: PolicySet, settings: FixSettings
) -> list[str]:
    changed: list[str] = []
    for policy_id in policy_ids:
        function = FIXERS.get(policy_id)
        if function is not None:
            changed.extend(function(container, settings))
            continue
        policy = policy_set.get(policy_id)
        if policy is not None and policy.fixes:
            changed.extend(apply_add_patches(container, policy.fixes))
    return changed


def _why(violation: Violation) -> str:
    if violation.policy in NO_SAFE_FIX:
        return NO_SAFE_FIX[violation.policy]
    for field_name, why in EXPLICIT_CHOICES.items():
        if violation.path.endswith(field_name):
            return why
    if violation.policy in FIXERS:
        return "the plugin sets this itself: change it by hand"
    return "no mechanical fix for this policy"


def fix_text(
    path: str, text: str, policy_set: PolicySet, settings: FixSettings, known_plugins: list[Any]
) -> FileFix:
    """The fixed text of one file (multi-document), with what changed and what is left."""
    yaml = round_trip_yaml(text)
    try:
        documents = load_all(yaml, text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FixError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    explicit_start = text.lstrip().startswith("---")
    before = dump_all(yaml, documents, explicit_start)
    plain = [_plain(d) for d in documents]
    context = EvaluationContext(
        plugins=[
            *known_plugins,
            *plugins_in([Document(path, i, d) for i, d in enumerate(plain) if isinstance(d, dict)]),
        ]
    )
    result = FileFix(path, text, text)
    for index, document in enumerate(documents):
        obj = plain[index]
        if not isinstance(obj, dict):
            continue
        plugin = read_plugin(obj)
        if (
            plugin is None
            or plugin.container is None
            or plugin.form not in (FORM_CONFIGMAP, FORM_MANIFEST)
        ):
            continue
        policy_ids = _sidecar_policies(
            policy_set.evaluate(obj, context).violations, plugin.container_path
        )
        if not policy_ids:
            continue
        if plugin.form == FORM_MANIFEST:
            container = document["spec"]["sidecar"]["container"]
            changed = _fix_container(container, policy_ids, policy_set, settings)
        else:
            inner_text = document["data"][CONTAINER_KEY]
            inner_yaml = round_trip_yaml(inner_text)
            container = inner_yaml.load(inner_text)
            inner_before = dump(inner_yaml, container)
            changed = _fix_container(container, policy_ids, policy_set, settings)
            if changed:
                inner_after = dump(inner_yaml, container)
                document["data"][CONTAINER_KEY] = literal(
                    carry_over(inner_text, inner_before, inner_after)
                )
        if changed:
            result.changes.append((_label(obj), changed))
    if result.changes:
        result.fixed = carry_over(text, before, dump_all(yaml, documents, explicit_start))
    result.left = _left(path, result.fixed, policy_set, known_plugins)
    return result


def _left(path: str, text: str, policy_set: PolicySet, known_plugins: list[Any]) -> list[Left]:
    try:
        objects = parse_documents(text, path)
    except ManifestError as exc:  # fix wrote something unreadable: never expected
        raise FixError(f"{path}: the rewritten file does not parse: {exc}") from exc
    documents = [Document(path, i, obj) for i, obj in enumerate(objects)]
    context = EvaluationContext(plugins=[*known_plugins, *plugins_in(documents)])
    left: list[Left] = []
    for document in documents:
        plugin = read_plugin(document.obj)
        if plugin is None:
            continue
        for violation in policy_set.evaluate(document.obj, context).violations:
            if violation.action is not Action.AUDIT:
                left.append(Left(_label(document.obj), violation, _why(violation)))
    return left
