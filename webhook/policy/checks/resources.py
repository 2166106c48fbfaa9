"""Check `resourceQuantities`: requests and limits present, valid, consistent and capped.

Argo requires `resources` on a plugin sidecar (spec 4.1); the API server refuses a
container whose limit is below its request. The policy's caps are parsed once, when the
policy loads (`prepare`), and a cap that is not a quantity is a load error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from webhook.paths import join_path
from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
from webhook.policy.registry import Parameters, register
from webhook.quantity import QuantityError, parse_quantity

SECTIONS = ("requests", "limits")
DEFAULT_REQUIRED = ("cpu", "memory")

_QUANTITY_OR_NUMBER = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}

PARAMETERS_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "resources": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "resource names that must appear in requests and limits",
        },
        "maxLimits": _QUANTITY_OR_NUMBER,
        "maxRequests": _QUANTITY_OR_NUMBER,
    },
}

_EXAMPLES = {
    ("requests", "cpu"): "cpu: 100m",
    ("requests", "memory"): "memory: 32Mi",
    ("limits", "cpu"): "cpu: 200m",
    ("limits", "memory"): "memory: 64Mi",
}


@dataclass(frozen=True, slots=True)
class Cap:
    """A policy's upper bound on one resource of one section, as written and as parsed."""

    section: str
    resource: str
    written: object
    value: Decimal


@dataclass(frozen=True, slots=True)
class ResourceRules:
    """The prepared parameters: which resources are required, and the caps."""

    required: tuple[str, ...]
    caps: tuple[Cap, ...]


def prepare_resource_rules(parameters: Parameters) -> ResourceRules:
    caps: list[Cap] = []
    for section, cap_key in (("limits", "maxLimits"), ("requests", "maxRequests")):
        for resource, written in parameters.get(cap_key, {}).items():
            try:
                caps.append(Cap(section, resource, written, parse_quantity(written)))
            except QuantityError as exc:
                raise ValueError(f"{cap_key}.{resource} {exc}") from None
    return ResourceRules(tuple(parameters.get("resources", DEFAULT_REQUIRED)), tuple(caps))


@register(
    "resourceQuantities",
    targets=[Target.PLUGIN_SIDECAR, Target.CONTAINER],
    prepare=prepare_resource_rules,
    parameters_schema=PARAMETERS_SCHEMA,
    description="requests and limits present, valid quantities, limits >= requests, caps.",
)
def resource_quantities(
    view: TargetView, rules: ResourceRules, context: EvaluationContext
) -> Iterator[Finding]:
    resources = view.value.get("resources")
    resources = resources if isinstance(resources, dict) else {}
    quantities: dict[str, dict[str, Decimal]] = {}
    for section in SECTIONS:
        written = resources.get(section)
        written = written if isinstance(written, dict) else {}
        yield from _missing(section, written, rules.required)
        quantities[section] = parsed = {}
        for name, raw in written.items():
            if raw in (None, ""):
                continue
            try:
                parsed[name] = parse_quantity(raw)
            except QuantityError as exc:
                yield Finding(
                    join_path("resources", section, str(name)), f"resources.{section}.{name} {exc}"
                )
    for name, request in quantities["requests"].items():
        limit = quantities["limits"].get(name)
        if limit is not None and limit < request:
            yield Finding(
                join_path("resources", "limits", str(name)),
                f"resources.limits.{name} is lower than resources.requests.{name}: "
                "the API server refuses a pod like that; raise the limit",
                warning=f"raise it to at least resources.requests.{name}",
            )
    for cap in rules.caps:
        value = quantities[cap.section].get(cap.resource)
        if value is not None and value > cap.value:
            yield Finding(
                join_path("resources", cap.section, cap.resource),
                f"resources.{cap.section}.{cap.resource} exceeds the cap of {cap.written} "
                "set by this policy",
            )


def _missing(
    section: str, written: Mapping[str, Any], required: tuple[str, ...]
) -> Iterator[Finding]:
    for name in required:
        if name not in written or written[name] in (None, ""):
            yield Finding(
                join_path("resources", section, name),
                f"resources.{section}.{name} is required for {{container}}: set it "
                f"(for example {_EXAMPLES.get((section, name), '...')})",
                warning=f"set it, e.g. {_EXAMPLES.get((section, name), '...')}",
            )
