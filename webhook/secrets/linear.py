"""Regular-expression searches in linear time (RE2, through `google-re2`).

Python's `re` backtracks: a search such as `sk-[A-Za-z0-9_-]{20,}T3BlbkFJ` rescans the
rest of a value from every `sk-`, so a value made of them costs the square of its length.
RE2 never backtracks (a search is linear in the text), at the price of a higher cost
per call (~1.8 µs against ~0.2 µs for a short anchored `re` match, measured in
docs/secrets.md). So it is used where a pass covers a whole value: unanchored rule
searches, credentials in URLs and policy-supplied rules; anchored matches of the
built-in rules, which are bounded by the rule's length, stay with `re`.

RE2 has no look-around. The alphanumeric boundaries the rules are wrapped in
(`(?<![A-Za-z0-9.])...(?![A-Za-z0-9])`) are written as one consumed character on each
side, and the match proper is group 1; a search resumes at the end of group 1, so a
boundary character can close one match and open the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2

from webhook.secrets.work import tally

# Before a match: start of text or a character that is not alphanumeric or `.`;
# after it: end of text or a character that is not alphanumeric.
_BEFORE = r"(?:^|[^A-Za-z0-9.])"
_AFTER = r"(?:[^A-Za-z0-9]|$)"


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    return options


class LinearPattern:
    """One RE2 pattern; `spans(text)` yields the (start, end) of each match, in order,
    non-overlapping, with the same leftmost-first choice as Python's `re`."""

    __slots__ = ("_regexp", "source")

    def __init__(self, body: str, *, boundary: bool = False, before: str = "") -> None:
        """`body` is group 1 (its own groups are 2, 3...); `boundary` puts the rules'
        alphanumeric boundaries around it, `before` some other one-character context."""
        self.source = body
        wrapped = f"{_BEFORE}({body}){_AFTER}" if boundary else f"{before}({body})"
        self._regexp = re2.compile(wrapped, _options())

    @classmethod
    def compile(cls, body: str, *, boundary: bool = False) -> LinearPattern | None:
        """None when RE2 cannot express `body` (look-around, back-references...)."""
        try:
            return cls(body, boundary=boundary)
        except re2.error:
            return None

    def spans(self, text: str, group: int = 1) -> Iterator[tuple[int, int]]:
        """(start, end) of `group` in each match (group 1: the whole body)."""
        tally(len(text))
        if text.isascii():
            data = text.encode("ascii")
            pos = 0
            while True:
                m = self._regexp.search(data, pos)
                if m is None:
                    return
                end = m.end(1)
                if m.start(group) >= 0:
                    yield m.span(group)
                pos = end if end > pos else pos + 1
        else:  # UTF-8 offsets, mapped back to characters incrementally (one pass)
            data = text.encode("utf-8")
            pos = 0
            byte_mark = char_mark = 0
            while True:
                m = self._regexp.search(data, pos)
                if m is None:
                    return
                end = m.end(1)
                start, stop = m.span(group)
                if start >= 0:
                    char_start = char_mark + len(data[byte_mark:start].decode("utf-8", "replace"))
                    char_stop = char_start + len(data[start:stop].decode("utf-8", "replace"))
                    byte_mark, char_mark = stop, char_stop
                    yield char_start, char_stop
                pos = end if end > pos else pos + 1

    def search(self, text: str) -> bool:
        """Whether the pattern occurs in `text` at all."""
        return next(self.spans(text), None) is not None
