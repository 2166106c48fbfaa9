"""`plugin-guard fix PATH...`: rewrite plugins so the policies with a safe mechanical
fix pass; print a unified diff, or change the files with `--write`."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from webhook.check import plugins_in
from webhook.errors import GuardError, ManifestError
from webhook.fix.fixers import RESOURCE_NAMES, FixSettings
from webhook.fix.rewrite import FileFix, FixError, fix_text
from webhook.manifests import Document, expand_paths, parse_documents, read_source
from webhook.policy import PolicySet, load_policies
from webhook.quantity import QuantityError, parse_quantity

EXIT_OK = 0
EXIT_LEFT = 1
EXIT_USAGE = 2


def _quantities(option: str, text: str | None, defaults: dict[str, str]) -> dict[str, str]:
    """`cpu=100m,memory=64Mi` over the defaults; each value a valid quantity."""
    values = dict(defaults)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in RESOURCE_NAMES:
            raise click.BadParameter(
                f"{item!r}: write cpu=QUANTITY,memory=QUANTITY", param_hint=option
            )
        try:
            parse_quantity(value)
        except QuantityError as exc:
            raise click.BadParameter(f"{name}={value}: {exc}", param_hint=option) from exc
        values[name] = value
    return values


def _settings(requests: str | None, limits: str | None, resources_file: str | None) -> FixSettings:
    base = FixSettings()
    request_values, limit_values = dict(base.requests), dict(base.limits)
    if resources_file is not None:
        try:
            data: Any = yaml.safe_load(Path(resources_file).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise click.BadParameter(str(exc), param_hint="--resources") from exc
        if not isinstance(data, dict) or not set(data) <= {"requests", "limits"}:
            raise click.BadParameter(
                "write {requests: {cpu, memory}, limits: {cpu, memory}}", param_hint="--resources"
            )
        for section, target in (("requests", request_values), ("limits", limit_values)):
            written = data.get(section) or {}
            text = ",".join(f"{k}={v}" for k, v in written.items())
            target.update(_quantities("--resources", text, target))
    settings = FixSettings(
        _quantities("--requests", requests, request_values),
        _quantities("--limits", limits, limit_values),
    )
    for name in RESOURCE_NAMES:
        if parse_quantity(settings.limits[name]) < parse_quantity(settings.requests[name]):
            raise click.BadParameter(
                f"the {name} limit {settings.limits[name]} is below the request {settings.requests[name]}",
                param_hint="--limits",
            )
    return settings


def _diff(fix: FileFix) -> str:
    """A unified diff `patch` and `git apply` take, including a last line without `\\n`."""
    lines = difflib.unified_diff(
        fix.original.splitlines(keepends=True),
        fix.fixed.splitlines(keepends=True),
        fromfile=f"a/{fix.path}",
        tofile=f"b/{fix.path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _plugins_by_file(paths: list[str]) -> dict[str, list[Any]]:
    """The plugins of every file given, for cross-plugin checks (ports), as `check`
    sees them when given the same files."""
    found: dict[str, list[Any]] = {}
    for path in paths:
        try:
            objects = parse_documents(read_source(path), path)
        except ManifestError:
            objects = []  # reported when the file itself is fixed
        found[path] = plugins_in([Document(path, i, o) for i, o in enumerate(objects)])
    return found


@click.command("fix")
@click.option(
    "--policies",
    type=click.Path(exists=True, file_okay=False),
    help="Policy folder (default: the bundled set).",
)
@click.option("--write", is_flag=True, help="Change the files instead of printing a diff.")
@click.option(
    "--requests",
    metavar="cpu=Q,memory=Q",
    help="Requests written where a plugin has none (default cpu=100m,memory=64Mi).",
)
@click.option(
    "--limits",
    metavar="cpu=Q,memory=Q",
    help="Limits written where a plugin has none (default cpu=500m,memory=128Mi).",
)
@click.option(
    "--resources",
    "resources_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A YAML file {requests: {...}, limits: {...}} for the same.",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def fix(
    policies: str | None,
    write: bool,
    requests: str | None,
    limits: str | None,
    resources_file: str | None,
    paths: tuple[str, ...],
) -> None:
    """Rewrite plugin.yaml, plugin ConfigMaps and multi-document files so that every
    policy with a safe mechanical fix passes, keeping comments, key order, quoting and
    indentation. Prints a unified diff (stdout) and what it could not fix (stderr).

    Exit 0 when nothing is left to fix by hand, 1 when something is, 2 on bad input."""
    settings = _settings(requests, limits, resources_file)
    try:
        policy_set: PolicySet = load_policies(policies)
    except GuardError as exc:
        raise click.ClickException(str(exc)) from exc
    files = [p for p in expand_paths(paths) if p != "-"]
    plugins = _plugins_by_file(files)
    left = errors = 0
    for path in files:
        others = [p for other, found in plugins.items() if other != path for p in found]
        try:
            result = fix_text(path, read_source(path), policy_set, settings, others)
        except (FixError, ManifestError) as exc:
            click.echo(f"error: {exc}", err=True)
            errors += 1
            continue
        if result.changed:
            if write:
                Path(path).write_text(result.fixed, encoding="utf-8")
            else:
                click.echo(_diff(result), nl=False)
        for resource, what in result.changes:
            verb = "fixed" if write else "would fix"
            click.echo(f"{path}: {resource}: {verb} {', '.join(what)}", err=True)
        for item in result.left:
            v = item.violation
            click.echo(f"{path}: {item.resource}: left [{v.policy}] {v.path}: {item.why}", err=True)
        left += len(result.left)
    sys.exit(EXIT_USAGE if errors else EXIT_LEFT if left else EXIT_OK)
