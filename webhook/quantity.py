"""Kubernetes resource quantities (`100m`, `64Mi`, `1.5`, `2e3`), parsed exactly.

Grammar from `k8s.io/apimachinery/pkg/api/resource`: a signed decimal number followed
by a binary suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix (n u m "" k M G T P E) or a
decimal exponent (e3, E-2). Decimal arithmetic, so `0.1` and `100m` compare equal.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


class QuantityError(ValueError):
    pass


def parse_quantity(value: object) -> Decimal:
    """The quantity's value in base units; QuantityError if it is not a quantity."""
    if isinstance(value, str):
        return _parse_text(value)  # cached: the same few strings come again and again
    if isinstance(value, bool):
        raise QuantityError("must be a quantity such as 100m or 64Mi, not a boolean")
    if isinstance(value, int | float):
        return Decimal(str(value))
    raise QuantityError("must be a quantity such as 100m or 64Mi")


@lru_cache(maxsize=1024)
def _parse_text(value: str) -> Decimal:
    text = value.strip()
    if not text:
        raise QuantityError("must not be empty")
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"{value!r} is not a quantity (examples: 100m, 0.5, 64Mi, 1Gi)")
    number_text, suffix = match.groups()
    try:
        number = Decimal(number_text)
    except InvalidOperation:
        raise QuantityError(f"{value!r} is not a quantity") from None
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    exponent = _EXPONENT.match(suffix)
    if exponent:
        return number.scaleb(int(exponent.group(1)))
    raise QuantityError(
        f"{value!r} has an unknown suffix {suffix!r} (use m, k, M, G or Ki, Mi, Gi, ...)"
    )
