"""Render charts/argo-plugin-guard with the real `helm` binary (`make test` installs it).

`Helm.template()` returns the rendered documents; `Helm.run()` returns the raw process
for tests that expect helm to fail. Helm's cache and config go to a temporary folder,
and nothing needs a cluster or the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "argo-plugin-guard"
CI_VALUES = CHART / "ci"
KUBE_VERSION = "1.31.0"
RELEASE = "guard"
NAMESPACE = "argo-plugin-guard"
FULLNAME = f"{RELEASE}-argo-plugin-guard"
SERVICE_HOST = f"{FULLNAME}.{NAMESPACE}.svc"
CERT_MANAGER = ("--set", "certManager.enabled=true")


def find_helm() -> Path:
    candidates = [
        os.environ.get("HELM"),
        str(Path(sys.executable).parent / "helm"),
        str(REPO_ROOT / ".venv" / "bin" / "helm"),
        shutil.which("helm"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail(
        "helm not found (looked for $HELM, .venv/bin/helm and PATH): the chart tests need "
        "the real binary; `make test` installs it (the Makefile's $(BIN)/helm target)",
        pytrace=False,
    )


class Helm:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def template_args(
        self, args: Sequence[str], values: Mapping[str, Any] | None, tmp: Path | None
    ) -> list[str]:
        out = [
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            *args,
        ]
        if values is not None:
            assert tmp is not None, "values need a folder for the values file"
            path = tmp / f"values-{len(list(tmp.glob('values-*.yaml')))}.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            out += ["--values", str(path)]
        return out

    def template_raw(
        self,
        *args: str,
        values: Mapping[str, Any] | None = None,
        tmp: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(*self.template_args(args, values, tmp))

    def template_text(
        self, *args: str, values: Mapping[str, Any] | None = None, tmp: Path | None = None
    ) -> str:
        proc = self.template_raw(*args, values=values, tmp=tmp)
        if proc.returncode != 0:
            pytest.fail(f"helm template {' '.join(args)} failed:\n{proc.stderr}", pytrace=False)
        return proc.stdout

    def template(
        self, *args: str, values: Mapping[str, Any] | None = None, tmp: Path | None = None
    ) -> list[dict[str, Any]]:
        text = self.template_text(*args, values=values, tmp=tmp)
        return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(find_helm(), tmp_path_factory.mktemp("helm-home"))


def find(docs: Sequence[Mapping[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one document of `kind` (and `name`); fails when there is none or several."""
    hits = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, got {len(hits)}: {kinds(docs)}"
    return dict(hits[0])


def find_all(docs: Sequence[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [dict(d) for d in docs if d["kind"] == kind]


def kinds(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def container(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    deployment = find(docs, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["webhook"]
    return dict(containers[0])


def arg_value(args: Sequence[str], flag: str) -> str | None:
    """The value after `flag` in an argument list (None when the flag is absent)."""
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1]
    return None
