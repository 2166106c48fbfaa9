"""`plugin-guard check`: exit codes, both outputs, and bad input (DESIGN.md contract).

Runs the real command in a subprocess, as a user or CI would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HELLO_CM = "hello/hello-executor-plugin-configmap.yaml"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook", "check", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_allowed_plugin_exits_zero_and_prints_warnings(plugin_corpus: Path) -> None:
    result = run(str(plugin_corpus / HELLO_CM))
    assert result.returncode == 0, result.stderr
    assert "warn   plugin-seccomp-profile" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == (
        "1 resource checked, 0 denied, 1 violation (1 Warn)"
    )


def test_json_output_matches_the_contract(plugin_corpus: Path) -> None:
    result = run("--output", "json", str(plugin_corpus / "volcano"))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert set(report) == {"summary", "results"}
    assert set(report["summary"]) == {"resources", "denied", "violations"}
    assert report["summary"]["resources"] == len(report["results"])
    assert report["summary"]["denied"] == sum(not r["allowed"] for r in report["results"])
    assert report["summary"]["violations"] == sum(len(r["violations"]) for r in report["results"])
    for result_entry in report["results"]:
        assert set(result_entry) == {
            "file",
            "index",
            "kind",
            "namespace",
            "name",
            "allowed",
            "violations",
        }
        for violation in result_entry["violations"]:
            assert set(violation) == {"policy", "action", "path", "message"}
            assert violation["action"] in {"Enforce", "Warn", "Audit"}
    root = next(
        r
        for r in report["results"]
        if r["kind"] == "ConfigMap" and r["name"] == "volcano-executor-plugin"
    )
    assert root["allowed"] is False
    assert {
        "policy": "plugin-security-context",
        "action": "Enforce",
        "path": "data[sidecar.container].securityContext.runAsUser",
        "message": "securityContext.runAsUser must not be 0 (root) in volcano-executor-plugin: "
        "use a non-zero uid such as 1000, or leave it unset to run as the agent's uid 8737",
    } in root["violations"]


def test_stdin_and_multi_document(plugin_corpus: Path) -> None:
    text = (
        (plugin_corpus / HELLO_CM).read_text()
        + "\n---\n"
        + (plugin_corpus / "volcano/volcano-executor-plugin-configmap.yaml").read_text()
    )
    result = run("-o", "json", "-", stdin=text)
    report = json.loads(result.stdout)
    assert [(r["file"], r["index"]) for r in report["results"]] == [("-", 0), ("-", 1)]
    assert result.returncode == 1


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
    result = run(str(bad))
    assert result.returncode == 2
    assert_one_line_error(result, str(bad), "invalid YAML")
    assert f"{bad}:5:" in result.stderr or f"{bad}:4:" in result.stderr


def test_non_mapping_document_is_an_error_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- just\n- a list\n")
    result = run(str(bad))
    assert result.returncode == 2
    assert_one_line_error(result, "not a mapping")


def test_unparseable_sidecar_container_is_a_violation_not_an_error(tmp_path: Path) -> None:
    cm = tmp_path / "cm.yaml"
    cm.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x-executor-plugin\n  labels:\n"
        "    workflows.argoproj.io/configmap-type: ExecutorPlugin\n"
        "data:\n  sidecar.container: |\n    name: x\n    ports: [unclosed\n"
    )
    result = run("-o", "json", str(cm))
    assert result.returncode == 1
    violations = json.loads(result.stdout)["results"][0]["violations"]
    assert [(v["policy"], v["path"]) for v in violations] == [
        ("plugin-format", "data[sidecar.container]")
    ]
    assert "is not valid YAML" in violations[0]["message"]


def test_good_files_are_checked_even_when_one_file_is_broken(
    tmp_path: Path, plugin_corpus: Path
) -> None:
    (tmp_path / "a-bad.yaml").write_text("key: [\n")
    (tmp_path / "b-good.yaml").write_text((plugin_corpus / HELLO_CM).read_text())
    result = run("-o", "json", str(tmp_path))
    assert result.returncode == 2
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == ["hello-executor-plugin"]


def test_missing_path(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert_one_line_error(result, "no such file or directory")


def test_no_arguments_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            ("action: Enforce", "action: Enforse"),
            ["field 'action'", "'Enforse' is not one of", "did you mean 'Enforce'"],
        ),
        (("rules:", "rulez:"), ["unknown field 'rulez'", "did you mean 'rules'"]),
        (
            ("check: resourceQuantities", "check: resourceQuantity"),
            ["unknown check 'resourceQuantity'", "did you mean 'resourceQuantities'"],
        ),
        (
            ("resources: [cpu, memory]", "resource: [cpu, memory]"),
            ["rules[0].parameters.resource", "unknown field 'resource'"],
        ),
        (("id: plugin-resources", "id: plugin-resource"), ["must be named plugin-resource.yaml"]),
        (("match:", "match: [\n"), ["invalid YAML"]),
    ],
)
def test_policy_typo_names_file_policy_and_field(
    tmp_path: Path, plugin_corpus: Path, edit: tuple[str, str], fragments: list[str]
) -> None:
    from webhook.policy import bundled_policies_dir

    policies = tmp_path / "policies"
    policies.mkdir()
    for source in bundled_policies_dir().glob("*.yaml"):
        (policies / source.name).write_text(source.read_text())
    target = policies / "plugin-resources.yaml"
    text = target.read_text()
    assert edit[0] in text
    target.write_text(text.replace(edit[0], edit[1], 1))
    result = run("--policies", str(policies), str(plugin_corpus / HELLO_CM))
    assert result.returncode == 2
    assert_one_line_error(result, str(target), *fragments)
