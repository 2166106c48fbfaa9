"""`plugin-guard check` and `plugin-guard build`: the policies, offline.

Both run the same engine as the webhook. `check` reports every violation of every
resource in the files given; `build` is `argo executor-plugin build DIR` (same files,
same bytes) behind the policies.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from webhook.errors import GuardError, ManifestError
from webhook.executor_plugin import (
    ExecutorPlugin,
    load_plugin_manifest,
    read_plugin,
    render_build,
    workflow_level_plugins,
)
from webhook.manifests import Document, expand_paths, parse_documents, read_source
from webhook.policy import Action, EvaluationContext, PolicySet, Verdict, load_policies

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class ResourceResult:
    document: Document
    verdict: Verdict

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.document.source,
            "index": self.document.index,
            "kind": self.document.kind,
            "namespace": self.document.namespace,
            "name": self.document.name,
            "allowed": self.verdict.allowed,
            "violations": [v.as_dict() for v in self.verdict.violations],
        }


@dataclass(frozen=True, slots=True)
class CheckReport:
    results: list[ResourceResult]
    errors: list[ManifestError]

    @property
    def denied(self) -> int:
        return sum(1 for r in self.results if not r.verdict.allowed)

    @property
    def violation_count(self) -> int:
        return sum(len(r.verdict.violations) for r in self.results)

    def summary(self) -> dict[str, int]:
        return {
            "resources": len(self.results),
            "denied": self.denied,
            "violations": self.violation_count,
        }

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "results": [r.as_dict() for r in self.results]}

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_USAGE
        return EXIT_DENIED if self.denied else EXIT_OK


def plugins_in(documents: Sequence[Document]) -> list[ExecutorPlugin]:
    """Every plugin among the documents: the context for cross-plugin checks."""
    plugins: list[ExecutorPlugin] = []
    for document in documents:
        plugin = read_plugin(document.obj)
        if plugin is not None:
            plugins.append(plugin)
        plugins.extend(workflow_level_plugins(document.obj))
    return plugins


def check_documents(documents: Sequence[Document], policy_set: PolicySet) -> list[ResourceResult]:
    context = EvaluationContext(plugins=plugins_in(documents))
    return [ResourceResult(doc, policy_set.evaluate(doc.obj, context)) for doc in documents]


def run_check(paths: Sequence[str], policy_set: PolicySet) -> CheckReport:
    """Load every file (a broken file is reported, the others are still checked)."""
    documents: list[Document] = []
    errors: list[ManifestError] = []
    for source in expand_paths(paths):
        try:
            objects = parse_documents(read_source(source), source)
        except ManifestError as exc:
            errors.append(exc)
            continue
        documents.extend(Document(source, index, obj) for index, obj in enumerate(objects))
    return CheckReport(check_documents(documents, policy_set), errors)


# --------------------------------------------------------------------------- text output

_ACTION_LABEL = {Action.ENFORCE: "deny ", Action.WARN: "warn ", Action.AUDIT: "audit"}


def format_text(report: CheckReport, verbose: bool = False) -> str:
    lines: list[str] = []
    current_file = None
    for result in report.results:
        violations = result.verdict.violations
        if not violations and not verbose:
            continue
        if result.document.source != current_file:
            current_file = result.document.source
            if lines:
                lines.append("")
            lines.append(current_file)
        doc = result.document
        where = f"{doc.namespace}/{doc.name}" if doc.namespace else doc.name or "(unnamed)"
        status = "DENIED" if not result.verdict.allowed else "allowed"
        lines.append(f"  {doc.kind or '(no kind)'} {where}: {status}")
        for violation in violations:
            label = _ACTION_LABEL[violation.action]
            lines.append(f"    {label}  {violation.policy}  {violation.path or '(resource)'}")
            lines.append(f"           {violation.message}")
    counts = Counter(v.action for r in report.results for v in r.verdict.violations)
    by_action = ", ".join(
        f"{counts[a]} {a.value}" for a in (Action.ENFORCE, Action.WARN, Action.AUDIT) if counts[a]
    )
    if lines:
        lines.append("")
    lines.append(
        f"{len(report.results)} resource{'s' if len(report.results) != 1 else ''} checked, "
        f"{report.denied} denied, {report.violation_count} "
        f"violation{'s' if report.violation_count != 1 else ''}"
        + (f" ({by_action})" if by_action else "")
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands


policies_option = click.option(
    "--policies",
    "policies",
    type=click.Path(file_okay=False),
    help="Policy folder (default: the bundled policies).",
)


def _load_policy_set(policies: str | None) -> PolicySet:
    return load_policies(Path(policies) if policies else None)


@click.command()
@policies_option
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option("--verbose", "-v", is_flag=True, help="Also list resources with no violation.")
@click.argument("paths", nargs=-1, required=True)
def check(policies: str | None, output: str, verbose: bool, paths: tuple[str, ...]) -> None:
    """Check manifests against the policies.

    PATHS are files, folders (searched for *.yaml, *.yml, *.json) or - for stdin.
    Exit 0 when nothing is denied, 1 when something is denied, 2 on usage or parse
    errors (the readable files are still checked and reported).
    """
    policy_set = _load_policy_set(policies)
    report = run_check(paths, policy_set)
    if output == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(format_text(report, verbose))
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    sys.exit(report.exit_code)


@click.command()
@policies_option
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def build(policies: str | None, directory: str) -> None:
    """Build DIR's plugin into its ConfigMap and README, as `argo executor-plugin build`.

    Reads DIR/plugin.yaml and DIR/server.*, runs the policies, and writes
    DIR/<name>-executor-plugin-configmap.yaml and DIR/README.md byte for byte as Argo
    does. An Enforce violation fails the build (exit 1) and writes nothing.
    """
    policy_set = _load_policy_set(policies)
    plugin, manifest = load_plugin_manifest(directory)
    source = str(Path(directory) / "plugin.yaml")
    document = Document(source, 0, manifest)
    verdict = policy_set.evaluate(document.obj, EvaluationContext(plugins=[plugin]))
    report = CheckReport([ResourceResult(document, verdict)], [])
    if verdict.violations:
        click.echo(format_text(report), err=True)
    if not verdict.allowed:
        click.echo(f"build failed: {source} breaks Enforce policies (see above)", err=True)
        sys.exit(EXIT_DENIED)
    try:
        output = render_build(directory, plugin)
    except GuardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_DENIED)
    for path, text in (
        (output.configmap_path, output.configmap_text),
        (output.readme_path, output.readme_text),
    ):
        path.write_text(text, encoding="utf-8")
        click.echo(f"{path} created")
