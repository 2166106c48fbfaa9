"""The Kubernetes `core/v1` Container model, read from the `kubernetes` package.

Argo parses a plugin's `sidecar.container` with `yaml.UnmarshalStrict` into a
`corev1.Container`: an unknown field anywhere (a misspelt `securityContex`, a
`volumes` key that does not exist on a container) makes Argo refuse the whole plugin.
The set of legal fields is taken from the generated API model that the `kubernetes`
client ships (`openapi_types` / `attribute_map` of each `V1...` class), so it follows
the Kubernetes version the package was generated from instead of a hand-typed list.

Only the model classes are read (pure data); nothing here talks to a cluster. They are
imported on first use (`api_models()`): ~0.3 s that a `check` which parses no container
should not pay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from webhook.jsontypes import type_word, with_article
from webhook.paths import PathPart, join_path

# `List[V1EnvVar]`, `Dict[str, str]`, `V1Probe`, `int`, `object`...
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


@cache
def api_models() -> Any:
    """The `kubernetes.client` module, whose `V1...` classes describe the API types."""
    from kubernetes import client

    return client


@dataclass(frozen=True, slots=True)
class FieldType:
    """A field's type: a scalar (`str`, `int`, `bool`, `object`), a list, a map or a model."""

    kind: str  # "scalar" | "list" | "dict" | "model"
    name: str  # scalar name or model class name
    item: FieldType | None = None


def parse_type(type_name: str) -> FieldType:
    if match := _LIST.match(type_name):
        return FieldType("list", "list", parse_type(match.group(1)))
    if match := _DICT.match(type_name):
        return FieldType("dict", "dict", parse_type(match.group(1)))
    if type_name in {"str", "int", "bool", "float", "object", "datetime", "date"}:
        return FieldType("scalar", type_name)
    return FieldType("model", type_name)


@cache
def model_fields(model: str) -> dict[str, FieldType]:
    """JSON field name -> type, for one generated model class (e.g. `V1Container`)."""
    cls = getattr(api_models(), model)
    attribute_map: dict[str, str] = cls.attribute_map
    return {
        attribute_map[attr]: parse_type(type_name) for attr, type_name in cls.openapi_types.items()
    }


@dataclass(frozen=True, slots=True)
class ModelError:
    path: str
    message: str


def strict_errors(value: Any, model: str = "V1Container", path: str = "") -> list[ModelError]:
    """What `yaml.UnmarshalStrict` into `model` would refuse, with paths.

    Scalars follow sigs.k8s.io/yaml: any YAML scalar is accepted for a string field (it
    is converted to its literal text), a string is refused where a number is required,
    and `null` is accepted everywhere (a nil pointer / zero value).
    """
    errors: list[ModelError] = []
    _check(value, FieldType("model", model), path, errors)
    return errors


def as_go_strings(value: Any, model: str = "V1Container") -> Any:
    """A copy where every scalar in a string field is text, as Go holds it after
    sigs.k8s.io/yaml's conversion (`args: [--port, 8080]` is `["--port", "8080"]`),
    so that writing it back out quotes it as Go does. Quantities (`cpu: 1`) count as
    strings too: the Python model types them so, and Go writes them as strings."""
    return _as_go_strings(value, FieldType("model", model))


def _as_go_strings(value: Any, field_type: FieldType) -> Any:
    if value is None:
        return None
    if field_type.kind == "scalar":
        if field_type.name == "str" and not isinstance(value, dict | list | str):
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
        return value
    if field_type.kind == "list" and isinstance(value, list):
        assert field_type.item is not None
        return [_as_go_strings(item, field_type.item) for item in value]
    if field_type.kind == "dict" and isinstance(value, dict):
        assert field_type.item is not None
        return {key: _as_go_strings(item, field_type.item) for key, item in value.items()}
    if field_type.kind == "model" and isinstance(value, dict):
        fields = model_fields(field_type.name)
        return {
            key: _as_go_strings(item, fields[key])
            if isinstance(key, str) and key in fields
            else item
            for key, item in value.items()
        }
    return value


def _check(value: Any, field_type: FieldType, path: str, errors: list[ModelError]) -> None:
    if value is None:
        return
    if field_type.kind == "scalar":
        _check_scalar(value, field_type.name, path, errors)
    elif field_type.kind == "list":
        if not isinstance(value, list):
            errors.append(ModelError(path, f"must be a list, not {_describe(value)}"))
            return
        assert field_type.item is not None
        for index, item in enumerate(value):
            _check(item, field_type.item, join_path(path, index), errors)
    elif field_type.kind == "dict":
        if not isinstance(value, dict):
            errors.append(ModelError(path, f"must be a mapping, not {_describe(value)}"))
            return
        assert field_type.item is not None
        for key, item in value.items():
            _check(item, field_type.item, join_path(path, str(key)), errors)
    else:
        if not isinstance(value, dict):
            errors.append(ModelError(path, f"must be a mapping, not {_describe(value)}"))
            return
        fields = model_fields(field_type.name)
        for key, item in value.items():
            key_path = join_path(path, _as_part(key))
            known = fields.get(key) if isinstance(key, str) else None
            if known is None:
                errors.append(ModelError(key_path, _unknown_field_message(key, fields)))
                continue
            _check(item, known, key_path, errors)


def _check_scalar(value: Any, type_name: str, path: str, errors: list[ModelError]) -> None:
    if type_name == "object":  # IntOrString, Quantity, free-form: anything goes
        return
    if isinstance(value, dict | list):
        errors.append(
            ModelError(path, f"must be a {_scalar_word(type_name)}, not {_describe(value)}")
        )
        return
    if type_name == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        errors.append(ModelError(path, f"must be an integer, not {_describe(value)}"))
    elif type_name == "bool" and not isinstance(value, bool):
        errors.append(ModelError(path, f"must be true or false, not {_describe(value)}"))


def _unknown_field_message(key: Any, fields: dict[str, FieldType]) -> str:
    import difflib

    message = (
        f"unknown field {key!r}: Argo parses the container strictly and would refuse this plugin"
    )
    if isinstance(key, str):
        close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    return message


def _as_part(key: Any) -> PathPart:
    return key if isinstance(key, str) else str(key)


def _scalar_word(type_name: str) -> str:
    return {"str": "string", "int": "integer", "bool": "boolean", "float": "number"}.get(
        type_name, type_name
    )


def _describe(value: Any) -> str:
    return with_article(type_word(value, yaml_words=True))
