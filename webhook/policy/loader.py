"""Read policy files: YAML, one policy per file named `<id>.yaml`, checked against a
meta-schema so that a typo names the file, the policy and the field (and suggests the
word that was meant) instead of crashing the engine or being silently ignored."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from webhook.errors import PolicyLoadError
from webhook.manifests import parse_yaml
from webhook.paths import format_path, join_path
from webhook.policy.model import Action, Target
from webhook.policy.registry import CheckRegistry

API_VERSION = "argo-plugin-guard/v1"
POLICY_KIND = "Policy"
POLICY_SUFFIXES = (".yaml", ".yml")
# The wgpolicyk8s.io PolicyReport severities; a policy without one gets the severity of
# its action (`default_severity`), and `DEFAULT_CATEGORY` when it names no category.
SEVERITIES = ("critical", "high", "medium", "low", "info")
DEFAULT_CATEGORY = "Argo executor plugins"
_SEVERITY_OF_ACTION = {Action.ENFORCE: "high", Action.WARN: "medium", Action.AUDIT: "low"}


def default_severity(action: Action) -> str:
    """Enforce: high, Warn: medium, Audit: low."""
    return _SEVERITY_OF_ACTION[action]


_GLOBS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "include": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "exclude": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
}

POLICY_META_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "id", "description", "action", "match", "rules"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": POLICY_KIND},
        "id": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "description": {"type": "string", "minLength": 1},
        "action": {"enum": [a.value for a in Action]},
        # for reports (PolicyReport results, `audit`): the wgpolicyk8s.io severities
        "severity": {"enum": list(SEVERITIES)},
        "category": {"type": "string", "minLength": 1, "maxLength": 63},
        "match": {
            "type": "object",
            "required": ["targets"],
            "additionalProperties": False,
            "properties": {
                "targets": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"enum": [t.value for t in Target]},
                },
                "kinds": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "namespaces": _GLOBS,
                "names": _GLOBS,
            },
        },
        "rules": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "schema": {"type": ["object", "boolean"]},
                    "check": {"type": "string", "minLength": 1},
                    "parameters": {"type": "object"},
                    "message": {"type": "string", "minLength": 1},
                    # what a kubectl warning shows: the fix in a few words (the path is
                    # shown beside it); kubectl cuts warnings past 120 characters
                    "warning": {"type": "string", "minLength": 1, "maxLength": 90},
                },
            },
        },
        "fixes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["op", "path"],
                "additionalProperties": False,
                "properties": {
                    "op": {"enum": ["add", "replace", "remove"]},
                    "path": {"type": "string", "pattern": "^/"},
                    "value": {},
                },
            },
        },
    },
}

_META_VALIDATOR = jsonschema.Draft202012Validator(POLICY_META_SCHEMA)


def bundled_policies_dir() -> Path:
    """The default policy set: `policies/` in a source checkout, or its copy inside the
    wheel (`webhook/_bundled_policies`, see pyproject.toml)."""
    package_dir = Path(__file__).resolve().parent.parent
    installed = package_dir / "_bundled_policies"
    if installed.is_dir():
        return installed
    return package_dir.parent / "policies"


def policy_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise PolicyLoadError(str(directory), "policies directory does not exist")
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in POLICY_SUFFIXES)


def read_policy_documents(
    directory: Path, checks: CheckRegistry
) -> list[tuple[str, dict[str, Any]]]:
    """(file, policy document) for every policy file, each validated on its own
    (`check:` names against `checks`)."""
    documents = []
    seen: dict[str, str] = {}
    for path in policy_files(directory):
        document = read_policy_file(path, checks)
        policy_id = document["id"]
        if policy_id in seen:
            raise PolicyLoadError(
                str(path), f"duplicate policy id (also in {seen[policy_id]})", policy_id, "id"
            )
        seen[policy_id] = str(path)
        documents.append((str(path), document))
    return documents


def read_policy_file(path: Path, checks: CheckRegistry) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(source, f"cannot read: {exc}") from None
    try:
        document = parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise PolicyLoadError(source, f"invalid YAML{line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PolicyLoadError(source, f"invalid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise PolicyLoadError(source, "a policy file must hold one YAML mapping")
    validate_policy_document(document, source, checks)
    if path.stem != document["id"]:
        raise PolicyLoadError(
            source, f"the file must be named {document['id']}.yaml", document["id"], "id"
        )
    return document


def validate_policy_document(
    document: Mapping[str, Any], source: str, checks: CheckRegistry
) -> None:
    """Raise PolicyLoadError for the first problem, in document order."""
    policy_id = document.get("id") if isinstance(document.get("id"), str) else None
    errors = sorted(_META_VALIDATOR.iter_errors(document), key=_error_order)
    if errors:
        error = errors[0]
        field, message = _explain(error)
        raise PolicyLoadError(source, message, policy_id, field or None)
    for index, rule in enumerate(document["rules"]):
        _validate_rule(rule, source, policy_id, index, document["match"]["targets"], checks)


def _validate_rule(
    rule: Mapping[str, Any],
    source: str,
    policy_id: str | None,
    index: int,
    targets: list[str],
    checks: CheckRegistry,
) -> None:
    field = f"rules[{index}]"
    has_schema, has_check = "schema" in rule, "check" in rule
    if has_schema == has_check:
        raise PolicyLoadError(
            source, "a rule needs exactly one of 'schema' or 'check'", policy_id, field
        )
    if has_schema:
        if "parameters" in rule:
            raise PolicyLoadError(
                source, "'parameters' go with 'check', not 'schema'", policy_id, field
            )
        if "message" not in rule:
            raise PolicyLoadError(
                source, "a schema rule needs a 'message' (what to write instead)", policy_id, field
            )
        try:
            jsonschema.Draft202012Validator.check_schema(rule["schema"])
        except jsonschema.SchemaError as exc:
            where = join_path(field, "schema", *exc.path)
            raise PolicyLoadError(
                source, f"not a valid JSON Schema: {exc.message}", policy_id, where
            ) from None
        return
    name = rule["check"]
    spec = checks.get(name)
    if spec is None:
        raise PolicyLoadError(
            source,
            f"unknown check {name!r}{_did_you_mean(name, checks.names())}; known checks: "
            + ", ".join(checks.names()),
            policy_id,
            f"{field}.check",
        )
    wrong_targets = [t for t in targets if Target(t) not in spec.targets]
    if wrong_targets:
        raise PolicyLoadError(
            source,
            f"check {name!r} works on targets {sorted(t.value for t in spec.targets)}, "
            f"not {wrong_targets}",
            policy_id,
            "match.targets",
        )
    validator = jsonschema.Draft202012Validator(spec.parameters_schema)
    errors = sorted(
        validator.iter_errors(rule.get("parameters", {})), key=lambda e: list(map(str, e.path))
    )
    if errors:
        sub_field, message = _explain(errors[0])
        where = f"{field}.parameters" + (f".{sub_field}" if sub_field else "")
        raise PolicyLoadError(source, message, policy_id, where)


# A misspelt key shows up as both "unknown field" and "missing field": the first, with
# its "did you mean", is the one that helps.
_ERROR_PRIORITY = {"additionalProperties": 0, "enum": 1, "const": 1, "required": 2}


def _error_order(error: jsonschema.ValidationError) -> tuple[int, list[str]]:
    return (_ERROR_PRIORITY.get(str(error.validator), 3), [str(p) for p in error.path])


def _explain(error: jsonschema.ValidationError) -> tuple[str, str]:
    """A one-line explanation of a schema error, for a person editing YAML."""
    field = format_path(error.absolute_path)
    schema: Any = error.schema
    expected: Any = error.validator_value
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {})) if isinstance(schema, dict) else []
        unknown = [k for k in error.instance if k not in allowed]
        if unknown:
            key = unknown[0]
            where = format_path([*error.absolute_path, str(key)])
            return where, (
                f"unknown field {key!r}{_did_you_mean(str(key), allowed)}; "
                f"allowed here: {', '.join(allowed)}"
            )
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in expected if k not in error.instance]
        if missing:
            return format_path([*error.absolute_path, missing[0]]), f"missing field {missing[0]!r}"
    if error.validator == "enum":
        options = list(expected)
        value = error.instance
        hint = _did_you_mean(value, options) if isinstance(value, str) else ""
        return field, f"{value!r} is not one of {', '.join(map(str, options))}{hint}"
    if error.validator == "const":
        return field, f"must be {expected!r}, not {error.instance!r}"
    return field, error.message


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
