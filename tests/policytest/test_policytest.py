"""`plugin-guard test`: the bundled suites prove every shipped policy; suites catch a
policy edit; bad suites are clear errors with file and line; table, JSON and JUnit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICIES = REPO_ROOT / "policies"
SUITES = POLICIES / "tests"
CLI = [sys.executable, "-c", "from webhook.cli import main; main()", "test"]

PLUGIN = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels: {{workflows.argoproj.io/configmap-type: ExecutorPlugin}}
data:
  sidecar.container: |
    name: demo
    image: example.com/demo:2.0.1
    ports: [{{containerPort: 4399}}]
    resources:
      requests: {{cpu: 50m, memory: 16Mi}}
      limits: {{cpu: 100m, {limits}}}
    securityContext:
      runAsNonRoot: true
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL]}}
"""


def run(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def write_suite(folder: Path, results: list[dict[str, object]], **fields: object) -> Path:
    (folder / "plugins.yaml").write_text(
        PLUGIN.format(name="capped-executor-plugin", limits="memory: 32Mi")
        + "---\n"
        + PLUGIN.format(name="uncapped-executor-plugin", limits="")
    )
    suite = {"apiVersion": "argo-plugin-guard/v1", "kind": "Test", "resources": ["plugins.yaml"]}
    suite.update(fields)
    suite["results"] = results
    path = folder / "plugin-guard-test.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_every_bundled_policy_has_a_suite_that_passes_and_fails_it() -> None:
    result = run("-o", "json", str(SUITES))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0 and report["summary"]["suiteErrors"] == 0
    seen: dict[str, set[str]] = {}
    for suite in report["suites"]:
        for case in suite["cases"]:
            seen.setdefault(case["policy"], set()).add(case["expected"])
    bundled = {yaml.safe_load(p.read_text())["id"] for p in POLICIES.glob("*.yaml")}
    assert set(seen) == bundled
    for policy, expected in seen.items():
        assert "pass" in expected, f"{policy}: no object that must pass"
        assert expected & {"fail", "warn"}, f"{policy}: no object that must fail"


def test_a_weakened_policy_breaks_its_suite(tmp_path: Path) -> None:
    """What the suites are for: an edit that stops a policy from catching what it
    must is a red CI, with the case and the file line named."""
    suite_dir = tmp_path / "suite"
    shutil.copytree(SUITES / "plugin-resources", suite_dir)
    policy = yaml.safe_load((POLICIES / "plugin-resources.yaml").read_text())
    policy["rules"][0]["parameters"]["resources"] = ["cpu"]  # memory no longer checked
    (tmp_path / "plugin-resources.yaml").write_text(yaml.safe_dump(policy))
    suite = yaml.safe_load((suite_dir / "plugin-guard-test.yaml").read_text())
    suite["policies"] = ["../plugin-resources.yaml"]
    (suite_dir / "plugin-guard-test.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))

    result = run(str(suite_dir))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout
    assert "unlimited-executor-plugin" in result.stdout
    assert "expected" not in result.stderr


def test_table_json_and_junit_report_a_mismatch(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path,
        [
            {"policy": "plugin-resources", "resource": "capped-executor-plugin", "result": "pass"},
            {
                "policy": "plugin-resources",
                "resource": "uncapped-executor-plugin",
                "path": "data[sidecar.container].resources.limits.memory",
                "result": "pass",
            },
            {
                "policy": "plugin-seccomp-profile",
                "resource": "capped-executor-plugin",
                "result": "warn",
            },
        ],
    )
    entries = [
        i
        for i, line in enumerate(suite.read_text().splitlines(), 1)
        if line.startswith("- policy:")
    ]
    table = run(str(tmp_path))
    assert table.returncode == 1
    assert "2/3 as expected" in table.stdout
    assert f"line {entries[1]}: plugin-resources uncapped-executor-plugin" in table.stdout
    assert "resources.limits.memory is required" in table.stdout

    report = json.loads(run("-o", "json", str(tmp_path)).stdout)
    cases = report["suites"][0]["cases"]
    assert [c["ok"] for c in cases] == [True, False, True]
    assert cases[1]["got"] == "fail" and cases[1]["line"] == entries[1]
    assert report["summary"] == {
        "suites": 1,
        "cases": 3,
        "passed": 2,
        "failed": 1,
        "suiteErrors": 0,
    }

    junit = ElementTree.fromstring(run("-o", "junit", str(tmp_path)).stdout)
    assert junit.get("tests") == "3" and junit.get("failures") == "1"
    failures = junit.findall(".//testcase/failure")
    assert len(failures) == 1
    assert failures[0].get("message") == "expected pass, got fail"


def test_unknown_policy_or_resource_is_a_failed_case(tmp_path: Path) -> None:
    write_suite(
        tmp_path,
        [
            {"policy": "plugin-resourcez", "resource": "capped-executor-plugin", "result": "pass"},
            {"policy": "plugin-resources", "resource": "no-such-plugin", "result": "fail"},
        ],
    )
    result = run(str(tmp_path))
    assert result.returncode == 1
    assert "no policy 'plugin-resourcez'" in result.stdout
    assert "no resource 'no-such-plugin'" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: argo-plugin-guard/v1\nkind: Test\nresources: [a.yaml]\nreuslts: []\n",
            ":4: unknown field 'reuslts' (did you mean 'results'?)",
        ),
        (
            "apiVersion: argo-plugin-guard/v1\nkind: Test\nresources: [a.yaml]\nresults:\n"
            "  - policy: p\n    resource: r\n    result: passed\n",
            ":7: results.0.result: 'passed' is not one of pass, fail, warn, skip",
        ),
        (
            "apiVersion: argo-plugin-guard/v1\nkind: Test\nresources: [a.yaml]\nresults:\n"
            "  - policy: p\n    resource: r\n    result: pass\n    pth: x\n",
            ":8: results.0: unknown field 'pth' (did you mean 'path'?)",
        ),
        ("apiVersion: v1\nkind: [\n", ":3: invalid YAML"),
        (
            "apiVersion: argo-plugin-guard/v1\nkind: Test\nresources: [missing.yaml]\nresults:\n"
            "  - {policy: p, resource: r, result: pass}\n",
            "resources: no such file or folder",
        ),
    ],
)
def test_a_malformed_suite_is_one_clear_error_with_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    suite = tmp_path / "plugin-guard-test.yaml"
    suite.write_text(text)
    result = run(str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {suite}" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_no_suite_under_the_paths_is_a_usage_error(tmp_path: Path) -> None:
    result = run(str(tmp_path))
    assert result.returncode == 2
    assert "no plugin-guard-test.yaml under" in result.stderr


def test_plugin_yaml_resources_and_the_bundled_set_by_default(tmp_path: Path) -> None:
    (tmp_path / "plugin.yaml").write_text(
        (REPO_ROOT / "examples" / "hardened-plugin" / "plugin.yaml").read_text()
    )
    name = yaml.safe_load((tmp_path / "plugin.yaml").read_text())["metadata"]["name"]
    (tmp_path / "plugin-guard-test.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "argo-plugin-guard/v1",
                "kind": "Test",
                "resources": ["plugin.yaml"],
                "results": [
                    {"policy": "plugin-security-context", "resource": name, "result": "pass"},
                    {"policy": "pod-security-restricted", "resource": name, "result": "skip"},
                ],
            }
        )
    )
    result = run("-v", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  ok  ") == 2


def test_the_docs_page_shows_what_test_prints(tmp_path: Path) -> None:
    """docs/policy-tests.md's example: the bundled plugin-resources suite with its two
    `fail` expectations edited to `pass`, run from a folder holding `suites/`."""
    page = (REPO_ROOT / "docs" / "policy-tests.md").read_text()
    block = page.split("```console\n$ plugin-guard test suites/\n", 1)[1].split("$ echo", 1)[0]
    suite_dir = tmp_path / "suites" / "plugin-resources"
    shutil.copytree(SUITES / "plugin-resources", suite_dir)
    suite_file = suite_dir / "plugin-guard-test.yaml"
    suite = yaml.safe_load(suite_file.read_text())
    suite["policies"] = [str(POLICIES / "plugin-resources.yaml")]
    for entry in suite["results"]:
        if entry["result"] == "fail":
            entry["result"] = "pass"
    suite_file.write_text(yaml.safe_dump(suite, sort_keys=False, width=100))
    result = run("suites/", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.rstrip("\n") == block.rstrip("\n")
