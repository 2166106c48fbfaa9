"""The two errors of the Kubernetes boundary.

`KubeApiError` is every failed API call: the API server's answer (its `Status` object,
kept whole in `.status`, with `.code`, `.reason`, `.message` read from it) or a
transport failure (`code` 0: refused connection, timeout, TLS). The underlying
exception stays as `__cause__` (`raise ... from exc`). The properties say what a
caller usually asks: retry (`transient`), relist (`gone`), re-read and retry
(`conflict`), someone else created it (`already_exists`), `not_found`.

`KubeConfigError` is "no usable cluster configuration", with a one-line message.
"""

from __future__ import annotations

from typing import Any

from webhook.errors import GuardError

JsonObject = dict[str, Any]


class KubeConfigError(GuardError):
    """No usable cluster configuration (no kubeconfig, not in a pod, or a broken file)."""


class KubeApiError(GuardError):
    """A failed API call: the API server's Status, or a transport failure (code 0)."""

    def __init__(
        self, code: int, reason: str, message: str, status: JsonObject | None = None
    ) -> None:
        self.code = code
        self.reason = reason
        self.message = message
        # The API server's `Status` object as it sent it ({} for a transport failure
        # or an answer that was not a Status): `details` names the object and causes.
        self.status: JsonObject = status if status is not None else {}
        super().__init__(message if not reason else f"{reason}: {message}")

    @classmethod
    def from_status(cls, status: JsonObject, http_code: int = 0) -> KubeApiError:
        """From a `Status` object (an error answer's body or a watch ERROR event)."""
        code = status.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = http_code
        reason = str(status.get("reason") or "")
        message = str(status.get("message") or reason or f"HTTP {code}")
        return cls(code, reason, message, status)

    @classmethod
    def transport(cls, exc: BaseException) -> KubeApiError:
        """A failure before any answer (code 0; always transient)."""
        return cls(0, "", f"{type(exc).__name__}: {exc}")

    @property
    def transient(self) -> bool:
        """Worth retrying: transport failures, 429, 5xx (spec 6.5 retries "transient
        errors only"). Argo retries a 500 only when its text names a passing etcd
        state; here every 5xx is retried except etcd's "request is too large", Argo's
        own example of a failure that no retry fixes."""
        if "request is too large" in self.message:
            return False
        return self.code == 0 or self.code == 429 or self.code >= 500

    @property
    def gone(self) -> bool:
        """410: the resourceVersion (of a watch, or a list's continue token) is too old;
        list again (spec 6.1)."""
        return self.code == 410

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        """409 Conflict: the object changed since it was read (a stale
        `metadata.resourceVersion`); read it again and retry."""
        return self.code == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        """409 AlreadyExists: a create found an object of that name."""
        return self.code == 409 and self.reason == "AlreadyExists"
