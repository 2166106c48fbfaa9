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
CORPUS = REPO_ROOT.parent / "shared" / "corpora" / "argo-plugins"
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
    # kubectl prints each of the webhook's warnings on stderr, allowed or denied, with
    # the short path and the whole fix (docs/policies.md)
    for violation in warned:
        shown = f"Warning: [{violation['policy']}] {short_path(violation['path'])}: "
        assert shown in result.stderr
