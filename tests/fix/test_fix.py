"""`plugin-guard fix` on the real directory plugins and on hand-written files: after the
fix, `check` passes every fixable policy; the diff touches only the fixed fields;
comments, quoting and key order stay; a second run changes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from webhook.executor_plugin import read_plugin
from webhook.fix import FIXERS
from webhook.manifests import parse_documents

CLI = [sys.executable, "-c", "from webhook.cli import main; main()"]
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PLUGINS = SHARED / "corpora" / "argo-plugins"

# Keys a fix may write: every added or removed line of its diff is one of these.
FIXED_KEYS = {
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "securityContext",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "privileged",
    "capabilities",
    "drop",
    "seccompProfile",
    "type",
    "readOnlyRootFilesystem",
    "- ALL",
    "ALL",
}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def plugin_files(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml") or path.name.startswith("README"):
            continue
        try:
            objects = parse_documents(path.read_text(), str(path))
        except Exception:
            continue
        if any(read_plugin(obj) is not None and obj.get("kind") != "Workflow" for obj in objects):
            found.append(path.name)
    return found


def changed_keys(diff: str) -> set[str]:
    keys = set()
    for line in diff.splitlines():
        if line.startswith(("+++", "---")) or not line.startswith(("+", "-")):
            continue
        text = line[1:].strip()
        keys.add(text if text.startswith("- ") else text.split(":", 1)[0].strip())
    return keys


PLUGIN_DIRS = (
    sorted(p.name for p in PLUGINS.iterdir() if p.is_dir() and plugin_files(p))
    if PLUGINS.is_dir()
    else []
)


def test_every_directory_plugin_is_covered() -> None:
    assert len(PLUGIN_DIRS) >= 12


@pytest.mark.parametrize("name", PLUGIN_DIRS)
def test_fix_on_the_directory_plugins(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    shutil.copytree(PLUGINS / name, folder)
    files = plugin_files(folder)
    originals = {f: (folder / f).read_text() for f in files}

    preview = run("fix", *files, cwd=folder)
    assert preview.returncode in (0, 1), preview.stderr
    assert {f: (folder / f).read_text() for f in files} == originals, "changed without --write"
    assert changed_keys(preview.stdout) <= FIXED_KEYS, preview.stdout
    assert "Traceback" not in preview.stderr

    written = run("fix", "--write", *files, cwd=folder)
    assert written.returncode == preview.returncode
    for f in files:
        after = (folder / f).read_text()
        kept = [line for line in originals[f].splitlines() if line.strip().startswith("#")]
        assert all(line in after.splitlines() for line in kept), f"{f}: a comment was lost"

    again = run("fix", *files, cwd=folder)
    assert again.stdout == "", f"not idempotent:\n{again.stdout}"

    report = json.loads(run("check", "-o", "json", *files, cwd=folder).stdout)
    left = [
        (v["policy"], v["path"])
        for r in report["results"]
        for v in r["violations"]
        if v["policy"] in FIXERS and v["action"] != "Audit"
    ]
    # What a fixer leaves is an explicit choice of the plugin's (root), explained.
    for policy, path in left:
        assert path.endswith(("runAsNonRoot", "runAsUser", "capabilities")), (policy, path)
        assert f"left [{policy}] {path}:" in written.stderr


PLUGIN_TEXT = """\
# a plugin written by hand: comments, quotes and flow maps must stay
apiVersion: v1
kind: ConfigMap
metadata:
  name: handmade-executor-plugin   # the name Argo uses
  labels:
    workflows.argoproj.io/configmap-type: "ExecutorPlugin"
data:
  sidecar.automountServiceAccountToken: 'false'
  sidecar.container: |
    name: handmade
    image: "example.com/handmade:1.0.0"   # pinned
    ports:
      - containerPort: 4397
    resources:
      requests: {cpu: 50m, memory: 256Mi}
      limits: {cpu: 100m, memory: 128Mi}
    securityContext:
      runAsNonRoot: true
"""


def test_only_fixed_fields_change_and_everything_else_stays(tmp_path: Path) -> None:
    (tmp_path / "plugin.yaml").write_text(PLUGIN_TEXT)
    result = run("fix", "--write", "--limits", "cpu=300m,memory=512Mi", "plugin.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # nothing left to fix by hand
    after = (tmp_path / "plugin.yaml").read_text()
    original = PLUGIN_TEXT.splitlines()
    new = after.splitlines()
    # every original line but the limits one is still there, in order
    untouched = [line for line in original if "limits:" not in line]
    assert [line for line in new if line in untouched] == untouched
    assert "      limits: {cpu: 100m, memory: 256Mi}" in new  # raised to the request
    assert "      allowPrivilegeEscalation: false" in new
    assert "      seccompProfile:" in new
    assert "readOnlyRootFilesystem: true" in after
    assert "would fix" not in result.stderr and "fixed" in result.stderr


def test_a_plugin_with_nothing_left_exits_0(tmp_path: Path) -> None:
    text = PLUGIN_TEXT.replace("4397", "4398")
    (tmp_path / "p.yaml").write_text(text)
    first = run("fix", "--write", "p.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run("fix", "p.yaml", cwd=tmp_path)
    assert second.returncode == 0 and second.stdout == ""
    check = run("check", "p.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout


def test_requests_and_limits_come_from_flags_or_a_file(tmp_path: Path) -> None:
    bare = PLUGIN_TEXT.replace(
        "    resources:\n      requests: {cpu: 50m, memory: 256Mi}\n      limits: {cpu: 100m, memory: 128Mi}\n",
        "",
    )
    (tmp_path / "p.yaml").write_text(bare)
    (tmp_path / "sizes.yaml").write_text("requests: {cpu: 20m}\nlimits: {memory: 96Mi}\n")
    run(
        "fix",
        "--write",
        "--resources",
        "sizes.yaml",
        "--requests",
        "memory=48Mi",
        "p.yaml",
        cwd=tmp_path,
    )
    obj: dict[str, Any] = parse_documents((tmp_path / "p.yaml").read_text(), "p.yaml")[0]
    container = read_plugin(obj).container  # type: ignore[union-attr]
    assert container is not None
    assert container["resources"] == {
        "requests": {"cpu": "20m", "memory": "48Mi"},
        "limits": {"cpu": "500m", "memory": "96Mi"},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limits", "cpu=10m"], "the cpu limit 10m is below the request 100m"),
        (["--requests", "gpu=1"], "write cpu=QUANTITY,memory=QUANTITY"),
        (["--requests", "cpu=lots"], "cpu=lots"),
    ],
)
def test_bad_settings_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "p.yaml").write_text(PLUGIN_TEXT)
    result = run("fix", *args, "p.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_malformed_yaml_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: [ConfigMap\n")
    result = run("fix", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: bad.yaml:") and "Traceback" not in result.stderr
    assert (tmp_path / "bad.yaml").read_text() == "apiVersion: v1\nkind: [ConfigMap\n"


def test_the_docs_page_shows_what_fix_prints(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "fix.md").read_text()
    command = "$ plugin-guard fix plugin.yaml hello-executor-plugin-configmap.yaml\n"
    block = page.split("```console\n" + command, 1)[1].split("```", 1)[0]
    shutil.copytree(PLUGINS / "hello", tmp_path / "hello")
    result = run(
        "fix", "plugin.yaml", "hello-executor-plugin-configmap.yaml", cwd=tmp_path / "hello"
    )
    assert block in result.stdout
