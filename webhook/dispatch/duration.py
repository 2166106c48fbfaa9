"""Go's `time.ParseDuration`, exactly (spec section 6.6).

A plugin's `requeue` is a `metav1.Duration`: in JSON a Go duration string such as
`"30s"`, `"2m"` or `"1h30m"`. Argo decodes it with `time.ParseDuration`, so this is a
line-by-line port of that function (Go `src/time/format.go`), including its error
messages, because a bad requeue is a fatal decode error whose text becomes the node's
message.
"""

from __future__ import annotations

_INVALID = "time: invalid duration "
_MAX_UINT63 = 1 << 63

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC Greek letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}


class DurationError(ValueError):
    """`time.ParseDuration` refused the string; the message is Go's."""


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def parse_go_duration(text: str) -> int:
    """Nanoseconds for a Go duration string; raises `DurationError` with Go's message."""
    original = text
    invalid = DurationError(_INVALID + _quote(original))
    negative = False
    if text and text[0] in "-+":
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":  # the only unit-less value Go accepts
        return 0
    if not text:
        raise invalid
    total = 0
    while text:
        if not (text[0] == "." or (text[0].isascii() and text[0].isdigit())):
            raise invalid
        before = len(text)
        whole, text = _leading_int(text, invalid)
        consumed_whole = before != len(text)
        fraction, scale, consumed_fraction = 0, 1.0, False
        if text.startswith("."):
            text = text[1:]
            before = len(text)
            fraction, scale, text = _leading_fraction(text)
            consumed_fraction = before != len(text)
        if not consumed_whole and not consumed_fraction:
            raise invalid
        end = 0
        while end < len(text) and not (text[end] == "." or "0" <= text[end] <= "9"):
            end += 1
        if end == 0:
            raise DurationError("time: missing unit in duration " + _quote(original))
        unit_name, text = text[:end], text[end:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise DurationError(
                f"time: unknown unit {_quote(unit_name)} in duration {_quote(original)}"
            )
        if whole > _MAX_UINT63 // unit:
            raise invalid
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > _MAX_UINT63:
                raise invalid
        total += value
        if total > _MAX_UINT63:
            raise invalid
    if negative:
        return -total
    if total > _MAX_UINT63 - 1:
        raise invalid
    return total


def _leading_int(text: str, invalid: DurationError) -> tuple[int, str]:
    value = 0
    index = 0
    while index < len(text) and "0" <= text[index] <= "9":
        if value > _MAX_UINT63 // 10:
            raise invalid
        value = value * 10 + int(text[index])
        if value > _MAX_UINT63:
            raise invalid
        index += 1
    return value, text[index:]


def _leading_fraction(text: str) -> tuple[int, float, str]:
    """Digits after the dot; like Go, digits past int64 precision are dropped, not errors."""
    value = 0
    scale = 1.0
    overflow = False
    index = 0
    while index < len(text) and "0" <= text[index] <= "9":
        if not overflow:
            if value > (_MAX_UINT63 - 1) // 10:
                overflow = True
            else:
                candidate = value * 10 + int(text[index])
                if candidate >= _MAX_UINT63:
                    overflow = True
                else:
                    value = candidate
                    scale *= 10
        index += 1
    return value, scale, text[index:]
