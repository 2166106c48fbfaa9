"""JSON logs: one line per AdmissionReview, and JSON for every other log line too.

The per-review line is on the hot path, so it skips `logging` (record, formatter and
handler-lock chains cost ~15-20 µs): it is one `json.dumps` and one `os.write` of a
single line, which the kernel does not interleave with other writers' lines. It
never contains the object, its `oldObject`, `userInfo` or a violation message (which
may quote values): only identifiers, the verdict and the violated policies with paths.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from webhook.admission import Outcome

MAX_FIELD_CHARS = 253  # a Kubernetes name is at most 253 characters
MAX_LOGGED_VIOLATIONS = 20

# Attributes every LogRecord has; anything else was passed with `extra=`.
_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _short(value: str) -> str:
    return value if len(value) <= MAX_FIELD_CHARS else value[:MAX_FIELD_CHARS] + "…"


class ReviewLog:
    """Writes the per-review line to a file descriptor (stderr by default)."""

    def __init__(self, fd: int | None = None, *, enabled: bool = True) -> None:
        self.fd = sys.stderr.fileno() if fd is None else fd
        self.enabled = enabled

    def line(self, webhook: str, outcome: Outcome, seconds: float) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": "info",
            "msg": "admission review",
            "webhook": webhook,
            "uid": _short(outcome.uid),
            "kind": _short(outcome.kind),
            "namespace": _short(outcome.namespace),
            "name": _short(outcome.name),
            "operation": outcome.operation,
            "allowed": outcome.allowed,
            "durationMs": round(seconds * 1000.0, 3),
        }
        if outcome.sub_resource:
            entry["subResource"] = _short(outcome.sub_resource)
        if outcome.dry_run:
            entry["dryRun"] = True
        if outcome.violations:
            entry["violations"] = [
                {"policy": v.policy, "action": v.action.value, "path": _short(v.path)}
                for v in outcome.violations[:MAX_LOGGED_VIOLATIONS]
            ]
            entry["violationCount"] = len(outcome.violations)
        injection = outcome.injection
        if injection is not None and injection.agent_pod:
            entry["injection"] = injection.result.value
            if injection.injected:
                entry["injected"] = [_short(n) for n in injection.injected]
            if injection.skipped:
                entry["skipped"] = [_short(n) for n in injection.skipped]
            if injection.patch:
                entry["patchOps"] = len(injection.patch)
        if outcome.error:
            entry["level"] = "error"
            entry["error"] = outcome.error
        return entry

    def write(self, webhook: str, outcome: Outcome, seconds: float) -> None:
        if not self.enabled:
            return
        data = (json.dumps(self.line(webhook, outcome, seconds), ensure_ascii=True) + "\n").encode()
        with contextlib.suppress(OSError):  # a closed log pipe must not fail the review
            os.write(self.fd, data)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra}` on one line; exceptions as fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["stack"] = traceback.format_exception(exc)[-3:]
        return json.dumps(entry, default=str, ensure_ascii=True)


class WarningsToLog:
    """Python warnings (urllib3's `InsecureRequestWarning` with a kubeconfig that skips
    TLS verification, deprecations from libraries) as JSON log lines, once per category.

    Python prints them as plain text on stderr, in the middle of the JSON lines; a
    warning raised on every API call would also repeat on every call. The first of each
    category is logged with its text and origin, the rest are counted, not printed.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.seen: dict[str, int] = {}

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        kind = category.__name__
        self.seen[kind] = self.seen.get(kind, 0) + 1
        if self.seen[kind] > 1:
            return
        self.logger.warning(
            str(message),
            extra={"category": kind, "origin": f"{filename}:{lineno}", "repeats": "not logged"},
        )


def configure(level: str = "info") -> None:
    """JSON lines on stderr for the `webhook` loggers (gunicorn's go through `JsonLogger`),
    and for Python warnings, so that every stderr line is one JSON object."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("webhook")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    # The filters stay as they are (urllib3 sets "always" for its security warnings);
    # the hook decides what repeats.
    warnings.showwarning = WarningsToLog(logging.getLogger("webhook.warnings"))
