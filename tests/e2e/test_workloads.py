"""The chart's workloads webhook (`webhook.workloads.enabled`): an Argo Workflow with a
credential written inline, created through the API server in a namespace that opted in."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.admission.review import short_path

from .controlplane import ControlPlane
from .guard import (
    FULLNAME,
    RELEASE_NAMESPACE,
    GuardServer,
    Installation,
    installed,
    plugin_guard_binary,
    wait_for_webhook,
)

pytestmark = pytest.mark.realapi

OPT_IN = {"argo-plugin-guard/validate": "true"}
WEBHOOK = f"workloads.{FULLNAME}.{RELEASE_NAMESPACE}.svc"


def github_token() -> str:
    """A token of GitHub's format, made here (never a real one, never a corpus row)."""
    alphabet = string.ascii_letters + string.digits
    return "ghp_" + "".join(secrets.choice(alphabet) for _ in range(36))


def workflow(name: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "container": {
                        "image": "alpine:3.20",
                        "command": ["sh", "-c", "echo hi"],
                        "env": [{"name": "GITHUB_TOKEN", "value": token}],
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def chart(argo_crds: ControlPlane) -> Iterator[Installation]:
    server = GuardServer(argo_crds)
    values = {"webhook": {"workloads": {"enabled": True}}}
    try:
        with installed(argo_crds, server, values) as installation:
            probe = {  # a plugin ConfigMap with no container: denied by the plugin webhook
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "probe-executor-plugin",
                    "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
                },
                "data": {},
            }
            wait_for_webhook(argo_crds, probe, "default")
            yield installation
    finally:
        server.stop()


def offline(doc: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [str(plugin_guard_binary()), "check", "-o", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return dict(json.loads(proc.stdout)["results"][0])


def test_a_workflow_with_an_inline_secret_warns_as_check_does_and_never_shows_it(
    chart: Installation, argo_crds: ControlPlane, make_namespace, tmp_path: Path
) -> None:
    token = github_token()
    doc = workflow("leaky", token)
    verdict = offline(doc, tmp_path)
    findings = [v for v in verdict["violations"] if v["policy"] == "no-inline-secrets"]
    assert findings, "precondition: check finds the inline token"

    ns = make_namespace("wf", OPT_IN)
    result = argo_crds.kubectl("create", "-n", ns, "-f", "-", input=yaml.safe_dump(doc))
    output = result.stdout + result.stderr
    if verdict["allowed"]:
        assert result.returncode == 0, result.stderr
        assert "workflow.argoproj.io/leaky created" in result.stdout
    else:
        assert result.returncode == 1
        assert f'admission webhook "{WEBHOOK}" denied the request' in result.stderr
    for finding in findings:
        shown = f"[no-inline-secrets] {short_path(finding['path'])}"
        assert shown in output
    assert token not in output
    assert token[4:12] not in output
    # the server's review log names the policy and path, never the value
    logged = [r for r in chart.server.reviews() if r.get("namespace") == ns]
    assert [r["kind"] for r in logged] == ["Workflow"]
    assert any(v["policy"] == "no-inline-secrets" for v in logged[0]["violations"])
    assert token[4:12] not in chart.server.process.log_file.read_text()


def test_a_namespace_that_did_not_opt_in_is_not_sent(
    chart: Installation, argo_crds: ControlPlane, make_namespace
) -> None:
    ns = make_namespace("wf")
    result = argo_crds.kubectl(
        "create", "-n", ns, "-f", "-", input=yaml.safe_dump(workflow("quiet", github_token()))
    )
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr
    assert [r for r in chart.server.reviews() if r.get("namespace") == ns] == []
