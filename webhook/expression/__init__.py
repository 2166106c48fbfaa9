"""expr-lang (github.com/expr-lang/expr) expressions, parsed and evaluated here: Argo
evaluates HTTP templates' `successCondition` with it (`util/expr/argoexpr.EvalBool`).

    program = compile_expression('response.statusCode == 200', names={"response"})
    program.evaluate({"response": {...}})          # -> True
    evaluate_bool(source, env)                     # Argo's EvalBool: errors as Argo words them

A tree walk over a syntax tree of its own (`parser`, `nodes`), never Python's `eval`;
bounded in source length, nodes, nesting and evaluation steps; regular expressions are
RE2, as Go's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.expression.errors import (
    ExpressionError,
    ExpressionRuntimeError,
    ExpressionSyntaxError,
)
from webhook.expression.nodes import DEFAULT_STEP_BUDGET, Node, Scope
from webhook.expression.parser import parse
from webhook.expression.values import NIL_STRINGS, GoMap, StringList, format_value

__all__ = [
    "NIL_STRINGS",
    "ExpressionError",
    "ExpressionRuntimeError",
    "ExpressionSyntaxError",
    "GoMap",
    "Program",
    "StringList",
    "compile_expression",
    "evaluate_bool",
]


@dataclass(frozen=True, slots=True)
class Program:
    source: str
    tree: Node

    def evaluate(self, env: Mapping[str, Any], *, step_budget: int = DEFAULT_STEP_BUDGET) -> Any:
        """The value of the expression; raises ExpressionRuntimeError."""
        try:
            return self.tree.run(Scope(self.source, env, steps_left=step_budget))
        except RecursionError:  # bounded depth makes this unlikely; never a traceback
            raise ExpressionRuntimeError("expression too deeply nested to evaluate") from None


def compile_expression(source: str, names: Iterable[str]) -> Program:
    """Parse and check `source`, whose free names must be among `names`."""
    return Program(source, parse(source, names))


def evaluate_bool(source: str, env: Mapping[str, Any]) -> bool:
    """Argo's `argoexpr.EvalBool`: compile against the environment's names, run, and
    require a bool. Errors are worded as Argo's (`unable to evaluate expression ...`)."""
    program = compile_expression(source, env.keys())
    try:
        result = program.evaluate(env)
    except ExpressionRuntimeError as exc:
        raise ExpressionRuntimeError(f"unable to evaluate expression '{source}': {exc}") from None
    if not isinstance(result, bool):
        raise ExpressionRuntimeError(
            f"unable to cast expression result '{format_value(result)}' to bool"
        )
    return result
