"""docs/tls.md stays true to `serve` and the chart: every serve flag it shows exists, and
the command line it says the chart runs carries serve's and values.yaml's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import click
import yaml

from webhook.certificates import controller
from webhook.server.commands import serve

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = (REPO_ROOT / "docs" / "tls.md").read_text()
VALUES = yaml.safe_load((REPO_ROOT / "charts" / "argo-plugin-guard" / "values.yaml").read_text())


def _serve_options() -> dict[str, click.Option]:
    return {
        name: param
        for param in serve.params
        if isinstance(param, click.Option)
        for name in param.opts
    }


def _chart_command() -> str:
    match = re.search(r"^```\n(plugin-guard serve .*?)^```", PAGE, flags=re.M | re.S)
    assert match, "docs/tls.md no longer shows the command the chart runs"
    return match.group(1)


def test_every_serve_flag_shown_exists() -> None:
    shown = set(re.findall(r"(?<![\w-])(--(?:tls|san|state|cert|key)[a-z-]*)", PAGE))
    shown |= set(re.findall(r"--[a-z][a-z-]*", _chart_command()))
    assert shown, "docs/tls.md names no serve flag"
    assert sorted(shown - set(_serve_options())) == []


def test_the_chart_command_shows_the_defaults() -> None:
    flags = dict(re.findall(r"(--tls-[a-z-]+-(?:validity|interval)) (\S+)", _chart_command()))
    options = _serve_options()
    self_managed = VALUES["tls"]["selfManaged"]
    assert flags == {
        "--tls-cert-validity": options["--tls-cert-validity"].default,
        "--tls-ca-validity": options["--tls-ca-validity"].default,
        "--tls-reconcile-interval": f"{options['--tls-reconcile-interval'].default:g}",
    }
    assert (self_managed["certificateValidity"], self_managed["caValidity"]) == (
        flags["--tls-cert-validity"],
        flags["--tls-ca-validity"],
    )
    assert f"{self_managed['reconcileInterval']:g}" == flags["--tls-reconcile-interval"]


def test_the_retry_backoff_quoted_is_the_controllers() -> None:
    found = re.search(r"backoff \(([\d.]+) s doubling", PAGE)
    assert found and float(found.group(1)) == controller.BACKOFF_START


def test_the_serve_flags_table_is_serves_tls_flags_with_their_defaults() -> None:
    section = PAGE.split("## `serve` flags", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \|([^|]*)\|", section, flags=re.M)
    assert rows, "docs/tls.md's serve flags table is gone"
    options = _serve_options()
    tls_flags = {
        name
        for name in options
        if name.startswith("--tls-") or name.endswith("-webhook-configuration")
    }
    assert sorted({flag for flag, _ in rows} ^ (tls_flags | {"--san"})) == []
    wrong = {}
    for flag, default_cell in rows:
        literal = re.fullmatch(r"`([^`]+)`", default_cell.strip())
        if literal:  # a default written as a value (the others are described in words)
            default = options[flag].default
            written = f"{default:g}" if isinstance(default, float) else str(default)
            if literal.group(1) != written:
                wrong[flag] = (literal.group(1), written)
    assert wrong == {}
