"""expr-lang's run-time semantics (`vm/runtime`) on Python values.

Values: `None` is nil, `bool`, `int` (Go's 64-bit int: results wrap), `float`
(float64), `str`, `bytes` ([]byte), `list` (an array; `StringList` is a Go `[]string`,
such as an HTTP header's values), `dict` (a map; `GoMap` answers a missing key with its
element type's zero value, as Go maps do).

What expr does, and so what this does: `==` never fails (ints and floats compare by
value, different types are unequal, nil equals nil); `<` and arithmetic mix ints and
floats but fail on anything else; `/` is always float division, `%` ints only; `in`
looks in arrays by `==` and in maps by key; strings index and measure in bytes (Go).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

_INT_MIN, _INT_SPAN = -(2**63), 2**64


class StringList(list[str]):
    """A Go `[]string` (HTTP header values): `nil` when missing (`NIL_STRINGS`)."""


class _NilStrings(StringList):
    """The zero value of `[]string`: empty, and equal to nil."""


NIL_STRINGS = _NilStrings()


class GoMap(dict[str, Any]):
    """A Go map: a missing key reads as the zero value of the element type."""

    def __init__(self, items: Mapping[str, Any], zero: Any = None) -> None:
        super().__init__(items)
        self.zero = zero


class EvalError(Exception):
    """A run-time failure without a position; the node that raised it adds one."""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_nil(value: Any) -> bool:
    return value is None or isinstance(value, _NilStrings)


def wrap_int(value: int) -> int:
    """Go's int64 arithmetic wraps around."""
    if _INT_MIN <= value < -_INT_MIN:
        return value
    return (value - _INT_MIN) % _INT_SPAN + _INT_MIN


def go_type(value: Any) -> str:
    """Go's `%T` of the value, for error messages ("invalid operation: string + int")."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "[]uint8"
    if isinstance(value, StringList):
        return "[]string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, GoMap) and isinstance(value.zero, StringList):
        return "http.Header"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def expr_type(value: Any) -> str:
    """expr's `type()` builtin."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes | list):
        return "array"
    if isinstance(value, dict):
        return "map"
    return "unknown"


def equal(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if is_nil(a) and is_nil(b):
        return True
    if is_nil(a) or is_nil(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, bytes) and isinstance(b, bytes):
        return a == b
    return False


def compare(operator: str, a: Any, b: Any) -> bool:
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        if operator == "<":
            return bool(a < b)
        if operator == ">":
            return bool(a > b)
        if operator == "<=":
            return bool(a <= b)
        return bool(a >= b)
    raise EvalError(f"invalid operation: {go_type(a)} {operator} {go_type(b)}")


def arithmetic(operator: str, a: Any, b: Any) -> Any:
    if operator == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (is_number(a) and is_number(b)):
        raise EvalError(f"invalid operation: {go_type(a)} {operator} {go_type(b)}")
    if operator in ("**", "^"):
        try:
            return math.pow(float(a), float(b))
        except OverflowError:
            return math.inf
        except ValueError:
            return math.nan
    if operator == "/":
        if b == 0:
            if a == 0 or (isinstance(a, float) and math.isnan(a)):
                return math.nan
            return math.copysign(math.inf, a) * (
                math.copysign(1.0, b) if isinstance(b, float) else 1.0
            )
        return float(a) / float(b)
    if operator == "%":
        if not (isinstance(a, int) and isinstance(b, int)):
            raise EvalError(f"invalid operation: {go_type(a)} % {go_type(b)}")
        if b == 0:
            raise EvalError("integer divide by zero")
        remainder = abs(a) % abs(b)  # Go truncates: the sign of the dividend
        return -remainder if a < 0 else remainder
    if isinstance(a, int) and isinstance(b, int):
        if operator == "+":
            return wrap_int(a + b)
        if operator == "-":
            return wrap_int(a - b)
        return wrap_int(a * b)
    x, y = float(a), float(b)
    if operator == "+":
        return x + y
    if operator == "-":
        return x - y
    return x * y


def negate(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return wrap_int(-value)
    if isinstance(value, float):
        return -value
    raise EvalError(f"invalid operation: - {go_type(value)}")


def to_index(value: Any) -> int:
    if is_number(value):
        return int(value)
    raise EvalError(f"invalid operation: int({go_type(value)})")


def fetch(container: Any, key: Any) -> Any:
    """`a.b` and `a[b]` (runtime.Fetch)."""
    if isinstance(container, dict):
        if key is not None and not isinstance(key, str):
            raise EvalError(f"cannot use {go_type(key)} as a key of {go_type(container)}")
        if key in container:
            return container[key]
        return container.zero if isinstance(container, GoMap) else None
    if isinstance(container, str | bytes | list):
        sequence: bytes | list[Any] = (
            container.encode() if isinstance(container, str) else container
        )
        index = to_index(key)
        length = len(sequence)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise EvalError(f"index out of range: {index} (array length is {length})")
        return sequence[index]
    raise EvalError(f"cannot fetch {format_value(key)} from {go_type(container)}")


def slice_of(container: Any, start: Any, stop: Any) -> Any:
    if not isinstance(container, str | bytes | list):
        raise EvalError(f"cannot slice {go_type(container)}")
    sequence: Any = container.encode() if isinstance(container, str) else container
    length = len(sequence)
    a = 0 if start is None else to_index(start)
    b = length if stop is None else to_index(stop)
    a = max(0, a + length if a < 0 else a)
    b = min(length, max(0, b + length if b < 0 else b))
    a = min(a, b)
    part = sequence[a:b]
    if isinstance(container, str):
        return part.decode("utf-8", "replace")
    if isinstance(container, StringList):
        return StringList(part)
    return part


def member_of(needle: Any, haystack: Any) -> bool:
    """`needle in haystack` (runtime.In)."""
    if is_nil(haystack):
        return False
    if isinstance(haystack, list):
        return any(equal(item, needle) for item in haystack)
    if isinstance(haystack, bytes):
        return any(equal(item, needle) for item in haystack)
    if isinstance(haystack, dict):
        if needle is not None and not isinstance(needle, str):
            raise EvalError(f"cannot use {go_type(needle)} as a key of {go_type(haystack)}")
        return (needle or "") in haystack
    raise EvalError(f'operator "in" not defined on {go_type(haystack)}')


def need_string(operator: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise EvalError(f"invalid operation: {operator} on {go_type(value)} (expected string)")


def need_bool(operator: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"invalid operation: {operator} on {go_type(value)} (expected bool)")


def length(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes | list | dict):
        return len(value)
    raise EvalError(f"invalid argument for len (type {go_type(value)})")


def format_float(value: float) -> str:
    """Go's `%v` of a float64: strconv's shortest 'g' (exponent form from 1e+06 and below
    1e-04: `1e+06`, `1.5`, `100000`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len("".join(map(str, digit_tuple))) + exponent  # digits before the point
    prefix = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        power = point - 1
        return f"{prefix}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def format_value(value: Any) -> str:
    """Go's `%v`: what `string(x)` and error messages show."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, list):
        return "[" + " ".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{format_value(value[k])}" for k in sorted(value)) + "]"
    return str(value)
