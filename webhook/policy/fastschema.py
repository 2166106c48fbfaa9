"""A fast "is this instance valid?" for the JSON Schema subset policies use.

`jsonschema` walks a schema through generic machinery (validator objects, `evolve`,
`descend`, error generators): about 25 µs for a small schema on a container, which is
most of an admission review's budget when a dozen policies apply. Almost every object
the webhook sees is *compliant*, so the engine asks this compiled predicate first and
runs `jsonschema` (for exact errors and paths) only when the predicate says "invalid".

`compile_validity(schema)` turns a schema into a plain closure, or returns None when
the schema uses a keyword outside the supported subset; the engine then always uses
`jsonschema`. The predicate must agree with `jsonschema`'s Draft 2020-12 `is_valid`
for every instance (tests/foundation/test_fastschema.py checks this with hypothesis).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Any], bool]
PathPart = str | int

# Keywords that only describe (no effect on validity).
_ANNOTATIONS = frozenset(
    {"$schema", "$comment", "$id", "title", "description", "default", "examples", "deprecated"}
)
_TYPE_CHECKS: dict[str, Predicate] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    # jsonschema counts 1.0 as an integer; bools are never numbers.
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality as `jsonschema` defines it for const and enum: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return bool(a == b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compile_validity(schema: Any) -> Predicate | None:
    """A predicate equivalent to Draft 2020-12 validity, or None if unsupported."""
    if schema is True:
        return lambda _: True
    if schema is False:
        return lambda _: False
    if not isinstance(schema, Mapping):
        return None
    checks: list[Predicate] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _compile_keyword(keyword, value)
        if check is None:
            return None
        checks.append(check)
    if not checks:
        return lambda _: True
    if len(checks) == 1:
        return checks[0]

    def all_of(instance: Any) -> bool:
        for check in checks:  # a plain loop: faster than all() over a generator
            if not check(instance):
                return False
        return True

    return all_of


def _compile_keyword(keyword: str, value: Any) -> Predicate | None:
    if keyword == "type":
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or any(n not in _TYPE_CHECKS for n in names):
            return None
        type_checks = [_TYPE_CHECKS[n] for n in names]
        if len(type_checks) == 1:
            return type_checks[0]
        return lambda v: any(t(v) for t in type_checks)
    if keyword == "required":
        if not isinstance(value, list):
            return None
        required = list(value)

        def has_required(v: Any) -> bool:
            if isinstance(v, dict):
                for key in required:
                    if key not in v:
                        return False
            return True

        return has_required
    if keyword == "properties":
        if not isinstance(value, Mapping):
            return None
        compiled: list[tuple[str, Predicate]] = []
        for name, sub in value.items():
            predicate = compile_validity(sub)
            if predicate is None:
                return None
            compiled.append((name, predicate))

        def properties(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for key, predicate in compiled:
                if key in v and not predicate(v[key]):
                    return False
            return True

        return properties
    if keyword == "const":
        expected = value
        return lambda v: json_equal(v, expected)
    if keyword == "enum":
        if not isinstance(value, list):
            return None
        options = list(value)
        return lambda v: any(json_equal(v, o) for o in options)
    if keyword == "not":
        inner = compile_validity(value)
        if inner is None:
            return None
        return lambda v: not inner(v)
    if keyword == "items":
        each = compile_validity(value)
        if each is None:
            return None
        return lambda v: not isinstance(v, list) or all(each(item) for item in v)
    if keyword == "contains":
        some = compile_validity(value)
        if some is None:
            return None
        return lambda v: not isinstance(v, list) or any(some(item) for item in v)
    if keyword in {"minItems", "maxItems", "minLength", "maxLength"}:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        bound = value
        applies: Predicate = (
            (lambda v: isinstance(v, list))
            if "Items" in keyword
            else (lambda v: isinstance(v, str))
        )
        if keyword.startswith("min"):
            return lambda v: not applies(v) or len(v) >= bound
        return lambda v: not applies(v) or len(v) <= bound
    if keyword in {"minimum", "maximum"}:
        if not _is_number(value):
            return None
        limit = value
        if keyword == "minimum":
            return lambda v: not _is_number(v) or v >= limit
        return lambda v: not _is_number(v) or v <= limit
    if keyword == "pattern":
        if not isinstance(value, str):
            return None
        try:
            regex = re.compile(value)
        except re.error:
            return None
        return lambda v: not isinstance(v, str) or regex.search(v) is not None
    return None


# --------------------------------------------------------------------------- error paths

ErrorPaths = Callable[[Any, tuple[PathPart, ...]], list[tuple[PathPart, ...]]]
"""(instance, path so far) -> the path of every error, in `jsonschema`'s order: one per
failing keyword at the instance it applies to, and for `required` one per missing
property (the property's own path, which is where the user has to write something)."""


def compile_error_paths(schema: Any) -> ErrorPaths | None:
    """The error paths `jsonschema.iter_errors` would report, or None if unsupported.

    Only needed when `compile_validity` said "invalid", so it favours clarity."""
    if schema is True:
        return lambda _v, _p: []
    if schema is False:
        return lambda _v, path: [path]
    if not isinstance(schema, Mapping):
        return None
    parts: list[ErrorPaths] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        part = _keyword_error_paths(keyword, value)
        if part is None:
            return None
        parts.append(part)

    def error_paths(instance: Any, path: tuple[PathPart, ...]) -> list[tuple[PathPart, ...]]:
        found: list[tuple[PathPart, ...]] = []
        for part in parts:
            found.extend(part(instance, path))
        return found

    return error_paths


def _keyword_error_paths(keyword: str, value: Any) -> ErrorPaths | None:
    if keyword == "required":
        if not isinstance(value, list):
            return None
        required = list(value)
        return lambda v, path: (
            [(*path, k) for k in required if k not in v] if isinstance(v, dict) else []
        )
    if keyword == "properties":
        if not isinstance(value, Mapping):
            return None
        compiled: list[tuple[str, ErrorPaths]] = []
        for name, sub in value.items():
            sub_paths = compile_error_paths(sub)
            if sub_paths is None:
                return None
            compiled.append((name, sub_paths))

        def properties(v: Any, path: tuple[PathPart, ...]) -> list[tuple[PathPart, ...]]:
            if not isinstance(v, dict):
                return []
            found: list[tuple[PathPart, ...]] = []
            for name, sub_paths in compiled:
                if name in v:
                    found.extend(sub_paths(v[name], (*path, name)))
            return found

        return properties
    if keyword == "items":
        each = compile_error_paths(value)
        if each is None:
            return None

        def items(v: Any, path: tuple[PathPart, ...]) -> list[tuple[PathPart, ...]]:
            if not isinstance(v, list):
                return []
            found: list[tuple[PathPart, ...]] = []
            for index, item in enumerate(v):
                found.extend(each(item, (*path, index)))
            return found

        return items
    # Every other supported keyword fails as a whole, at the instance it applies to.
    check = _compile_keyword(keyword, value)
    if check is None:
        return None
    return lambda v, path: [] if check(v) else [path]
