"""Real agent pods and real plugins for the injection tests.

`data/agent-pod-review.json` is the Pod CREATE review of an agent pod exactly as Argo's
controller (v4.1) builds it with no plugin attached (spec 4.2-4.4): `init` and `main`
from one template, `ARGO_PLUGIN_ADDRESSES` / `ARGO_PLUGIN_NAMES` = `null`, the
`var-run-argo` emptyDir, the workflow SA token volume; plus the opt-in label a workflow
sets through `spec.podMetadata.labels`. The registry is the real hello, slack and python
plugin ConfigMaps of the plugin corpus.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from webhook.executor_plugin import ExecutorPlugin, read_plugin
from webhook.inject import Injection, inject
from webhook.manifests import load_documents

DATA = Path(__file__).parent / "data"
AGENT_REVIEW = DATA / "agent-pod-review.json"
REGISTRY_PLUGINS = ("hello", "slack", "python")
NAMESPACE = "argo"


def agent_review() -> dict[str, Any]:
    review: dict[str, Any] = json.loads(AGENT_REVIEW.read_text())
    return review


def agent_pod() -> dict[str, Any]:
    pod: dict[str, Any] = agent_review()["request"]["object"]
    return pod


def load_plugin(path: Path) -> ExecutorPlugin:
    (doc,) = load_documents([str(path)])
    plugin = read_plugin(doc.obj)
    assert plugin is not None
    return plugin


def corpus_plugin(corpus: Path, name: str) -> ExecutorPlugin:
    return load_plugin(corpus / name / f"{name}-executor-plugin-configmap.yaml")


def plugin_from_container(
    container: Mapping[str, Any],
    *,
    name: str | None = None,
    namespace: str | None = None,
    automount: bool = False,
) -> ExecutorPlugin:
    """A plugin ConfigMap with this container, read as the registry reads it."""
    from webhook.executor_plugin import container_yaml

    plugin_name = name or str(container["name"]).removesuffix("-executor-plugin")
    metadata: dict[str, Any] = {
        "name": f"{plugin_name}-executor-plugin",
        "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
    }
    if namespace:
        metadata["namespace"] = namespace
    plugin = read_plugin(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {
                "sidecar.automountServiceAccountToken": "true" if automount else "false",
                "sidecar.container": container_yaml(container),
            },
        }
    )
    assert plugin is not None
    return plugin


def minimal_container(name: str, port: int, **extra: Any) -> dict[str, Any]:
    """What Argo itself accepts: a port, requests, limits and a (possibly empty) SC."""
    container: dict[str, Any] = {
        "name": name,
        "image": "ghcr.io/example/plugin@sha256:" + "a" * 64,
        "ports": [{"containerPort": port}],
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
        "securityContext": {},
    }
    container.update(extra)
    return container


def apply(pod: Mapping[str, Any], injection: Injection) -> dict[str, Any]:
    patched: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), list(injection.patch))
    return patched


def env_value(container: Mapping[str, Any], name: str) -> Any:
    for var in container.get("env") or []:
        if var["name"] == name:
            return json.loads(var["value"])
    raise AssertionError(f"{name} not in {container['name']}")


def by_name(containers: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    return next(c for c in containers if c["name"] == name)


@pytest.fixture(scope="session")
def registry(plugin_corpus: Path) -> list[ExecutorPlugin]:
    return [corpus_plugin(plugin_corpus, name) for name in REGISTRY_PLUGINS]


@pytest.fixture
def run(policy_set: Any) -> Callable[..., Injection]:
    """inject() with the bundled policies and the test namespace."""

    def call(pod: Mapping[str, Any], plugins: Sequence[Any], **kwargs: Any) -> Injection:
        kwargs.setdefault("policies", policy_set)
        kwargs.setdefault("namespace", NAMESPACE)
        return inject(pod, plugins, **kwargs)

    return call
