"""Objects and verdicts -> `wgpolicyk8s.io/v1alpha2` PolicyReports (pure: no I/O).

One result per (object, policy that applies to it): `fail` when a violation denies or
is audit-only (Enforce, Audit), `warn` when every violation only warns, `pass` when the
policy looks at the object and finds nothing. Policies that do not apply to an object
are not listed (a `skip` for every other kind of object would drown the report).

Every report is built whole from what is stored now, so the results of an object that
was fixed (no more violation: its results become `pass`) or deleted (no result) leave
it on the next write. A result that did not change keeps the timestamp it had, so an
audit that finds nothing new writes nothing (`same_content`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.policy import Action, EvaluationContext, Policy, PolicySet, Violation
from webhook.policy.targets import ResourceViews

API_VERSION = "wgpolicyk8s.io/v1alpha2"
SOURCE = "plugin-guard"
REPORT_NAME = "plugin-guard"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "plugin-guard"
RESULTS = ("pass", "fail", "warn", "error", "skip")
MESSAGE_LIMIT = 1024  # characters: a report is read by people and Policy Reporter


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """What one policy says of one object."""

    policy: Policy
    result: str  # pass | fail | warn
    violations: tuple[Violation, ...]

    @property
    def message(self) -> str:
        """The policy's messages (already free of object content: see `render_message`)."""
        if not self.violations:
            return "no violation"
        parts: list[str] = []
        for violation in self.violations:
            where = f"{violation.path}: " if violation.path else ""
            text = f"{where}{violation.message}"
            if text not in parts:
                parts.append(text)
        message = "; ".join(parts)
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 1] + "…"
        return message

    @property
    def short_message(self) -> str:
        """The first violation and how many more: one table row."""
        if not self.violations:
            return self.message
        first = self.violations[0]
        more = len(self.violations) - 1
        text = f"{first.path}: {first.message}" if first.path else first.message
        return text + (f" (+{more} more)" if more else "")


@dataclass(frozen=True, slots=True)
class AuditedObject:
    """One stored object and the results of the policies that apply to it."""

    obj: Mapping[str, Any]
    results: tuple[PolicyResult, ...]

    @property
    def metadata(self) -> Mapping[str, Any]:
        metadata = self.obj.get("metadata")
        return metadata if isinstance(metadata, Mapping) else {}

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str | None:
        namespace = self.metadata.get("namespace")
        return str(namespace) if namespace else None

    def reference(self) -> dict[str, str]:
        """The `resources[]` entry: a core/v1 ObjectReference."""
        reference = {"apiVersion": str(self.obj.get("apiVersion") or ""), "kind": self.kind}
        if self.namespace:
            reference["namespace"] = self.namespace
        reference["name"] = self.name
        uid = self.metadata.get("uid")
        if uid:
            reference["uid"] = str(uid)
        return reference


def result_of(violations: Sequence[Violation]) -> str:
    """fail when anything denies or is recorded (Enforce, Audit); warn when all warn."""
    if any(v.action is not Action.WARN for v in violations):
        return "fail"
    return "warn" if violations else "pass"


def audit_objects(
    objects: Iterable[Mapping[str, Any]], policy_set: PolicySet, context: EvaluationContext
) -> list[AuditedObject]:
    """Evaluate every object as the webhook would (`context.plugins`: the cluster's)."""
    audited = []
    for obj in objects:
        verdict = policy_set.evaluate(obj, context)
        views = ResourceViews(obj, context)
        by_policy: dict[str, list[Violation]] = {}
        for violation in verdict.violations:
            by_policy.setdefault(violation.policy, []).append(violation)
        results = []
        for policy in policy_set.policies:
            found = tuple(by_policy.get(policy.id, ()))
            if found or policy.applies(views):
                results.append(PolicyResult(policy, result_of(found), found))
        audited.append(AuditedObject(obj, tuple(results)))
    return audited


# --------------------------------------------------------------------------- reports


def report_key(report: Mapping[str, Any]) -> tuple[str, str | None]:
    """(kind, namespace): the one report of a scope."""
    metadata = report.get("metadata") or {}
    return str(report.get("kind")), metadata.get("namespace")


def build_reports(
    audited: Sequence[AuditedObject],
    *,
    namespaces: Iterable[str] = (),
    now: float | None = None,
) -> list[dict[str, Any]]:
    """One PolicyReport per namespace with an audited object (and per name in
    `namespaces`, so a namespace whose objects all left gets an empty report), one
    ClusterPolicyReport for the cluster-scoped objects (always, maybe empty)."""
    stamp = _timestamp(time.time() if now is None else now)
    by_scope: dict[str | None, list[dict[str, Any]]] = {None: []}
    for namespace in namespaces:
        by_scope.setdefault(namespace, [])
    for item in sorted(audited, key=lambda a: (a.namespace or "", a.kind, a.name)):
        results = by_scope.setdefault(item.namespace, [])
        for result in item.results:
            results.append(
                {
                    "source": SOURCE,
                    "policy": result.policy.id,
                    "result": result.result,
                    "message": result.message,
                    "severity": result.policy.severity,
                    "category": result.policy.category,
                    "scored": True,
                    "timestamp": dict(stamp),
                    "resources": [item.reference()],
                    "properties": {
                        "action": result.policy.action.value,
                        "violations": str(len(result.violations)),
                    },
                }
            )
    return [
        _report(namespace, results)
        for namespace, results in sorted(
            by_scope.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")
        )
    ]


def _report(namespace: str | None, results: list[dict[str, Any]]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": REPORT_NAME, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "PolicyReport" if namespace is not None else "ClusterPolicyReport",
        "metadata": metadata,
        "summary": summarize(results),
        "results": results,
    }


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = Counter(str(r.get("result")) for r in results)
    return {name: counts[name] for name in RESULTS}


def _timestamp(now: float) -> dict[str, int]:
    seconds = int(now)
    return {"seconds": seconds, "nanos": 0}


def _identity(result: Mapping[str, Any]) -> tuple[str, ...]:
    """A result, less its timestamp: unchanged results keep their first timestamp."""
    resources = result.get("resources") or [{}]
    ref = resources[0] if isinstance(resources, list) and resources else {}
    return (
        str(result.get("policy")),
        str(ref.get("uid") or ""),
        str(ref.get("kind")),
        str(ref.get("namespace") or ""),
        str(ref.get("name")),
        str(result.get("result")),
        str(result.get("message")),
        str(result.get("severity")),
        str(result.get("category")),
    )


def carry_timestamps(desired: dict[str, Any], stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """`desired`, its unchanged results stamped as `stored` had them."""
    if not stored:
        return desired
    previous = {
        _identity(r): r.get("timestamp")
        for r in stored.get("results") or []
        if isinstance(r, Mapping)
    }
    for result in desired.get("results", []):
        stamp = previous.get(_identity(result))
        if isinstance(stamp, Mapping):
            result["timestamp"] = dict(stamp)
    return desired


def same_content(desired: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Nothing to write: the same results, summary and labels."""
    labels = (stored.get("metadata") or {}).get("labels") or {}
    return (
        stored.get("results", []) == desired.get("results", [])
        and stored.get("summary") == desired.get("summary")
        and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
    )


def violation_counts(audited: Iterable[AuditedObject]) -> Counter[tuple[str, str, str]]:
    """(policy, namespace, result) -> objects, for fail and warn results (the metrics);
    namespace "" for cluster-scoped objects."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for item in audited:
        for result in item.results:
            if result.result != "pass":
                counts[(result.policy.id, item.namespace or "", result.result)] += 1
    return counts
