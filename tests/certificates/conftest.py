"""The loopback fake API (tests/support/kubefake.py) with the chart's two webhook
configurations, and a kubeconfig pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubefake

HERE = Path(__file__).resolve().parent
NAMESPACE = "argo-plugin-guard"
SERVICE = "guard"
SECRET = "guard-tls"
VALIDATING = "guard-validating"
MUTATING = "guard-mutating"


def webhook_configuration(kind: str, name: str, webhooks: list[str]) -> dict[str, Any]:
    """As the chart renders it: no caBundle."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{hook}.{SERVICE}.{NAMESPACE}.svc",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "clientConfig": {
                    "service": {"name": SERVICE, "namespace": NAMESPACE, "path": "/validate"}
                },
            }
            for hook in webhooks
        ],
    }


def install_configurations(api: Any) -> None:
    api.apply(
        webhook_configuration(
            "ValidatingWebhookConfiguration", VALIDATING, ["plugin-configmaps", "workloads"]
        )
    )
    api.apply(webhook_configuration("MutatingWebhookConfiguration", MUTATING, ["pods"]))


def ca_bundles(api: Any) -> list[str | None]:
    out = []
    for plural, name in (
        ("validatingwebhookconfigurations", VALIDATING),
        ("mutatingwebhookconfigurations", MUTATING),
    ):
        obj = api.get(name, namespace="", plural=plural)
        out += [w["clientConfig"].get("caBundle") for w in obj["webhooks"]]
    return out


@pytest.fixture
def fake_api() -> Iterator[Any]:
    with kubefake.FakeKubeApi() as api:
        install_configurations(api)
        yield api


@pytest.fixture
def kubeconfig(fake_api: Any, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(fake_api.kubeconfig(namespace=NAMESPACE))
    return path
