"""The check registry: the named checks a policy rule can use (`check: <name>`).

A check says what a JSON Schema cannot. It is a function
`(view, prepared parameters, context) -> iterable of Finding` that registers itself
under its name, with the targets it works on and a JSON Schema for its `parameters`
(the policy loader validates them, so a typo in a parameter is a load error, not an
evaluation error). Adding one is a module in `webhook/policy/checks/`, imported by that
package's `__init__` (the list of built-in checks)::

    from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
    from webhook.policy.registry import register

    @register("noLatestTag", targets=[Target.CONTAINER])
    def no_latest_tag(
        view: TargetView, parameters: Mapping[str, Any], context: EvaluationContext
    ) -> Iterator[Finding]:
        if str(view.value.get("image", "")).endswith(":latest"):
            yield Finding("image", "{container} uses the :latest tag; pin a version")

`prepare=` turns a rule's parameters into what the function needs (compiled patterns,
parsed quantities) once per rule when the policy loads; the function then receives
that value instead of the raw mapping, so no check keeps a cache of its own. `prepare`
raises `ValueError` for parameters the schema lets through but the check cannot use
(a regex that does not compile): the loader reports it as a policy load error.

Check functions are pure: no I/O, no globals mutated, same input, same findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, overload

from webhook.policy.model import EvaluationContext, Finding, Target, TargetView

Prepared = TypeVar("Prepared")

Parameters: TypeAlias = Mapping[str, Any]
CheckFunction: TypeAlias = Callable[[TargetView, Prepared, EvaluationContext], Iterable[Finding]]

# A check without parameters accepts none (an empty object).
NO_PARAMETERS: Mapping[str, Any] = {"type": "object", "additionalProperties": False}


def keep_parameters(parameters: Parameters) -> Parameters:
    """The default `prepare`: the function receives the rule's parameters as written."""
    return parameters


@dataclass(frozen=True, slots=True)
class CheckSpec(Generic[Prepared]):
    """A registered check: its function, how its parameters are prepared, where it applies."""

    name: str
    function: CheckFunction[Prepared]
    prepare: Callable[[Parameters], Prepared]
    parameters_schema: Mapping[str, Any]
    targets: frozenset[Target]
    description: str


class CheckRegistry:
    """Checks by name. `default_registry` holds the built-in ones; a test or an
    embedding program can build its own (or `copy()` the default and add to it)."""

    def __init__(self, checks: Iterable[CheckSpec[Any]] = ()) -> None:
        self._checks: dict[str, CheckSpec[Any]] = {}
        for spec in checks:
            self.add(spec)

    def add(self, spec: CheckSpec[Any]) -> None:
        if spec.name in self._checks:
            raise ValueError(f"check {spec.name!r} registered twice")
        self._checks[spec.name] = spec

    @overload
    def register(
        self,
        name: str,
        *,
        targets: Iterable[Target],
        parameters_schema: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> Callable[[CheckFunction[Parameters]], CheckFunction[Parameters]]: ...

    @overload
    def register(
        self,
        name: str,
        *,
        targets: Iterable[Target],
        prepare: Callable[[Parameters], Prepared],
        parameters_schema: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> Callable[[CheckFunction[Prepared]], CheckFunction[Prepared]]: ...

    def register(
        self,
        name: str,
        *,
        targets: Iterable[Target],
        prepare: Callable[[Parameters], Any] = keep_parameters,
        parameters_schema: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> Callable[[CheckFunction[Any]], CheckFunction[Any]]:
        """Decorator: register the function as check `name` (used as `check: name`)."""

        def decorate(function: CheckFunction[Any]) -> CheckFunction[Any]:
            self.add(
                CheckSpec(
                    name=name,
                    function=function,
                    prepare=prepare,
                    parameters_schema=parameters_schema or NO_PARAMETERS,
                    targets=frozenset(targets),
                    description=description or (function.__doc__ or ""),
                )
            )
            return function

        return decorate

    def get(self, name: str) -> CheckSpec[Any] | None:
        return self._checks.get(name)

    def names(self) -> list[str]:
        return sorted(self._checks)

    def copy(self) -> CheckRegistry:
        return CheckRegistry(self._checks.values())

    def __contains__(self, name: object) -> bool:
        return name in self._checks

    def __iter__(self) -> Iterator[CheckSpec[Any]]:
        return iter(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)


default_registry = CheckRegistry()
"""The checks policies use unless told otherwise: the built-in ones (`webhook.policy.checks`)."""

register = default_registry.register
