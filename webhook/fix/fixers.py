"""What `fix` may change, per policy: a fixer registers itself under the policy id it
makes pass, and the rewrite never names one.

A fixer gets the plugin's container (a round-trip mapping: write into it in place) and
the settings, and returns what it changed, in words. It only writes what has one right
answer; a choice that is the author's (the image's user, a port, a tag, a name, where a
secret lives) is left alone and explained by `NO_SAFE_FIX` instead. A policy of one's
own with `fixes:` (JSON Patch `add` operations relative to the container) needs no
fixer: its `add`s fill what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ruamel.yaml.comments import CommentedSeq

from webhook.fix.roundtrip import ensure_map
from webhook.policy.model import Patch
from webhook.quantity import QuantityError, parse_quantity

RESOURCE_NAMES = ("cpu", "memory")


@dataclass(frozen=True, slots=True)
class FixSettings:
    """The values `fix` writes where a plugin has none (flags or a file can set them)."""

    requests: Mapping[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "64Mi"})
    limits: Mapping[str, str] = field(default_factory=lambda: {"cpu": "500m", "memory": "128Mi"})


Container = MutableMapping[str, Any]
Fixer = Callable[[Container, FixSettings], list[str]]

FIXERS: dict[str, Fixer] = {}


def fixer(policy_id: str) -> Callable[[Fixer], Fixer]:
    """Register the function as the fix for `policy_id`."""

    def register(function: Fixer) -> Fixer:
        if policy_id in FIXERS:
            raise ValueError(f"a fixer for {policy_id!r} is registered twice")
        FIXERS[policy_id] = function
        return function

    return register


# Why the other bundled policies have no mechanical fix: what the author must decide.
NO_SAFE_FIX: dict[str, str] = {
    "plugin-unique-ports": "the port is the plugin's address: pick a free one yourself",
    "no-inline-secrets": "move the value into a Secret and reference it with "
    "valueFrom.secretKeyRef (fix never handles a secret value)",
    "plugin-run-as-nobody": "uid 65534 cannot read the token (mode 0440, uid 8737): choose a "
    "uid your image runs as, such as 1000, or remove runAsUser",
    "plugin-image-pinned": "only you know which version to pin",
    "plugin-reserved-ports": "the port is the plugin's address: pick an unusual one yourself",
    "plugin-configmap-name": "renaming changes the plugin's name and service account",
    "plugin-service-account": "create the service account in every workflow namespace, or "
    "set automountServiceAccountToken: false if the plugin needs no API access",
    "plugin-format": "a misspelt or invalid field must be corrected by hand",
    "plugin-container-name": "renaming changes what the agent pod is built with",
    "plugin-ports": "a plugin's port must be chosen by its author",
    "argo-plugin-templates": "workflow templates are not rewritten by fix",
    "pod-security-restricted": "pods are not rewritten by fix",
    "agent-pod-injected": "agent pods are made by Argo, not written by hand",
}


# Fields a fixer leaves alone when the plugin wrote them itself, and why.
EXPLICIT_CHOICES: dict[str, str] = {
    "securityContext.runAsNonRoot": "the plugin asks for root (runAsNonRoot: false or "
    "runAsUser: 0): make its image run as a non-root user, then set runAsNonRoot: true",
    "securityContext.runAsUser": "runAsUser: 0 is root: make the image run as a non-root "
    "user (such as 1000), then set runAsUser to it or remove it",
    "securityContext.capabilities": "the plugin adds capabilities: remove those it can do without",
}


def _quantity(value: Any) -> Decimal | None:
    try:
        return parse_quantity(value)
    except (QuantityError, TypeError):
        return None


@fixer("plugin-resources")
def fix_resources(container: Container, settings: FixSettings) -> list[str]:
    """Requests and limits for cpu and memory where missing; a limit below its request
    is raised to the request (never the other way round)."""
    changed: list[str] = []
    resources = ensure_map(container, "resources")
    requests = ensure_map(resources, "requests")
    limits = ensure_map(resources, "limits")
    for name in RESOURCE_NAMES:
        if name not in requests:
            requests[name] = settings.requests[name]
            changed.append(f"resources.requests.{name}: {settings.requests[name]}")
        request = _quantity(requests[name])
        if name not in limits:
            default = settings.limits[name]
            written = _quantity(default)
            value = (
                default
                if request is None or written is None or written >= request
                else requests[name]
            )
            limits[name] = value
            changed.append(f"resources.limits.{name}: {value}")
            continue
        limit = _quantity(limits[name])
        if request is not None and limit is not None and limit < request:
            limits[name] = requests[name]
            changed.append(f"resources.limits.{name}: {requests[name]} (was below the request)")
    return changed


@fixer("plugin-security-context")
def fix_security_context(container: Container, settings: FixSettings) -> list[str]:
    """The restricted settings that have one right value. `runAsNonRoot` is only added
    where the plugin does not ask for root itself (runAsUser 0 or runAsNonRoot false:
    the image's user is the author's to change)."""
    changed: list[str] = []
    context = ensure_map(container, "securityContext")
    if "runAsNonRoot" not in context and context.get("runAsUser") != 0:
        context["runAsNonRoot"] = True
        changed.append("securityContext.runAsNonRoot: true")
    if context.get("allowPrivilegeEscalation") is not False:
        context["allowPrivilegeEscalation"] = False
        changed.append("securityContext.allowPrivilegeEscalation: false")
    if context.get("privileged") is True:
        context["privileged"] = False
        changed.append("securityContext.privileged: false")
    capabilities = ensure_map(context, "capabilities")
    drop = capabilities.get("drop")
    if not isinstance(drop, list):
        capabilities["drop"] = CommentedSeq(["ALL"])
        changed.append("securityContext.capabilities.drop: [ALL]")
    elif "ALL" not in drop:
        drop.append("ALL")
        changed.append("securityContext.capabilities.drop: + ALL")
    return changed


@fixer("argo-sidecar-valid")
def fix_argo_mandatory(container: Container, settings: FixSettings) -> list[str]:
    """Argo's own mandatory fields: requests, limits and a security context (the port
    is the author's choice)."""
    return fix_resources(container, settings) + fix_security_context(container, settings)


@fixer("plugin-seccomp-profile")
def fix_seccomp(container: Container, settings: FixSettings) -> list[str]:
    profile = ensure_map(ensure_map(container, "securityContext"), "seccompProfile")
    if profile.get("type") in ("RuntimeDefault", "Localhost"):
        return []
    profile["type"] = "RuntimeDefault"
    return ["securityContext.seccompProfile.type: RuntimeDefault"]


@fixer("plugin-read-only-root-filesystem")
def fix_read_only_root(container: Container, settings: FixSettings) -> list[str]:
    """Only when this policy is in force and reports the plugin (a plugin that writes
    to its root filesystem needs an emptyDir then: the policy's message says so)."""
    context = ensure_map(container, "securityContext")
    if context.get("readOnlyRootFilesystem") is True:
        return []
    context["readOnlyRootFilesystem"] = True
    return ["securityContext.readOnlyRootFilesystem: true"]


def apply_add_patches(container: Container, patches: tuple[Patch, ...]) -> list[str]:
    """A policy's own `fixes:`: each `add` fills its path where nothing is written."""
    changed: list[str] = []
    for patch in patches:
        if patch.op != "add":
            continue
        parts = [p.replace("~1", "/").replace("~0", "~") for p in patch.path.split("/")[1:]]
        if not parts:
            continue
        target: Any = container
        for part in parts[:-1]:
            target = ensure_map(target, part)
        if parts[-1] not in target:
            target[parts[-1]] = patch.value
            changed.append(f"{'.'.join(parts)}: {patch.value}")
    return changed
