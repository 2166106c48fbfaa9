"""docs/local-plugins.md stays true to `execute` and `dev`: every flag it names exists,
the numbers it quotes are the code's, and the bad-input example prints what it shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click

from webhook.dispatch.commands import dev, execute
from webhook.dispatch.rpc import ARGO_BACKOFF

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "local-plugins.md").read_text()


def _options(command: click.Command) -> dict[str, click.Option]:
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in param.opts
    }


def test_every_flag_named_exists() -> None:
    known = _options(execute) | _options(dev)
    # unshare's own flags, named where the page explains the token mount
    unshare = {"--mount", "--map-root-user"}
    assert "`unshare --mount`" in PAGE
    shown = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-p)(?=[\s`=])", PAGE)) - unshare
    assert shown, "docs/local-plugins.md names no flags"
    assert sorted(shown - set(known)) == []


def test_the_numbers_quoted_are_the_codes() -> None:
    timeout = re.search(r"`--timeout S` \(default\s+(\d+)\)", PAGE)
    assert timeout and float(timeout.group(1)) == _options(execute)["--timeout"].default
    retries = re.search(r"\((\d+) attempts,\s+sleeps ([\d, ]+) s \+ up to (\d+)% jitter\)", PAGE)
    assert retries, "docs/local-plugins.md no longer quotes Argo's retry schedule"
    steps = ARGO_BACKOFF.steps
    sleeps = [ARGO_BACKOFF.duration * ARGO_BACKOFF.factor**i for i in range(steps - 1)]
    shown_sleeps = [float(s) for s in retries.group(2).split(",")]
    assert (int(retries.group(1)), shown_sleeps, int(retries.group(3))) == (
        steps,
        sleeps,
        round(ARGO_BACKOFF.jitter * 100),
    )


def test_the_bad_input_example_prints_what_it_shows(tmp_path: Path) -> None:
    example = re.search(
        r"^\$ plugin-guard (execute [^\n]*bad\.yaml)\n(error: [^\n]*?)\s+\(exit (\d)\)$",
        PAGE,
        flags=re.M,
    )
    assert example, "docs/local-plugins.md no longer shows the bad-input example"
    # A template 't' whose plugin: holds two plugin keys, as the shown message says.
    (tmp_path / "bad.yaml").write_text("name: t\nplugin:\n  hello: {}\n  slack: {}\n")
    done = subprocess.run(
        [sys.executable, "-m", "webhook", *example.group(1).split()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr.strip(), done.stdout) == (
        int(example.group(3)),
        example.group(2),
        "",
    )
