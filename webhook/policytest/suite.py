"""The suite file: its format, its validation, and errors that name the file and line.

```yaml
apiVersion: argo-plugin-guard/v1
kind: Test
name: plugin-resources            # optional; the folder name by default
policies: [../plugin-resources.yaml]   # files or folders; none = the bundled set
resources: [good.yaml, bad.yaml]  # plugin.yaml, ConfigMaps, Workflows, multi-document
plugins: [installed.yaml]         # optional: plugins already in the cluster (port checks)
namespace: argo                   # optional: the namespace of objects that name none
results:
  - policy: plugin-resources
    resources: [good-executor-plugin]   # or `resource: NAME`; `kind:` / `namespace:` narrow
    result: pass
  - policy: plugin-resources
    resource: bad-executor-plugin
    path: data[sidecar.container].resources.limits.cpu   # optional: one field
    result: fail
```

Paths in a suite are relative to the suite file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from webhook.errors import ManifestError

SUITE_FILE_NAME = "plugin-guard-test.yaml"
RESULTS = ("pass", "fail", "warn", "skip")

_NAME = {"type": "string", "minLength": 1}
_PATHS = {"type": "array", "items": _NAME, "minItems": 1}

SUITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "resources", "results"],
    "properties": {
        "apiVersion": {"const": "argo-plugin-guard/v1"},
        "kind": {"const": "Test"},
        "name": _NAME,
        "description": {"type": "string"},
        "policies": _PATHS,
        "resources": _PATHS,
        "plugins": _PATHS,
        "namespace": _NAME,
        "results": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["policy", "result"],
                "oneOf": [{"required": ["resource"]}, {"required": ["resources"]}],
                "properties": {
                    "policy": _NAME,
                    "resource": _NAME,
                    "resources": {"type": "array", "items": _NAME, "minItems": 1},
                    "kind": _NAME,
                    "namespace": _NAME,
                    "path": _NAME,
                    "result": {"enum": list(RESULTS)},
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SUITE_SCHEMA)


class SuiteError(ManifestError):
    """A suite that cannot be run as written: the file, the line and what is wrong."""


@dataclass(frozen=True, slots=True)
class Expectation:
    """One expected result: a policy on one resource (and optionally one field)."""

    policy: str
    resource: str
    result: str
    kind: str | None
    namespace: str | None
    path: str | None
    line: int

    @property
    def label(self) -> str:
        resource = "/".join(p for p in (self.kind, self.namespace, self.resource) if p)
        return f"{self.policy} {resource}" + (f" {self.path}" if self.path else "")


@dataclass(frozen=True, slots=True)
class Suite:
    source: Path
    name: str
    policies: tuple[Path, ...]  # empty: the bundled set
    resources: tuple[Path, ...]
    plugins: tuple[Path, ...]
    namespace: str | None
    expectations: tuple[Expectation, ...]


def find_suites(paths: Sequence[str]) -> list[Path]:
    """Every suite file at or under `paths` (a file given directly counts whatever its
    name); dot-folders are skipped, as `check` does."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for candidate in sorted(path.rglob(SUITE_FILE_NAME)):
                parts = candidate.relative_to(path).parts
                if not any(part.startswith(".") for part in parts):
                    found.append(candidate)
        else:
            raise SuiteError(given, "no such file or folder")
    return found


def _node_line(node: yaml.Node, path: Iterable[Any]) -> int:
    """The 1-based line of the YAML node at `path` (the deepest that exists)."""
    for key in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            child = node.value[key] if key < len(node.value) else None
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


def _known_fields(error: jsonschema.ValidationError) -> list[str]:
    schema = error.schema
    return list(schema.get("properties", {})) if isinstance(schema, dict) else []


def _unknown_fields(error: jsonschema.ValidationError) -> list[str]:
    instance = error.instance
    fields = instance if isinstance(instance, dict) else {}
    return sorted(set(fields) - set(_known_fields(error)))


def _explain(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if not where:
        return _explain_here(error)
    return f"{where}: {_explain_here(error)}"


def _explain_here(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        known = _known_fields(error)
        words = []
        for name in _unknown_fields(error):
            close = difflib.get_close_matches(name, known, n=1)
            words.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"unknown field {', '.join(words)}"
    if error.validator == "oneOf":
        return "give either 'resource' or 'resources'"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(RESULTS)}"
    return str(error.message)


def load_suite(source: Path) -> Suite:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(str(source), f"cannot read: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SuiteError(str(source), f"invalid YAML: {exc.problem}", line) from exc
    except yaml.YAMLError as exc:
        raise SuiteError(str(source), f"invalid YAML: {exc}") from exc
    if node is None or not isinstance(document, dict):
        raise SuiteError(str(source), "a suite is a YAML mapping (apiVersion, kind: Test, ...)", 1)
    errors = sorted(_VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        path = list(error.absolute_path)
        if error.validator == "additionalProperties":
            path.append(_unknown_fields(error)[0])  # the line of the unknown key itself
        raise SuiteError(str(source), _explain(error), _node_line(node, path))

    base = source.parent
    expectations = []
    for index, entry in enumerate(document["results"]):
        names = entry.get("resources") or [entry["resource"]]
        line = _node_line(node, ["results", index])
        for name in names:
            expectations.append(
                Expectation(
                    policy=entry["policy"],
                    resource=name,
                    result=entry["result"],
                    kind=entry.get("kind"),
                    namespace=entry.get("namespace"),
                    path=entry.get("path"),
                    line=line,
                )
            )
    return Suite(
        source=source,
        name=document.get("name") or base.name,
        policies=tuple(base / p for p in document.get("policies", [])),
        resources=tuple(base / p for p in document["resources"]),
        plugins=tuple(base / p for p in document.get("plugins", [])),
        namespace=document.get("namespace"),
        expectations=tuple(expectations),
    )
