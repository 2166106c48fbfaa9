"""The syntax tree of an expression, and its evaluation (a tree walk, never `eval`).

Each node evaluates itself against a `Scope`. A run-time failure raised by `values`
(`EvalError`) gets the position of the node where it happened. Every node evaluated
costs one step of the scope's budget, so `map(1..100000, map(1..100000, #))` stops
with an error instead of running for minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.expression import values
from webhook.expression.errors import ExpressionRuntimeError
from webhook.expression.values import EvalError

DEFAULT_STEP_BUDGET = 250_000


class _NilChain(Exception):
    """`a?.b` met nil: the whole chain is nil."""


@dataclass(slots=True)
class Scope:
    source: str
    env: Mapping[str, Any]
    variables: dict[str, Any] = field(default_factory=dict)
    pointers: list[dict[str, Any]] = field(default_factory=list)  # `#`, `#index`, `#acc`
    steps_left: int = DEFAULT_STEP_BUDGET

    def step(self, node: Node) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise ExpressionRuntimeError(
                "evaluation exceeds its step budget (too much work for a condition)",
                self.source,
                node.position,
            )


class Node:
    __slots__ = ("depth", "position")

    position: int
    depth: int

    def evaluate(self, scope: Scope) -> Any:
        raise NotImplementedError

    def run(self, scope: Scope) -> Any:
        """`evaluate` with the budget and this node's position on errors."""
        scope.step(self)
        try:
            return self.evaluate(scope)
        except EvalError as exc:
            raise ExpressionRuntimeError(str(exc), scope.source, self.position) from None

    def children(self) -> Sequence[Node]:
        return ()


class Literal(Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def evaluate(self, scope: Scope) -> Any:
        return self.value


class Identifier(Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, scope: Scope) -> Any:
        if self.name in scope.variables:
            return scope.variables[self.name]
        if self.name == "$env":
            return dict(scope.env)
        if self.name in scope.env:
            return scope.env[self.name]
        raise EvalError(f"unknown name {self.name}")


class Pointer(Node):
    """`#` (the current element of a predicate), `#index`, `#acc`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, scope: Scope) -> Any:
        if not scope.pointers:
            raise EvalError("cannot use pointer accessor outside predicate")
        frame = scope.pointers[-1]
        key = self.name or "#"
        if key not in frame:
            raise EvalError(f"unknown pointer #{self.name}")
        return frame[key]


class Member(Node):
    """`a.b`, `a["b"]`, `a[0]`, and their optional forms `a?.b`, `a?.[0]`."""

    __slots__ = ("optional", "property", "target")

    def __init__(self, target: Node, property: Node, optional: bool) -> None:
        self.target, self.property, self.optional = target, property, optional

    def evaluate(self, scope: Scope) -> Any:
        container = self.target.run(scope)
        if self.optional and values.is_nil(container):
            raise _NilChain
        return values.fetch(container, self.property.run(scope))

    def children(self) -> Sequence[Node]:
        return (self.target, self.property)


class Chain(Node):
    """The extent of an optional chain: nil met by `?.` inside makes it nil."""

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def evaluate(self, scope: Scope) -> Any:
        try:
            return self.node.run(scope)
        except _NilChain:
            return None

    def children(self) -> Sequence[Node]:
        return (self.node,)


class Slice(Node):
    __slots__ = ("start", "stop", "target")

    def __init__(self, target: Node, start: Node | None, stop: Node | None) -> None:
        self.target, self.start, self.stop = target, start, stop

    def evaluate(self, scope: Scope) -> Any:
        container = self.target.run(scope)
        start = None if self.start is None else self.start.run(scope)
        stop = None if self.stop is None else self.stop.run(scope)
        return values.slice_of(container, start, stop)

    def children(self) -> Sequence[Node]:
        return tuple(n for n in (self.target, self.start, self.stop) if n is not None)


class Unary(Node):
    __slots__ = ("node", "operator")

    def __init__(self, operator: str, node: Node) -> None:
        self.operator, self.node = operator, node

    def evaluate(self, scope: Scope) -> Any:
        value = self.node.run(scope)
        if self.operator in ("!", "not"):
            return not values.need_bool(self.operator, value)
        if self.operator == "-":
            return values.negate(value)
        if not values.is_number(value):  # unary plus
            raise EvalError(f"invalid operation: + {values.go_type(value)}")
        return value

    def children(self) -> Sequence[Node]:
        return (self.node,)


_COMPARISONS = frozenset({"<", ">", "<=", ">="})
_ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "**", "^"})
_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda a, b: b in a,
    "startsWith": str.startswith,
    "endsWith": str.endswith,
}


class Binary(Node):
    __slots__ = ("left", "operator", "right")

    def __init__(self, operator: str, left: Node, right: Node) -> None:
        self.operator, self.left, self.right = operator, left, right

    def evaluate(self, scope: Scope) -> Any:
        op = self.operator
        left = self.left.run(scope)
        if op in ("&&", "and"):  # expr checks the left side only, then yields the right
            return self.right.run(scope) if values.need_bool(op, left) else False
        if op in ("||", "or"):
            return True if values.need_bool(op, left) else self.right.run(scope)
        if op == "??":
            return self.right.run(scope) if values.is_nil(left) else left
        right = self.right.run(scope)
        if op == "==":
            return values.equal(left, right)
        if op == "!=":
            return not values.equal(left, right)
        if op in _COMPARISONS:
            return values.compare(op, left, right)
        if op in _ARITHMETIC:
            return values.arithmetic(op, left, right)
        if op == "in":
            return values.member_of(left, right)
        if op in _STRING_TESTS:
            if values.is_nil(left) or values.is_nil(right):
                return False
            test = _STRING_TESTS[op]
            return test(values.need_string(op, left), values.need_string(op, right))
        if op == "matches":
            if values.is_nil(left) or values.is_nil(right):
                return False
            from webhook.expression.regex import search

            return search(values.need_string(op, right), values.need_string(op, left))
        if op == "..":
            return _int_range(left, right)
        raise EvalError(f"unknown operator {op}")

    def children(self) -> Sequence[Node]:
        return (self.left, self.right)


MAX_RANGE = 100_000


def _int_range(low: Any, high: Any) -> list[int]:
    if (
        not (isinstance(low, int) and isinstance(high, int))
        or isinstance(low, bool)
        or isinstance(high, bool)
    ):
        raise EvalError(f"invalid operation: {values.go_type(low)} .. {values.go_type(high)}")
    if high - low + 1 > MAX_RANGE:
        raise EvalError(f"range {low}..{high} is longer than {MAX_RANGE} elements")
    return list(range(low, high + 1))


class Conditional(Node):
    __slots__ = ("condition", "otherwise", "then")

    def __init__(self, condition: Node, then: Node, otherwise: Node) -> None:
        self.condition, self.then, self.otherwise = condition, then, otherwise

    def evaluate(self, scope: Scope) -> Any:
        if values.need_bool("?:", self.condition.run(scope)):
            return self.then.run(scope)
        return self.otherwise.run(scope)

    def children(self) -> Sequence[Node]:
        return (self.condition, self.then, self.otherwise)


class ArrayLiteral(Node):
    __slots__ = ("items",)

    def __init__(self, items: list[Node]) -> None:
        self.items = items

    def evaluate(self, scope: Scope) -> Any:
        return [item.run(scope) for item in self.items]

    def children(self) -> Sequence[Node]:
        return self.items


class MapLiteral(Node):
    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Node, Node]]) -> None:
        self.pairs = pairs

    def evaluate(self, scope: Scope) -> Any:
        result: dict[str, Any] = {}
        for key_node, value_node in self.pairs:
            key = key_node.run(scope)
            if not isinstance(key, str):
                raise EvalError(f"a map key must be a string, not {values.go_type(key)}")
            result[key] = value_node.run(scope)
        return result

    def children(self) -> Sequence[Node]:
        return [n for pair in self.pairs for n in pair]


class Predicate(Node):
    """The closure argument of `all`, `filter`, `map`, ...: run per element."""

    __slots__ = ("body",)

    def __init__(self, body: Node) -> None:
        self.body = body

    def evaluate(self, scope: Scope) -> Any:
        raise EvalError("a predicate is only allowed as a builtin's argument")

    def call(self, scope: Scope, frame: dict[str, Any]) -> Any:
        scope.pointers.append(frame)
        try:
            return self.body.run(scope)
        finally:
            scope.pointers.pop()

    def children(self) -> Sequence[Node]:
        return (self.body,)


class Call(Node):
    __slots__ = ("arguments", "function", "name")

    def __init__(self, name: str, function: Callable[..., Any], arguments: list[Node]) -> None:
        self.name, self.function, self.arguments = name, function, arguments

    def evaluate(self, scope: Scope) -> Any:
        return self.function(scope, self.arguments)

    def children(self) -> Sequence[Node]:
        return self.arguments


class Let(Node):
    __slots__ = ("body", "name", "value")

    def __init__(self, name: str, value: Node, body: Node) -> None:
        self.name, self.value, self.body = name, value, body

    def evaluate(self, scope: Scope) -> Any:
        saved = scope.variables.get(self.name, _UNSET)
        scope.variables[self.name] = self.value.run(scope)
        try:
            return self.body.run(scope)
        finally:
            if saved is _UNSET:
                scope.variables.pop(self.name, None)
            else:
                scope.variables[self.name] = saved

    def children(self) -> Sequence[Node]:
        return (self.value, self.body)


class Sequence_(Node):
    """`a; b`: every expression runs, the last one is the value."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes

    def evaluate(self, scope: Scope) -> Any:
        result: Any = None
        for node in self.nodes:
            result = node.run(scope)
        return result

    def children(self) -> Sequence[Node]:
        return self.nodes


_UNSET = object()
