"""The pure review core: an AdmissionReview dict in, an AdmissionReview dict out.

No Flask, no sockets, no JSON text: the web layer decodes the body, calls `validate` or
`mutate`, and encodes `Outcome.review`. Two error families are kept apart (as in kopf):

- a bad *object* is a verdict: `allowed: false` with every reason in `status.message`,
  answered with HTTP 200;
- a bad *review* (not an AdmissionReview, no `uid`, wrong types) raises `BadReview`,
  which only the web layer turns into HTTP 400.

Reviews are answered in their own `apiVersion` (`admission.k8s.io/v1` or `v1beta1`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from webhook.admission.types import (
    API_VERSIONS,
    KIND,
    OPERATIONS,
    AdmissionRequest,
    AdmissionResponse,
    AdmissionReviewResponse,
    Status,
)
from webhook.errors import GuardError
from webhook.inject import Injection, Result
from webhook.jsontypes import type_word
from webhook.policy.model import Action, EvaluationContext, Verdict, Violation

# Kubernetes good practice: "Limit warnings to 120 characters if possible. Warnings over
# 256 characters and large numbers of warnings may be truncated" (admission/v1 types.go).
WARNING_SOFT_LIMIT = 120
WARNING_HARD_LIMIT = 256
MAX_WARNINGS = 30
MAX_DENIAL_LINES = 100
MAX_MESSAGE_CHARS = 1000
MAX_UID_CHARS = 512

# Sub-resources whose object is a full resource that policies can judge. Others
# (status, scale, binding, eviction, exec, ...) carry no container spec to check.
EVALUATED_SUBRESOURCES: frozenset[str] = frozenset({"", "ephemeralcontainers"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class BadReview(GuardError):
    """The webhook request itself is malformed: HTTP 400, never a verdict on an object."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}")


class Evaluator(Protocol):
    """What the core needs from the policy engine (`PolicySet.evaluate`)."""

    def __call__(
        self, obj: Mapping[str, Any], context: EvaluationContext | None = None, /
    ) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer plus what logging and metrics need to know about it."""

    review: AdmissionReviewResponse
    uid: str
    operation: str
    kind: str
    namespace: str
    name: str
    sub_resource: str
    dry_run: bool
    evaluated: bool
    violations: tuple[Violation, ...] = ()
    error: str | None = None
    injection: Injection | None = None  # /mutate of an agent pod: what injection did

    @property
    def allowed(self) -> bool:
        return self.review["response"]["allowed"]


@dataclass(frozen=True, slots=True)
class _Parsed:
    api_version: str
    request: AdmissionRequest
    uid: str
    operation: str
    kind: str
    namespace: str
    name: str
    sub_resource: str
    dry_run: bool
    obj: dict[str, Any] | None


def _opt_str(request: Mapping[str, Any], key: str) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadReview(f"request.{key}", f"must be a string, not {type_word(value)}")
    return value


def parse(body: object) -> _Parsed:
    """Check the envelope and the request fields the core relies on; raise BadReview."""
    api_version, request = _envelope(body)
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid", "missing" if uid is None else "must be a non-empty string")
    if len(uid) > MAX_UID_CHARS:
        raise BadReview("request.uid", f"longer than {MAX_UID_CHARS} characters")
    operation = request.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise BadReview("request.operation", "must be one of CREATE, UPDATE, DELETE, CONNECT")
    name = _opt_str(request, "name")
    namespace = _opt_str(request, "namespace")
    sub_resource = _opt_str(request, "subResource")
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise BadReview("request.dryRun", f"must be a boolean, not {type_word(dry_run)}")
    for key in ("userInfo", "resource", "requestKind", "requestResource", "options"):
        _optional_object(request, key)
    obj = _optional_object(request, "object")
    old = _optional_object(request, "oldObject")
    if obj is None and operation in ("CREATE", "UPDATE"):
        raise BadReview("request.object", f"missing for {operation}")
    kind, namespace, name = _subject(request, obj if obj is not None else old, namespace, name)
    return _Parsed(
        api_version=api_version,
        request=cast(AdmissionRequest, request),
        uid=uid,
        operation=operation,
        kind=kind,
        namespace=namespace,
        name=name,
        sub_resource=sub_resource,
        dry_run=bool(dry_run),
        obj=obj,
    )


def _envelope(body: object) -> tuple[str, dict[str, Any]]:
    """The review's apiVersion and its `request` object."""
    if not isinstance(body, dict):
        raise BadReview("body", f"must be a JSON object, not {type_word(body)}")
    api_version = body.get("apiVersion")
    if not isinstance(api_version, str) or api_version not in API_VERSIONS:
        raise BadReview(
            "apiVersion",
            "must be admission.k8s.io/v1 or admission.k8s.io/v1beta1"
            + (" (missing)" if api_version is None else ""),
        )
    if body.get("kind") != KIND:
        raise BadReview("kind", "must be AdmissionReview")
    request = body.get("request")
    if not isinstance(request, dict):
        raise BadReview("request", f"must be an object, not {type_word(request)}")
    return api_version, request


def _optional_object(request: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = request.get(key)
    if value is not None and not isinstance(value, dict):
        raise BadReview(f"request.{key}", f"must be an object, not {type_word(value)}")
    return value


def _subject(
    request: Mapping[str, Any], described: Mapping[str, Any] | None, namespace: str, name: str
) -> tuple[str, str, str]:
    """(kind, namespace, name) of the object under review: the request's fields, else
    what the object (or the old object, for DELETE) says of itself."""
    gvk = request.get("kind")
    kind = ""
    if gvk is not None:
        if not isinstance(gvk, dict):
            raise BadReview("request.kind", f"must be an object, not {type_word(gvk)}")
        kind_value = gvk.get("kind")
        if kind_value is not None and not isinstance(kind_value, str):
            raise BadReview("request.kind.kind", f"must be a string, not {type_word(kind_value)}")
        kind = kind_value or ""
    if described is None:
        return kind, namespace, name
    if not kind and isinstance(described.get("kind"), str):
        kind = described["kind"]
    metadata = described.get("metadata")
    if isinstance(metadata, dict):
        if not name:
            meta_name = metadata.get("name") or metadata.get("generateName")
            if isinstance(meta_name, str):
                name = meta_name
        if not namespace and isinstance(metadata.get("namespace"), str):
            namespace = metadata["namespace"]
    return kind, namespace, name


def _clean(text: str, limit: int) -> str:
    text = _CONTROL.sub(" ", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


# Where a warning's path starts: the plugin's container and its ConfigMap or
# ExecutorPlugin wrapper say "sidecar"; pod templates drop their spec.template.spec.
# Longest first: a Workflow's executorPlugins[i] keeps its index.
_SHORT_PATH_PREFIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^spec\.(executorPlugins\[\d+\])\.spec\.sidecar\.container(?=[.\[]|$)"),
        r"\1.sidecar",
    ),
    (re.compile(r"^spec\.(executorPlugins\[\d+\])\.spec\.sidecar(?=[.\[]|$)"), r"\1.sidecar"),
    (re.compile(r"^data\[sidecar\.container\](?=[.\[]|$)"), "sidecar"),
    (re.compile(r"^data\[sidecar\.([A-Za-z]+)\]"), r"sidecar.\1"),
    (re.compile(r"^spec\.sidecar\.container(?=[.\[]|$)"), "sidecar"),
    (re.compile(r"^spec\.(?:jobTemplate\.spec\.)?template\.spec\.(?=\w)"), ""),
    (re.compile(r"^metadata\.(?=(?:labels|annotations)\[)"), ""),
)


def short_path(path: str) -> str:
    """The path as a warning shows it: `sidecar.securityContext.seccompProfile` for
    `data[sidecar.container].securityContext.seccompProfile`. Denials keep the full path."""
    for pattern, replacement in _SHORT_PATH_PREFIXES:
        shortened, count = pattern.subn(replacement, path, count=1)
        if count:
            return shortened
    return path


def format_warning(violation: Violation) -> str:
    """`[policy] short.path: what to do`, within 120 characters when the wording allows
    and never cut below 256 (the API server's own limit): the fix is the last part of
    the line, which is exactly what a cut would remove."""
    prefix = _CONTROL.sub(" ", f"[{violation.policy}] {short_path(violation.path)}: ")
    if len(prefix) > WARNING_HARD_LIMIT - 20:
        # A pathological path: keep its head and tail, the policy id is in front.
        keep = (WARNING_HARD_LIMIT - 24) // 2
        prefix = prefix[:keep] + "…" + prefix[-keep:]
    text = violation.warning or violation.message
    return prefix + _clean(text, WARNING_HARD_LIMIT - len(prefix))


def format_denial(enforced: Sequence[Violation]) -> str:
    """Every Enforce reason, one per line, as `[policy] path: message`."""
    count = len(enforced)
    head = f"{count} policy violation{'s' if count != 1 else ''}:"
    lines = [head]
    for v in enforced[:MAX_DENIAL_LINES]:
        lines.append(_clean(f"[{v.policy}] {v.path}: {v.message}", MAX_MESSAGE_CHARS))
    if count > MAX_DENIAL_LINES:
        lines.append(f"... and {count - MAX_DENIAL_LINES} more")
    return "\n".join(lines)


def _warnings(warned: Sequence[Violation]) -> list[str]:
    out = [format_warning(v) for v in warned[:MAX_WARNINGS]]
    if len(warned) > MAX_WARNINGS:
        out.append(f"... and {len(warned) - MAX_WARNINGS} more warnings")
    return out


def _identity(plugin: Any) -> tuple[Any, Any]:
    """(resource name, namespace) of a registry entry: a ConfigMap dict or an ExecutorPlugin."""
    if isinstance(plugin, Mapping):
        metadata = plugin.get("metadata")
        if isinstance(metadata, Mapping):
            return metadata.get("name"), metadata.get("namespace")
        return None, None
    name = getattr(plugin, "resource_name", None) or getattr(plugin, "name", None)
    return name, getattr(plugin, "namespace", None)


def _other_plugins(plugins: Sequence[Any], name: str, namespace: str) -> list[Any]:
    """The registry minus the plugin under review (an UPDATE must not collide with itself)."""
    out: list[Any] = []
    for plugin in plugins:
        plugin_name, plugin_ns = _identity(plugin)
        if (
            name
            and plugin_name == name
            and (not plugin_ns or not namespace or plugin_ns == namespace)
        ):
            continue
        out.append(plugin)
    return out


def _answer(parsed: _Parsed, response: AdmissionResponse) -> AdmissionReviewResponse:
    return {"apiVersion": parsed.api_version, "kind": "AdmissionReview", "response": response}


def _outcome(parsed: _Parsed, response: AdmissionResponse, **details: Any) -> Outcome:
    """The answer to `parsed`, with what logging and metrics need to know about it."""
    return Outcome(
        review=_answer(parsed, response),
        uid=parsed.uid,
        operation=parsed.operation,
        kind=parsed.kind,
        namespace=parsed.namespace,
        name=parsed.name,
        sub_resource=parsed.sub_resource,
        dry_run=parsed.dry_run,
        **details,
    )


def validate(
    body: object,
    *,
    evaluate: Evaluator,
    plugins: Sequence[Any] = (),
) -> Outcome:
    """Review one AdmissionReview against the policies; raise BadReview if it is malformed."""
    parsed = parse(body)
    obj = parsed.obj
    if (
        obj is None
        or parsed.operation not in ("CREATE", "UPDATE")
        or parsed.sub_resource not in EVALUATED_SUBRESOURCES
    ):
        # DELETE, CONNECT and sub-resources such as status/scale: nothing to judge.
        return _outcome(
            parsed,
            {"uid": parsed.uid, "allowed": True},
            evaluated=False,
        )
    context = EvaluationContext(
        plugins=_other_plugins(plugins, parsed.name, parsed.namespace) if plugins else [],
        namespace=parsed.namespace or None,
    )
    try:
        verdict = evaluate(obj, context)
    except RecursionError:
        return _failed(parsed, 400, "BadRequest", "object is nested too deeply to evaluate")
    except Exception as exc:
        # An engine bug must not become an HTTP 500 (the failurePolicy would decide):
        # fail closed, with a reason the user can report. No object data in the text
        # (an exception message may quote a value): the type and where it was raised.
        return _failed(
            parsed,
            500,
            "InternalError",
            f"policy evaluation failed ({type(exc).__name__}); the request is denied",
            error=f"{type(exc).__name__} at {_origin(exc)}",
        )
    violations = verdict.violations
    response: AdmissionResponse = {"uid": parsed.uid, "allowed": True}
    if violations:
        enforced = [v for v in violations if v.action is Action.ENFORCE]
        warned = [v for v in violations if v.action is Action.WARN]
        if enforced:
            response["allowed"] = False
            response["status"] = {
                "code": 403,
                "reason": "Forbidden",
                "message": format_denial(enforced),
            }
        if warned:
            response["warnings"] = _warnings(warned)
    return _outcome(
        parsed,
        response,
        evaluated=True,
        violations=violations,
    )


def _origin(exc: BaseException) -> str:
    """`package/module.py:line` of the innermost frame that raised."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    path = tb.tb_frame.f_code.co_filename
    parts = path.replace("\\", "/").split("/")
    short = "/".join(parts[-2:])
    return f"{short}:{tb.tb_lineno}"


def _failed(
    parsed: _Parsed, code: int, reason: str, message: str, *, error: str | None = None
) -> Outcome:
    status: Status = {"code": code, "reason": reason, "message": message}
    return _outcome(
        parsed,
        {"uid": parsed.uid, "allowed": False, "status": status},
        evaluated=True,
        error=error or reason,
    )


# What `mutate` calls for a Pod CREATE: (pod, request namespace) -> Injection.
Injector = Callable[[Mapping[str, Any], str], Injection]

_PATCH_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_patch(ops: Sequence[Mapping[str, Any]]) -> str:
    """An RFC 6902 patch as the API server wants it: base64 of the JSON array."""
    return base64.b64encode(_PATCH_ENCODER.encode(list(ops)).encode()).decode("ascii")


def mutate(body: object, *, inject: Injector | None = None) -> Outcome:
    """The mutating endpoint: plugin injection into Argo agent pods (`webhook.inject`).

    Only Pod CREATE is mutated; every other review is allowed with no patch. The pod is
    always allowed: an injection problem becomes a warning (a failing injector too),
    never a denial. `patchType` and `patch` are set only when there is a patch.
    """
    parsed = parse(body)
    response: AdmissionResponse = {"uid": parsed.uid, "allowed": True}
    injection: Injection | None = None
    error: str | None = None
    obj = parsed.obj
    if (
        inject is not None
        and obj is not None
        and parsed.operation == "CREATE"
        and parsed.kind == "Pod"
        and not parsed.sub_resource
    ):
        try:
            injection = inject(obj, parsed.namespace)
        except RecursionError:
            injection = Injection(
                Result.ERROR, warnings=("[inject] pod is nested too deeply; not injected",)
            )
            error = "RecursionError"
        except Exception as exc:  # never fail a pod because of injection
            error = f"{type(exc).__name__} at {_origin(exc)}"
            injection = Injection(
                Result.ERROR,
                warnings=(
                    f"[inject] plugin injection failed ({type(exc).__name__}); "
                    "the pod is admitted unchanged",
                ),
            )
        if injection.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = encode_patch(injection.patch)
        if injection.warnings:
            warnings = [_clean(w, WARNING_HARD_LIMIT) for w in injection.warnings[:MAX_WARNINGS]]
            if len(injection.warnings) > MAX_WARNINGS:
                warnings.append(f"... and {len(injection.warnings) - MAX_WARNINGS} more warnings")
            response["warnings"] = warnings
    return _outcome(
        parsed,
        response,
        evaluated=injection is not None,
        error=error,
        injection=injection,
    )
