"""`matches`: Go's regexp is RE2, so RE2 (google-re2) it is: the same syntax, and time
linear in the input, so a hostile pattern cannot stall the agent on a large body."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from webhook.expression.values import EvalError

MAX_PATTERN = 4096


@lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN:
        raise EvalError(f"regular expression longer than {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise EvalError(f"error parsing regexp: {reason}") from None


def check(pattern: str) -> None:
    """Raise EvalError if `pattern` is not a valid RE2 expression."""
    _compile(pattern)


def search(pattern: str, text: str) -> bool:
    """Go's `regexp.MatchString`: does the pattern match anywhere in `text`."""
    return _compile(pattern).search(text) is not None
