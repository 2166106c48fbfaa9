"""Errors of the expression language, each one line with its position (`line:column`),
as expr-lang reports them ("unknown name foo (1:1)")."""

from __future__ import annotations

from webhook.errors import GuardError


def location(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` (columns count characters, as expr does)."""
    before = source[: max(0, min(offset, len(source)))]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return line, column


class ExpressionError(GuardError):
    """An expression that cannot be compiled or evaluated."""

    def __init__(self, message: str, source: str = "", offset: int | None = None) -> None:
        self.detail = message
        self.offset = offset
        if offset is not None:
            line, column = location(source, offset)
            message = f"{message} ({line}:{column})"
        super().__init__(message)


class ExpressionSyntaxError(ExpressionError):
    """Bad syntax, an unknown name or function, or limits exceeded: found before running."""


class ExpressionRuntimeError(ExpressionError):
    """A value of the wrong type, an index out of range, ...: found while evaluating."""
