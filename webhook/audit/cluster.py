"""The audit's cluster I/O: read what the webhook would review, write the reports.

Reading: the plugin ConfigMaps exactly as the server's registry lists them (label key
`workflows.argoproj.io/configmap-type`, `webhook.server.registry`), and the Argo kinds
the webhook reviews. A kind whose CRD is not installed (404 on its collection) is left
out with one log line. List items carry no `apiVersion`/`kind`: they are set from the
kind listed, as the policies match on them.

Writing: one report per scope under a fixed name (`plugin-guard`), created when
missing and otherwise updated in place with the stored resourceVersion, so there is
never a second report; a 409 (someone else wrote it, or created it first) re-reads and
tries again. A report already equal to what would be written is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.audit.report import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REPORT_NAME,
    carry_timestamps,
    report_key,
    same_content,
)
from webhook.errors import GuardError
from webhook.kube import Cluster, Kind, KubeApiError, kinds
from webhook.server.registry import list_plugin_configmaps

log = logging.getLogger("webhook.audit")

# What the validating webhook reviews besides plugin ConfigMaps (charts/ webhook rules).
ARGO_KINDS = (
    kinds.WORKFLOW,
    kinds.WORKFLOW_TEMPLATE,
    kinds.CLUSTER_WORKFLOW_TEMPLATE,
    kinds.CRON_WORKFLOW,
)
WRITE_ATTEMPTS = 5
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


class ReportsUnavailable(GuardError):
    """The PolicyReport CRD is not installed (404 on the collection)."""


def _with_kind(items: Iterable[dict[str, Any]], kind: Kind) -> list[dict[str, Any]]:
    api_version = f"{kind.group}/{kind.version}" if kind.group else kind.version
    out = []
    for item in items:
        item.setdefault("apiVersion", api_version)
        item.setdefault("kind", kind.kind)
        out.append(item)
    return out


def _fail(what: str, exc: KubeApiError) -> GuardError:
    return GuardError(f"cannot {what}: {str(exc).splitlines()[0] if str(exc) else exc.code}")


@dataclass
class ClusterObjects:
    """What one read found: the objects, and the kinds left out (CRD missing)."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    missing_kinds: list[str] = field(default_factory=list)


def read_objects(cluster: Cluster, namespaces: Sequence[str]) -> ClusterObjects:
    """Plugin ConfigMaps and Argo workflow objects in `namespaces` (empty: all);
    cluster-scoped kinds are read whatever the namespaces."""
    scopes: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
    found = ClusterObjects()
    configmaps = cluster.resource(kinds.CONFIG_MAP)
    for namespace in scopes:
        try:
            listing = list_plugin_configmaps(configmaps, namespace)
        except KubeApiError as exc:
            raise _fail("list plugin ConfigMaps", exc) from None
        found.objects.extend(_with_kind(listing.items, kinds.CONFIG_MAP))
    for kind in ARGO_KINDS:
        api = cluster.resource(kind)
        for namespace in scopes if kind.namespaced else [None]:
            try:
                listing = api.list(namespace)
            except KubeApiError as exc:
                if exc.not_found:
                    found.missing_kinds.append(kind.kind)
                    break
                raise _fail(f"list {kind.plural}", exc) from None
            found.objects.extend(_with_kind(listing.items, kind))
    return found


@dataclass
class WriteOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0


class ReportWriter:
    """Keeps the reports of the scopes audited in step with what `write` is given."""

    def __init__(self, cluster: Cluster) -> None:
        self._reports = {
            "PolicyReport": cluster.resource(kinds.POLICY_REPORT),
            "ClusterPolicyReport": cluster.resource(kinds.CLUSTER_POLICY_REPORT),
        }

    def stored_namespaces(self, namespaces: Sequence[str]) -> list[str]:
        """The namespaces that hold one of our reports (in `namespaces`, or all): their
        objects may all be gone, and their reports must be emptied then.

        Raises `ReportsUnavailable` when the CRD is not installed."""
        api = self._reports["PolicyReport"]
        found: list[str] = []
        scopes: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
        for namespace in scopes:
            try:
                listing = api.list(namespace, label_selector=MANAGED_SELECTOR)
            except KubeApiError as exc:
                if exc.not_found:
                    raise ReportsUnavailable(
                        "the PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed"
                    ) from None
                raise _fail("list PolicyReports", exc) from None
            found.extend(
                str(item["metadata"]["namespace"])
                for item in listing.items
                if item.get("metadata", {}).get("name") == REPORT_NAME
            )
        return found

    def write(self, reports: Sequence[dict[str, Any]]) -> WriteOutcome:
        outcome = WriteOutcome()
        for report in reports:
            self._write_one(report, outcome)
        return outcome

    def _write_one(self, desired: dict[str, Any], outcome: WriteOutcome) -> None:
        kind, namespace = report_key(desired)
        api = self._reports[kind]
        name = desired["metadata"]["name"]
        for _attempt in range(WRITE_ATTEMPTS):
            try:
                stored = _get(api, name, namespace)
                body = carry_timestamps(_copy(desired), stored)
                if stored is None:
                    api.create(body, namespace=namespace)
                    outcome.created += 1
                    return
                if same_content(body, stored):
                    outcome.unchanged += 1
                    return
                body["metadata"] = _merged_metadata(stored, body)
                api.update(body, namespace=namespace)
                outcome.updated += 1
                return
            except KubeApiError as exc:
                if exc.conflict or exc.already_exists:
                    outcome.conflicts += 1
                    continue  # re-read and write again
                if exc.not_found:  # the collection itself: a create 404s only without CRD
                    raise ReportsUnavailable(
                        f"the {kind} CRD (wgpolicyk8s.io/v1alpha2) is not installed"
                    ) from None
                raise _fail(
                    f"write {kind} {namespace + '/' if namespace else ''}{name}", exc
                ) from None
        raise GuardError(
            f"cannot write {kind} {name}: still conflicting after {WRITE_ATTEMPTS} attempts"
        )


def _get(api: Any, name: str, namespace: str | None) -> dict[str, Any] | None:
    try:
        stored: dict[str, Any] = api.get(name, namespace=namespace)
    except KubeApiError as exc:
        if exc.not_found:
            return None
        raise
    return stored


def _copy(report: Mapping[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(dict(report))


def _merged_metadata(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The stored metadata (resourceVersion, uid, others' labels kept) with our labels."""
    metadata = dict(stored.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    labels.update(desired["metadata"].get("labels") or {})
    metadata["labels"] = labels
    return metadata
