"""What the scanner does, counted: the proof that a scan is linear in its input.

Every pass the scanner makes over a piece of text (a regular-expression call, a
predicate judging a candidate, a walk along a name) reports how many characters it was
given. Tests and benchmarks switch counting on around a scan and check that the total
grows like the input, not faster::

    with counting() as work:
        scan(obj)
    work.passes, work.chars

Counting is off by default (one attribute test per pass). It is meant for tests and
benchmarks: scans running in other threads at the same time are counted too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Work:
    """Passes over text and the characters they were given."""

    __slots__ = ("chars", "passes")

    def __init__(self) -> None:
        self.passes = 0
        self.chars = 0

    def add(self, chars: int) -> None:
        self.passes += 1
        self.chars += chars

    def __repr__(self) -> str:
        return f"Work(passes={self.passes}, chars={self.chars})"


current: Work | None = None


def tally(chars: int) -> None:
    """Record one pass over `chars` characters (nothing unless counting is on)."""
    if current is not None:
        current.add(chars)


@contextmanager
def counting() -> Iterator[Work]:
    """Count the scanner's passes inside the `with` block."""
    global current
    outer = current
    work = Work()
    current = work
    try:
        yield work
    finally:
        current = outer
