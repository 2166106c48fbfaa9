"""`plugin-guard audit` (click, registered in cli.py).

Once (default): read the cluster, evaluate, print a table (`--output json`: the
reports), write the PolicyReports with `--reports`; exit 0, or 2 with one line on
stderr when the cluster cannot be read. With `--interval`: again every interval and at
once when a file of `--policies` changes (the server's reloader signature), until
SIGTERM/SIGINT (exit 0) or `--max-runs`; a failed pass is logged and retried at the
next interval. Logs are JSON lines on stderr.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import click

from webhook.audit.metrics import AuditMetrics
from webhook.audit.service import Auditor, AuditRun
from webhook.errors import GuardError
from webhook.kube import Cluster, KubeConfigError
from webhook.policy import PolicySet
from webhook.server.logs import configure as configure_logs
from webhook.server.state import dir_signature, load_policy_set

log = logging.getLogger("webhook.audit")
POLICY_POLL = 1.0  # seconds between looks at the policy folder while waiting


def format_table(run: AuditRun, verbose: bool = False) -> str:
    rows = [("NAMESPACE", "KIND", "NAME", "POLICY", "RESULT", "MESSAGE")]
    counts: Counter[str] = Counter()
    for item in run.audited:
        for result in item.results:
            counts[result.result] += 1
            if result.result == "pass" and not verbose:
                continue
            rows.append(
                (
                    item.namespace or "-",
                    item.kind,
                    item.name,
                    result.policy.id,
                    result.result,
                    result.short_message,
                )
            )
    lines = []
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for row in rows:
            lines.append(
                "  ".join(c.ljust(w) for c, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
            )
        lines.append("")
    lines.append(
        f"{len(run.audited)} object{'s' if len(run.audited) != 1 else ''} audited: "
        f"{counts['fail']} fail, {counts['warn']} warn, {counts['pass']} pass"
    )
    if run.written is not None:
        w = run.written
        lines.append(f"reports: {w.created} created, {w.updated} updated, {w.unchanged} unchanged")
    return "\n".join(lines)


def format_json(run: AuditRun) -> str:
    counts = Counter(r.result for item in run.audited for r in item.results)
    body: dict[str, Any] = {
        "summary": {
            "objects": len(run.audited),
            **{name: counts[name] for name in ("fail", "warn", "pass")},
        },
        "reports": run.reports,
    }
    if run.unavailable:
        body["reportsNotWritten"] = run.unavailable
    return json.dumps(body, indent=2)


def _policies(directory: Path | None) -> PolicySet:
    policy_set: PolicySet = load_policy_set(directory)
    return policy_set


@click.command("audit")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Default: KUBECONFIG, ~/.kube/config or in-cluster.",
)
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Audit this namespace (repeatable). Default: every namespace. Cluster-scoped "
    "kinds (ClusterWorkflowTemplates) are always audited.",
)
@click.option(
    "--policies",
    type=click.Path(file_okay=False),
    help="Policy folder (default: the bundled policies).",
)
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--verbose", "-v", is_flag=True, help="Also list the passes in the table.")
@click.option(
    "--reports",
    is_flag=True,
    help="Keep one PolicyReport per namespace and a ClusterPolicyReport (wgpolicyk8s.io/v1alpha2) in step.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=1.0),
    help="Audit again every SECONDS (and at once when the policies change) until SIGTERM.",
)
@click.option(
    "--max-runs", type=click.IntRange(min=1), help="With --interval: stop after this many audits."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve /healthz, /readyz and /metrics here.",
)
@click.option("--metrics-host", default="0.0.0.0", show_default=True)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def audit(
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    policies: str | None,
    output: str,
    verbose: bool,
    reports: bool,
    interval: float | None,
    max_runs: int | None,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Evaluate the policies on what the cluster already stores.

    Reads the plugin ConfigMaps (label key workflows.argoproj.io/configmap-type) and the
    Argo Workflows, WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows, and
    prints what each policy finds (--reports: also into PolicyReports).
    """
    configure_logs(log_level)
    directory = Path(policies) if policies else None
    policy_set = _policies(directory)
    try:
        cluster = Cluster.connect(kubeconfig)
    except KubeConfigError as exc:
        raise GuardError(f"no cluster configuration: {exc}") from None
    metrics = AuditMetrics()
    auditor = Auditor(cluster, namespaces, write_reports=reports, metrics=metrics)
    if interval is None:
        try:
            run = auditor.run(policy_set)
        finally:
            cluster.close()
        _print(run, output, verbose)
        return
    _run_continuously(
        auditor,
        directory,
        policy_set,
        interval,
        max_runs,
        metrics,
        metrics_host,
        metrics_port,
        output,
        verbose,
    )
    cluster.close()


def _print(run: AuditRun, output: str, verbose: bool) -> None:
    click.echo(format_json(run) if output == "json" else format_table(run, verbose))


def _run_continuously(
    auditor: Auditor,
    directory: Path | None,
    policy_set: PolicySet,
    interval: float,
    max_runs: int | None,
    metrics: AuditMetrics,
    metrics_host: str,
    metrics_port: int | None,
    output: str,
    verbose: bool,
) -> None:
    from webhook.agent.health import HealthServer, Probe

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    state: dict[str, Any] = {"ok": None, "problem": "not audited yet"}

    def ready() -> Probe:
        if state["ok"]:
            return Probe(True, "audited")
        return Probe(False, "not-ready", (str(state["problem"]),))

    health = None
    if metrics_port is not None:
        health = HealthServer(
            metrics_host,
            metrics_port,
            health=lambda: Probe(True, "running"),
            ready=ready,
            metrics=metrics,
        ).start()
        log.info("metrics listening", extra={"port": health.port})
    signature = dir_signature(directory)
    runs = 0
    try:
        while not stop.is_set():
            try:
                run = auditor.run(policy_set)
                state.update(ok=True, problem=None)
                log.info(
                    "audited",
                    extra={
                        "objects": len(run.audited),
                        "fail": sum(r.result == "fail" for a in run.audited for r in a.results),
                        "warn": sum(r.result == "warn" for a in run.audited for r in a.results),
                        "reports": "written" if run.written is not None else "not written",
                    },
                )
                if run.written is None:
                    _print(run, output, verbose)
            except GuardError as exc:
                state.update(ok=False, problem=str(exc))
                log.error("audit failed; retrying at the next interval", extra={"error": str(exc)})
            runs += 1
            if max_runs is not None and runs >= max_runs:
                break
            signature, policy_set = _wait(stop, interval, directory, signature, policy_set)
    finally:
        if health is not None:
            health.stop()
    log.info("audit stopped", extra={"runs": runs})


def _wait(
    stop: threading.Event,
    interval: float,
    directory: Path | None,
    signature: Any,
    policy_set: PolicySet,
) -> tuple[Any, PolicySet]:
    """Until the interval is over, stop is asked, or the policies changed (reloaded)."""
    waited = 0.0
    while waited < interval and not stop.is_set():
        step = min(POLICY_POLL, interval - waited)
        if stop.wait(step):
            break
        waited += step
        current = dir_signature(directory)
        if current != signature:
            try:
                policy_set = _policies(directory)
                log.info(
                    "policies changed; auditing again", extra={"policies": len(policy_set.policies)}
                )
            except GuardError as exc:
                log.error(
                    "policies changed but do not load; keeping the last good set",
                    extra={"error": str(exc)},
                )
                return current, policy_set
            return current, policy_set
    return signature, policy_set
