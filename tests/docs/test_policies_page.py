"""docs/policies.md stays true to the engine: the example policy loads, the targets and
built-in checks it lists are the code's, and the `check` typo example prints what it shows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import webhook.policy.checks  # noqa: F401  (registers the built-in checks)
from webhook.policy.engine import load_policy_file
from webhook.policy.model import Target
from webhook.policy.registry import default_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = (REPO_ROOT / "docs" / "policies.md").read_text()
PLUGIN_GUARD = [sys.executable, "-m", "webhook"]


def _paragraph(bold_title: str) -> str:
    return PAGE.split(f"**{bold_title}**", 1)[1].split("\n\n", 1)[0]


def test_the_example_policy_loads(tmp_path: Path) -> None:
    example = re.search(r"^```yaml\n(.*?)^```", PAGE, flags=re.M | re.S)
    assert example, "docs/policies.md has no example policy"
    path = tmp_path / "plugin-security-context.yaml"
    path.write_text(example.group(1))
    policy = load_policy_file(path)
    assert policy.id == "plugin-security-context"


def test_the_targets_listed_are_the_engines() -> None:
    shown = set(re.findall(r"`([a-zA-Z]+)`:", _paragraph("Targets.")))
    assert sorted(shown ^ {target.value for target in Target}) == []


def test_the_built_in_checks_listed_are_the_registered_ones() -> None:
    # the check names are the camelCase words in back-quotes
    shown = set(re.findall(r"`([a-z]+[A-Z][A-Za-z]*)`", _paragraph("Built-in checks:")))
    assert sorted(shown ^ set(default_registry.names())) == []


def test_the_typo_example_prints_what_the_page_shows(tmp_path: Path) -> None:
    example = re.search(r"^```console\n\$ (.*?)\n(.*?)^```", PAGE, flags=re.M | re.S)
    assert example, "docs/policies.md has no console example"
    command, shown = example.group(1).split(), example.group(2).strip()
    assert command[:2] == ["plugin-guard", "check"]
    policies = tmp_path / "my-policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    resources = policies / "plugin-resources.yaml"
    typo = re.search(r"'(\w+)' is not one of", shown)
    assert typo
    text = resources.read_text()
    assert "\naction: Enforce\n" in text
    resources.write_text(text.replace("\naction: Enforce\n", f"\naction: {typo.group(1)}\n"))
    (tmp_path / "examples").symlink_to(REPO_ROOT / "examples")
    done = subprocess.run(
        [*PLUGIN_GUARD, *command[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr.strip(), done.stdout) == (2, shown, "")
