"""Error types shared by every layer.

Each error carries a one-line, user-facing message; the CLI and the web layer map
them to exit codes and HTTP statuses in exactly one place each.
"""

from __future__ import annotations


class GuardError(Exception):
    """Base class: a user-facing problem with a clear one-line message."""


class ManifestError(GuardError):
    """A file that cannot be read or parsed at all (CLI exit code 2)."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.detail = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class PolicyLoadError(GuardError):
    """A policy file that does not match the policy format; names file, policy and field."""

    def __init__(
        self, source: str, message: str, policy: str | None = None, field: str | None = None
    ) -> None:
        self.source = source
        self.policy = policy
        self.field = field
        self.detail = message
        parts = [source]
        if policy:
            parts.append(f"policy {policy!r}")
        if field:
            parts.append(f"field {field!r}")
        super().__init__(f"{': '.join(parts)}: {message}")


class PluginError(GuardError):
    """An ExecutorPlugin that Argo itself would refuse (FromConfigMap/ToConfigMap errors)."""
