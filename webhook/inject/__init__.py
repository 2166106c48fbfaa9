"""Pod mutation: attach executor plugins to Argo agent pods, as a JSON Patch.

Pure (no Flask, no I/O): `inject(pod, plugins, policies=..., namespace=...)` returns an
`Injection` with the RFC 6902 operations, the warnings and what was injected.
"""

from __future__ import annotations

from webhook.inject.hardening import Hardened, SidecarPolicies, apply_default, harden
from webhook.inject.pod import (
    AGENT_COMPONENT,
    COMPONENT_LABEL,
    INJECT_LABEL,
    PLUGINS_ANNOTATION,
    STATUS_ANNOTATION,
    STATUS_INJECTED,
    Injection,
    Result,
    inject,
    token_secret_name,
    token_volume_name,
)

__all__ = [
    "AGENT_COMPONENT",
    "COMPONENT_LABEL",
    "INJECT_LABEL",
    "PLUGINS_ANNOTATION",
    "STATUS_ANNOTATION",
    "STATUS_INJECTED",
    "Hardened",
    "Injection",
    "Result",
    "SidecarPolicies",
    "apply_default",
    "harden",
    "inject",
    "token_secret_name",
    "token_volume_name",
]
