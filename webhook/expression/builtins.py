"""expr-lang's builtin functions (`builtin/builtin.go`) that make sense in a condition
on an HTTP response: strings, numbers, arrays, maps, JSON, base64, and the predicate
functions (`all`, `any`, `filter`, `map`, ...). Date functions, bit operations,
`groupBy`, `sortBy` and `reduce` are refused when the expression is compiled, with a
message saying so, rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.expression import values
from webhook.expression.nodes import Node, Predicate, Scope
from webhook.expression.values import EvalError, StringList

_DECIMAL = re.compile(r"[+-]?[0-9]+")
MAX_STRING = 1 << 20  # bytes a builtin may build (repeat, join, replace)


@dataclass(frozen=True, slots=True)
class Builtin:
    function: Callable[[Scope, Sequence[Node]], Any]
    min_args: int
    max_args: int
    predicate_at: int | None = None  # the argument parsed as a predicate
    predicate_optional: bool = False


BUILTINS: dict[str, Builtin] = {}
UNSUPPORTED = frozenset(
    {
        "now",
        "duration",
        "date",
        "timezone",
        "groupBy",
        "sortBy",
        "reduce",
        "bitand",
        "bitor",
        "bitxor",
        "bitnand",
        "bitnot",
        "bitshl",
        "bitshr",
        "bitushr",
    }
)


def _eager(
    name: str, min_args: int, max_args: int | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function of already evaluated arguments."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(scope: Scope, arguments: Sequence[Node]) -> Any:
            return function(*(argument.run(scope) for argument in arguments))

        BUILTINS[name] = Builtin(call, min_args, min_args if max_args is None else max_args)
        return function

    return decorate


def _string(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise EvalError(f"{name}: expected string, got {values.go_type(value)}")


def _array(name: str, value: Any) -> list[Any]:
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list):
        return value
    if values.is_nil(value):
        return []
    raise EvalError(f"{name}: expected array, got {values.go_type(value)}")


def _number(name: str, value: Any) -> int | float:
    if values.is_number(value):
        return value  # type: ignore[no-any-return]
    raise EvalError(f"{name}: expected number, got {values.go_type(value)}")


def _bounded(text: str) -> str:
    if len(text) > MAX_STRING:
        raise EvalError(f"result longer than {MAX_STRING} characters")
    return text


# ---------------------------------------------------------------- strings


@_eager("len", 1)
def _len(value: Any) -> int:
    return values.length(value)


@_eager("lower", 1)
def _lower(value: Any) -> str:
    return _string("lower", value).lower()


@_eager("upper", 1)
def _upper(value: Any) -> str:
    return _string("upper", value).upper()


@_eager("trim", 1, 2)
def _trim(value: Any, chars: Any = None) -> str:
    return _string("trim", value).strip(None if chars is None else _string("trim", chars))


@_eager("trimPrefix", 2)
def _trim_prefix(value: Any, prefix: Any) -> str:
    return _string("trimPrefix", value).removeprefix(_string("trimPrefix", prefix))


@_eager("trimSuffix", 2)
def _trim_suffix(value: Any, suffix: Any) -> str:
    return _string("trimSuffix", value).removesuffix(_string("trimSuffix", suffix))


@_eager("hasPrefix", 2)
def _has_prefix(value: Any, prefix: Any) -> bool:
    return _string("hasPrefix", value).startswith(_string("hasPrefix", prefix))


@_eager("hasSuffix", 2)
def _has_suffix(value: Any, suffix: Any) -> bool:
    return _string("hasSuffix", value).endswith(_string("hasSuffix", suffix))


@_eager("split", 2, 3)
def _split(value: Any, separator: Any, count: Any = -1) -> list[Any]:
    text, sep = _string("split", value), _string("split", separator)
    n = values.to_index(count)
    if n == 0:
        return []
    if sep == "":
        parts = list(text)
        return parts if n < 0 or n >= len(parts) else [*parts[: n - 1], "".join(parts[n - 1 :])]
    return list(text.split(sep, -1 if n < 0 else n - 1))


@_eager("replace", 3)
def _replace(value: Any, old: Any, new: Any) -> str:
    return _bounded(
        _string("replace", value).replace(_string("replace", old), _string("replace", new))
    )


@_eager("repeat", 2)
def _repeat(value: Any, count: Any) -> str:
    text, n = _string("repeat", value), values.to_index(count)
    if n < 0:
        raise EvalError("strings: negative Repeat count")
    if len(text) * n > MAX_STRING:
        raise EvalError(f"result longer than {MAX_STRING} characters")
    return text * n


@_eager("indexOf", 2)
def _index_of(value: Any, part: Any) -> int:  # byte offsets, as Go's strings.Index
    return _string("indexOf", value).encode().find(_string("indexOf", part).encode())


@_eager("lastIndexOf", 2)
def _last_index_of(value: Any, part: Any) -> int:
    return _string("lastIndexOf", value).encode().rfind(_string("lastIndexOf", part).encode())


# ---------------------------------------------------------------- conversions


@_eager("int", 1)
def _int(value: Any) -> int:
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):  # Go's strconv.Atoi: no spaces, no `_`
            raise EvalError(f'strconv.Atoi: parsing "{value}": invalid syntax')
        return values.wrap_int(int(value, 10))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise EvalError(f"invalid operation: int({values.format_value(value)})")
        return values.wrap_int(int(value))
    if values.is_number(value):
        return int(value)
    raise EvalError(f"invalid operation: int({values.go_type(value)})")


@_eager("float", 1)
def _float(value: Any) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise EvalError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    if values.is_number(value):
        return float(value)
    raise EvalError(f"invalid operation: float({values.go_type(value)})")


@_eager("string", 1)
def _to_string(value: Any) -> str:
    return values.format_value(value)


@_eager("type", 1)
def _type(value: Any) -> str:
    return values.expr_type(value)


@_eager("toJSON", 1)
def _to_json(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=list)
    except (TypeError, ValueError) as exc:
        raise EvalError(f"toJSON: {exc}") from None


@_eager("fromJSON", 1)
def _from_json(value: Any) -> Any:
    # Go's encoding/json decodes every number into `any` as a float64
    try:
        return json.loads(_string("fromJSON", value), parse_int=float)
    except ValueError as exc:
        raise EvalError(f"fromJSON: {exc}") from None


@_eager("toBase64", 1)
def _to_base64(value: Any) -> str:
    return base64.b64encode(_string("toBase64", value).encode()).decode()


@_eager("fromBase64", 1)
def _from_base64(value: Any) -> str:
    try:
        return base64.b64decode(_string("fromBase64", value), validate=True).decode(
            "utf-8", "replace"
        )
    except (binascii.Error, ValueError) as exc:
        raise EvalError(f"fromBase64: {exc}") from None


# ---------------------------------------------------------------- numbers


@_eager("abs", 1)
def _abs(value: Any) -> int | float:
    return abs(_number("abs", value))


@_eager("ceil", 1)
def _ceil(value: Any) -> float:
    return float(math.ceil(_number("ceil", value)))


@_eager("floor", 1)
def _floor(value: Any) -> float:
    return float(math.floor(_number("floor", value)))


@_eager("round", 1)
def _round(value: Any) -> float:
    number = float(_number("round", value))  # half away from zero, as Go's math.Round
    return math.copysign(math.floor(abs(number) + 0.5), number)


def _flat_numbers(name: str, arguments: Sequence[Any]) -> list[int | float]:
    numbers: list[int | float] = []
    for argument in arguments:
        if isinstance(argument, list):
            numbers.extend(_flat_numbers(name, argument))
        else:
            numbers.append(_number(name, argument))
    return numbers


@_eager("max", 1, 64)
def _max(*arguments: Any) -> Any:
    numbers = _flat_numbers("max", arguments)
    return max(numbers) if numbers else None


@_eager("min", 1, 64)
def _min(*arguments: Any) -> Any:
    numbers = _flat_numbers("min", arguments)
    return min(numbers) if numbers else None


@_eager("mean", 1)
def _mean(value: Any) -> float:
    numbers = _flat_numbers("mean", _array("mean", value))
    return sum(numbers) / len(numbers) if numbers else 0.0


@_eager("median", 1)
def _median(value: Any) -> float:
    numbers = sorted(_flat_numbers("median", _array("median", value)))
    if not numbers:
        return 0.0
    middle = len(numbers) // 2
    if len(numbers) % 2:
        return float(numbers[middle])
    return (numbers[middle - 1] + numbers[middle]) / 2


# ---------------------------------------------------------------- arrays and maps


@_eager("first", 1)
def _first(value: Any) -> Any:
    items = _array("first", value)
    return items[0] if items else None


@_eager("last", 1)
def _last(value: Any) -> Any:
    items = _array("last", value)
    return items[-1] if items else None


@_eager("take", 2)
def _take(value: Any, count: Any) -> list[Any]:
    return list(_array("take", value)[: max(0, values.to_index(count))])


@_eager("reverse", 1)
def _reverse(value: Any) -> list[Any]:
    return list(reversed(_array("reverse", value)))


@_eager("uniq", 1)
def _uniq(value: Any) -> list[Any]:
    result: list[Any] = []
    for item in _array("uniq", value):
        if not any(values.equal(item, seen) for seen in result):
            result.append(item)
    return result


@_eager("concat", 1, 64)
def _concat(*arrays: Any) -> list[Any]:
    return [item for array in arrays for item in _array("concat", array)]


@_eager("flatten", 1)
def _flatten(value: Any) -> list[Any]:
    result: list[Any] = []
    for item in _array("flatten", value):
        result.extend(_flatten(item) if isinstance(item, list) else [item])
    return result


@_eager("sort", 1, 2)
def _sort(value: Any, order: Any = "asc") -> list[Any]:
    items = list(_array("sort", value))
    if order not in ("asc", "desc"):
        raise EvalError(f'sort: unknown order {values.format_value(order)} (use "asc" or "desc")')
    if all(values.is_number(i) for i in items) or all(isinstance(i, str) for i in items):
        return sorted(items, reverse=order == "desc")
    raise EvalError("sort: the array must hold only numbers or only strings")


@_eager("join", 1, 2)
def _join(value: Any, separator: Any = "") -> str:
    parts = [_string("join", item) for item in _array("join", value)]
    return _bounded(_string("join", separator).join(parts))


@_eager("keys", 1)
def _keys(value: Any) -> list[Any]:
    if not isinstance(value, dict):
        raise EvalError(f"keys: expected map, got {values.go_type(value)}")
    return list(value)


@_eager("values", 1)
def _values(value: Any) -> list[Any]:
    if not isinstance(value, dict):
        raise EvalError(f"values: expected map, got {values.go_type(value)}")
    return list(value.values())


@_eager("toPairs", 1)
def _to_pairs(value: Any) -> list[Any]:
    if not isinstance(value, dict):
        raise EvalError(f"toPairs: expected map, got {values.go_type(value)}")
    return [[k, v] for k, v in value.items()]


@_eager("fromPairs", 1)
def _from_pairs(value: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in _array("fromPairs", value):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise EvalError("fromPairs: expected an array of [key, value] pairs")
        result[pair[0]] = pair[1]
    return result


@_eager("get", 2)
def _get(value: Any, key: Any) -> Any:
    try:
        return values.fetch(value, key)
    except EvalError:
        return None


# ---------------------------------------------------------------- predicates


def _predicate(
    name: str, optional: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(scope: Scope, arguments: Sequence[Node]) -> Any:
            items = _array(name, arguments[0].run(scope))
            predicate = arguments[1] if len(arguments) > 1 else None
            assert predicate is None or isinstance(predicate, Predicate)
            return function(scope, items, predicate)

        BUILTINS[name] = Builtin(
            call, 1 if optional else 2, 2, predicate_at=1, predicate_optional=optional
        )
        return function

    return decorate


def _each(scope: Scope, items: list[Any], predicate: Predicate | None, name: str) -> list[Any]:
    results: list[Any] = []
    for index, item in enumerate(items):
        results.append(
            item if predicate is None else predicate.call(scope, {"#": item, "index": index})
        )
    return results


def _truth(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"{name}: the predicate must return a bool, got {values.go_type(value)}")


@_predicate("all")
def _all(scope: Scope, items: list[Any], predicate: Predicate) -> bool:
    return all(
        _truth("all", predicate.call(scope, {"#": x, "index": i})) for i, x in enumerate(items)
    )


@_predicate("any")
def _any(scope: Scope, items: list[Any], predicate: Predicate) -> bool:
    return any(
        _truth("any", predicate.call(scope, {"#": x, "index": i})) for i, x in enumerate(items)
    )


@_predicate("none")
def _none(scope: Scope, items: list[Any], predicate: Predicate) -> bool:
    return not any(
        _truth("none", predicate.call(scope, {"#": x, "index": i})) for i, x in enumerate(items)
    )


@_predicate("one")
def _one(scope: Scope, items: list[Any], predicate: Predicate) -> bool:
    return sum(_truth("one", r) for r in _each(scope, items, predicate, "one")) == 1


@_predicate("filter")
def _filter(scope: Scope, items: list[Any], predicate: Predicate) -> list[Any]:
    return [
        x
        for i, x in enumerate(items)
        if _truth("filter", predicate.call(scope, {"#": x, "index": i}))
    ]


@_predicate("map")
def _map(scope: Scope, items: list[Any], predicate: Predicate) -> list[Any]:
    return _each(scope, items, predicate, "map")


@_predicate("count", optional=True)
def _count(scope: Scope, items: list[Any], predicate: Predicate | None) -> int:
    return sum(_truth("count", r) for r in _each(scope, items, predicate, "count"))


@_predicate("sum", optional=True)
def _sum(scope: Scope, items: list[Any], predicate: Predicate | None) -> int | float:
    total: int | float = 0
    for value in _each(scope, items, predicate, "sum"):
        total = values.arithmetic("+", total, _number("sum", value))
    return total


def _finder(name: str, *, last: bool, index: bool) -> None:
    def find(scope: Scope, items: list[Any], predicate: Predicate) -> Any:
        order = range(len(items) - 1, -1, -1) if last else range(len(items))
        for i in order:
            if _truth(name, predicate.call(scope, {"#": items[i], "index": i})):
                return i if index else items[i]
        return -1 if index else None

    _predicate(name)(find)


_finder("find", last=False, index=False)
_finder("findIndex", last=False, index=True)
_finder("findLast", last=True, index=False)
_finder("findLastIndex", last=True, index=True)

__all__ = ["BUILTINS", "UNSUPPORTED", "Builtin", "StringList"]
