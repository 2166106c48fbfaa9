"""The chart, rendered with `helm template` and applied, with its webhooks pointed at a
real `plugin-guard serve`: what `kubectl` shows when the API server calls it.

Expected verdicts are never written down here: each plugin ConfigMap of the corpus is
also judged offline by `plugin-guard check -o json` (the same engine and policies), and
the API server's answer must agree with it, reason by reason.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.admission.review import short_path

from .controlplane import ControlPlane
from .guard import (
    CORPUS,
    FULLNAME,
    RELEASE_NAMESPACE,
    GuardServer,
    Installation,
    installed,
    plugin_guard_binary,
    wait_for_webhook,
)

pytestmark = pytest.mark.realapi

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_CONFIGMAPS = sorted(CORPUS.glob("*/*configmap*.yaml"))
RISKY = REPO_ROOT / "examples" / "risky-plugin-configmap.yaml"
WEBHOOK = f"plugin-configmaps.{FULLNAME}.{RELEASE_NAMESPACE}.svc"


@pytest.fixture(scope="module")
def chart(control_plane: ControlPlane) -> Iterator[Installation]:
    server = GuardServer(control_plane)
    try:
        with installed(control_plane, server) as installation:
            probe = yaml.safe_load(RISKY.read_text())
            probe["metadata"].pop("namespace", None)
            wait_for_webhook(control_plane, probe, "default")
            yield installation
    finally:
        server.stop()


def offline_verdict(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(plugin_guard_binary()), "check", "-o", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert len(results) == 1
    return dict(results[0])


def without_namespace(path: Path) -> str:
    doc = yaml.safe_load(path.read_text())
    doc["metadata"].pop("namespace", None)
    return yaml.safe_dump(doc)


def test_the_rendered_chart_is_stored_with_webhooks_pointed_at_the_server(
    chart: Installation, control_plane: ControlPlane
) -> None:
    hooks = control_plane.kubectl(
        "get", "validatingwebhookconfiguration", FULLNAME, "-o", "json", check=True
    ).json()
    config = hooks["webhooks"][0]["clientConfig"]
    assert config["url"] == f"{chart.server.url}/validate"
    assert config["caBundle"] == chart.server.ca_bundle
    deployment = control_plane.kubectl(
        "get", "deployment", FULLNAME, "-n", RELEASE_NAMESPACE, "-o", "json", check=True
    ).json()
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == FULLNAME


@pytest.mark.parametrize(
    "path", CORPUS_CONFIGMAPS, ids=[str(p.relative_to(CORPUS)) for p in CORPUS_CONFIGMAPS]
)
def test_kubectl_apply_of_a_corpus_plugin_agrees_with_check(
    chart: Installation, control_plane: ControlPlane, make_namespace, path: Path
) -> None:
    verdict = offline_verdict(path)
    ns = make_namespace("plugins")
    result = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=without_namespace(path))
    name = verdict["name"]
    stored = control_plane.kubectl("get", "configmap", name, "-n", ns)
    warned = [v for v in verdict["violations"] if v["action"] == "Warn"]
    enforced = [v for v in verdict["violations"] if v["action"] == "Enforce"]
    if verdict["allowed"]:
        assert result.returncode == 0, result.stderr
        assert f"configmap/{name} created" in result.stdout
        assert stored.returncode == 0
    else:
        assert result.returncode == 1
        assert f'admission webhook "{WEBHOOK}" denied the request: ' in result.stderr
        count = len(enforced)
        assert f"{count} policy violation{'s' if count != 1 else ''}:" in result.stderr
        for violation in enforced:
            assert f"[{violation['policy']}] {violation['path']}: " in result.stderr
        assert "NotFound" in stored.stderr
    # kubectl prints each of the webhook's warnings on stderr, allowed or denied (with the
    # short path warnings use: `sidecar.` for `data[sidecar.container].`)
    for violation in warned:
        shown = f"Warning: [{violation['policy']}] {short_path(violation['path'])}: "
        assert shown in result.stderr


def hello_plugin(namespace: str, **security: Any) -> dict[str, Any]:
    """The corpus hello plugin (allowed), with `security` merged into its securityContext."""
    doc = yaml.safe_load((CORPUS / "hello" / "hello-executor-plugin-configmap.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    container = yaml.safe_load(doc["data"]["sidecar.container"])
    container["securityContext"].update(security)
    doc["data"]["sidecar.container"] = yaml.safe_dump(container)
    return dict(doc)


def reviews_of(chart: Installation, namespace: str) -> list[dict[str, Any]]:
    return [r for r in chart.server.reviews() if r.get("namespace") == namespace]


def test_server_dry_run_is_judged_and_never_stored(
    chart: Installation, control_plane: ControlPlane, make_namespace
) -> None:
    ns = make_namespace("dryrun")
    allowed = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(hello_plugin(ns))
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "configmap/hello-executor-plugin created (server dry run)" in allowed.stdout
    assert "Warning: [plugin-seccomp-profile]" in allowed.stderr

    root = hello_plugin(ns, runAsUser=0, runAsNonRoot=False)
    denied = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(root)
    )
    assert denied.returncode == 1
    assert f'admission webhook "{WEBHOOK}" denied the request: ' in denied.stderr
    assert "[plugin-security-context] data[sidecar.container].securityContext.runAsUser" in (
        denied.stderr
    )
    listed = control_plane.kubectl("get", "configmaps", "-n", ns, "-o", "name", check=True)
    assert "hello-executor-plugin" not in listed.stdout
    # the API server said it was a dry run (sideEffects: None makes that allowed)
    logged = reviews_of(chart, ns)
    assert [(r["operation"], r["allowed"], r.get("dryRun")) for r in logged] == [
        ("CREATE", True, True),
        ("CREATE", False, True),
    ]


def test_an_update_that_makes_a_plugin_worse_is_denied_and_the_stored_one_kept(
    chart: Installation, control_plane: ControlPlane, make_namespace
) -> None:
    ns = make_namespace("update")
    control_plane.apply([hello_plugin(ns)], check=True)
    before = control_plane.kubectl(
        "get", "configmap", "hello-executor-plugin", "-n", ns, "-o", "json", check=True
    ).json()

    worse = hello_plugin(ns, allowPrivilegeEscalation=True, privileged=True)
    result = control_plane.apply([worse])
    assert result.returncode == 1
    assert f'admission webhook "{WEBHOOK}" denied the request: ' in result.stderr
    assert "allowPrivilegeEscalation must be false" in result.stderr

    after = control_plane.kubectl(
        "get", "configmap", "hello-executor-plugin", "-n", ns, "-o", "json", check=True
    ).json()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["data"] == before["data"]
    operations = [(r["operation"], r["allowed"]) for r in reviews_of(chart, ns)]
    assert operations == [("CREATE", True), ("UPDATE", False)]
