"""Bounds on one scan, so that the cost of a review does not depend on what it holds.

The passes of the scanner are linear (`work.py` proves it), but linear is not bounded:
an object can hold thousands of values that each reach the costly part of the
judgement (the allow list: is it a hash, an id, a name, a placeholder...), or thousands
of findings, each a message the API server carries back to `kubectl`. Two limits cap
that, the way gitleaks caps its report and Kyverno caps the size of a background scan:

- `findings`: the scan stops at this many findings; what was found is reported, and
  one more finding (rule `scan-limit`, listed first) says where the scan stopped.
- `judged_values`: at most this many values are judged by the entropy and the
  credential-name tests (value-format rules, private keys, URL credentials and
  assignments still run on every value); the first value left unjudged is named by a
  `scan-limit` finding.

Neither limit is near an ordinary manifest (of the 1,058 objects in `../shared/corpora`,
none has a value-judging count above 2); both are policy parameters (`limits.findings`,
`limits.judgedValues`).
"""

from __future__ import annotations

from dataclasses import dataclass

SCAN_LIMIT_RULE = "scan-limit"
DEFAULT_FINDINGS = 100
DEFAULT_JUDGED_VALUES = 1000


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """How much one scan may report and judge. `None` for no limit."""

    findings: int | None = DEFAULT_FINDINGS
    judged_values: int | None = DEFAULT_JUDGED_VALUES


UNLIMITED = ScanLimits(findings=None, judged_values=None)


class Budget:
    """The judgements one scan has left. Not shared between scans or threads."""

    __slots__ = ("judged", "left", "skipped")

    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.judged = 0
        self.skipped = 0

    def take(self) -> bool:
        """One value is about to be judged: True when the budget allows it."""
        if self.left is None:
            self.judged += 1
            return True
        if self.judged < self.left:
            self.judged += 1
            return True
        self.skipped += 1
        return False
