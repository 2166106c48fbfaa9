"""`plugin-guard test [PATH...]`: run the policy suites found under the paths."""

from __future__ import annotations

import sys

import click

from webhook.policytest.report import format_json, format_junit, format_table
from webhook.policytest.runner import SuiteResult, run_paths
from webhook.policytest.suite import SUITE_FILE_NAME, SuiteError

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2

FORMATS = {"table": format_table, "json": format_json, "junit": format_junit}


@click.command("test")
@click.option(
    "-o", "--output", type=click.Choice(sorted(FORMATS)), default="table", show_default=True
)
@click.option("-v", "--verbose", is_flag=True, help="List the cases that matched too.")
@click.argument("paths", nargs=-1, type=click.Path())
def test(output: str, verbose: bool, paths: tuple[str, ...]) -> None:
    """Run the policy suites (plugin-guard-test.yaml) under PATHS (default: the folder here).

    Exit 0 when every case matched, 1 when one did not or named a policy or resource
    that does not exist, 2 when a suite file cannot be read or is malformed."""
    outcomes = run_paths(paths or (".",))
    if not outcomes:
        raise click.UsageError(f"no {SUITE_FILE_NAME} under {', '.join(paths or ('.',))}")
    if output == "table":
        click.echo(format_table(outcomes, verbose=verbose))
    else:
        click.echo(FORMATS[output](outcomes))
    for outcome in outcomes:
        if isinstance(outcome, SuiteError):
            click.echo(f"error: {outcome}", err=True)
    if any(isinstance(o, SuiteError) for o in outcomes):
        sys.exit(EXIT_USAGE)
    if any(isinstance(o, SuiteResult) and o.failed for o in outcomes):
        sys.exit(EXIT_MISMATCH)
    sys.exit(EXIT_OK)
