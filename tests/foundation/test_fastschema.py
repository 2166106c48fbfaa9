"""The compiled schema predicate agrees with `jsonschema` (Draft 2020-12), exactly.

The engine trusts `compile_validity` to skip `jsonschema` for valid objects and
`compile_error_paths` to report the same paths, so both are compared against
`jsonschema` on every schema the bundled policies use, over random instances built
from the keys and values those schemas mention (so that both branches are reached).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.paths import PathPart
from webhook.policy import load_policies
from webhook.policy.engine import SchemaRule
from webhook.policy.fastschema import compile_error_paths, compile_validity

EXTRA_SCHEMAS: list[Any] = [
    True,
    False,
    {"type": ["integer", "null"]},
    {"minimum": 1, "maximum": 3},
    {"minLength": 2, "maxLength": 3},
    {"maxItems": 1, "items": {"type": "string"}},
    {"enum": [1, True, "1", None, [1], {"a": 1}]},
    {"const": 0},
    {"const": False},
    {"not": {"required": ["a"]}},
    {"contains": {"const": "ALL"}},
]


def bundled_schemas() -> list[Any]:
    policies = load_policies()
    return [
        rule.validator.schema
        for policy in policies.policies
        for rule in policy.rules
        if isinstance(rule, SchemaRule)
    ]


SCHEMAS = bundled_schemas() + EXTRA_SCHEMAS


def vocabulary(schema: Any, keys: set[str], values: list[Any]) -> None:
    """Collect property names and literal values from a schema, to build instances."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in {"properties"} and isinstance(value, dict):
                keys.update(value)
            if key == "required" and isinstance(value, list):
                keys.update(value)
            if key in {"const"}:
                values.append(value)
            if key == "enum" and isinstance(value, list):
                values.extend(value)
            vocabulary(value, keys, values)
    elif isinstance(schema, list):
        for item in schema:
            vocabulary(item, keys, values)


def instances(schema: Any) -> st.SearchStrategy[Any]:
    keys: set[str] = {"x"}
    values: list[Any] = [0, 1, 1.0, 1.5, True, False, None, "", "ALL", "a:latest", "a:1.2", 65534]
    vocabulary(schema, keys, values)
    scalars = st.sampled_from(values) | st.integers(-5, 70000) | st.text(max_size=5)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.sampled_from(sorted(keys)), children, max_size=4)
        ),
        max_leaves=12,
    )


def jsonschema_paths(validator: Any, instance: Any) -> list[tuple[PathPart, ...]]:
    paths: list[tuple[PathPart, ...]] = []
    for error in validator.iter_errors(instance):
        base = tuple(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            paths.extend((*base, k) for k in error.validator_value if k not in error.instance)
        else:
            paths.append(base)
    return paths


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_compiled_schema_agrees_with_jsonschema(schema: Any) -> None:
    is_valid = compile_validity(schema)
    error_paths = compile_error_paths(schema)
    assert is_valid is not None and error_paths is not None, "schema should be supported"
    validator = jsonschema.Draft202012Validator(schema)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(instances(schema))
    def agree(instance: Any) -> None:
        assert is_valid(instance) == validator.is_valid(instance)
        assert error_paths(instance, ()) == jsonschema_paths(validator, instance)

    agree()


@pytest.mark.parametrize(
    "schema",
    [{"additionalProperties": False}, {"anyOf": [{}]}, {"$ref": "#"}, {"type": "objekt"}],
)
def test_unsupported_keywords_fall_back_to_jsonschema(schema: Any) -> None:
    assert compile_validity(schema) is None
