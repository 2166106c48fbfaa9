"""docs/webhook.md stays true to `serve`: its synopsis names exactly serve's flags, its
metrics are the ones the server registers, and the numbers it quotes are the code's."""

from __future__ import annotations

import re
from pathlib import Path

import click
import prometheus_client

from webhook.admission import review
from webhook.server import config, gunicorn_conf, metrics, registry
from webhook.server.commands import serve

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "webhook.md").read_text()


def _first_sh_block(text: str) -> str:
    match = re.search(r"^```sh\n(.*?)^```", text, flags=re.M | re.S)
    assert match, "docs/webhook.md has no ```sh synopsis"
    return match.group(1)


def _flags(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(name for name in param.opts if name.startswith("--"))
    return names - {"--help"}


def test_the_synopsis_names_exactly_serves_flags() -> None:
    shown = set(re.findall(r"--[a-z][a-z-]*", _first_sh_block(PAGE)))
    assert sorted(shown ^ _flags(serve)) == []


def test_the_metrics_listed_are_the_ones_registered() -> None:
    app_metrics = metrics.Metrics()
    registered = {
        family.name.removesuffix("_total") + ("_total" if family.type == "counter" else "")
        for family in app_metrics.registry.collect()
    }
    assert isinstance(app_metrics.registry, prometheus_client.CollectorRegistry)
    section = PAGE.split("- **Metrics**", 1)[1].split("\n- **", 1)[0].split("\n## ", 1)[0]
    shown = set(re.findall(r"`(plugin_guard_[a-z_]+)`", section))
    assert sorted(shown ^ registered) == []


def test_the_numbers_quoted_are_the_codes() -> None:
    quoted = {
        "body limit": (r"bodies over (\d+) MiB get 413", config.DEFAULT_MAX_BODY_BYTES // 2**20),
        "warnings": (r"at most (\d+)\)", review.MAX_WARNINGS),
        "kinds": (r"Kinds past (\d+) distinct", metrics.MAX_KINDS),
        "namespaces": (r"namespaces past (\d+)", metrics.MAX_NAMESPACES),
        "keepalive": (r"`keepalive (\d+)`", gunicorn_conf.keepalive),
        "timeout": (r"= `--timeout` \((\d+) s", gunicorn_conf.graceful_timeout),
        "backoff start": (r"backoff\s+\(([\d.]+) s to", registry.BACKOFF_START),
        "backoff max": (r"s to ([\d.]+) s\)", registry.BACKOFF_MAX),
    }
    wrong = {}
    for what, (pattern, value) in quoted.items():
        found = re.search(pattern, PAGE)
        assert found, f"docs/webhook.md no longer quotes the {what}"
        if float(found.group(1)) != float(value):
            wrong[what] = (found.group(1), value)
    assert wrong == {}


def test_the_default_workers_and_threads_are_serves() -> None:
    defaults = {p.name: p.default for p in serve.params}
    shown = re.search(r"`--workers (\d+) --threads (\d+)`", PAGE)
    assert shown, "docs/webhook.md no longer quotes the worker defaults"
    assert (int(shown.group(1)), int(shown.group(2))) == (defaults["workers"], defaults["threads"])
    assert gunicorn_conf.worker_class == "gthread" and "`gthread` workers" in PAGE
