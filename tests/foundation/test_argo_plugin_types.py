"""Argo's own unit cases (spec section 9), reproduced against our model.

pkg/plugins/spec/plugin_types_test.go: TestPlugin_Validate, TestSidecar_Validate
workflow/util/plugin/configmap_test.go: TestToConfigMap, TestFromConfigMap
"""

from __future__ import annotations

from typing import Any

import pytest

from webhook.errors import PluginError
from webhook.executor_plugin import (
    ExecutorPlugin,
    argo_validate,
    from_configmap,
    from_manifest,
    to_configmap,
)


def test_plugin_validate_empty_plugin() -> None:
    # TestPlugin_Validate: an empty plugin fails on the first check, wrapped.
    with pytest.raises(PluginError, match=r"^sidecar is invalid: at least one port is mandatory$"):
        from_manifest({"kind": "ExecutorPlugin", "spec": {"sidecar": {"container": {}}}})


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({}, "at least one port is mandatory"),  # NoPorts
        ({"ports": [{}]}, "resources requests are mandatory"),  # ports: [{}] counts as a port
        (
            {"ports": [{}], "resources": {"requests": {}}},
            "resources limits are mandatory",
        ),
        (
            {"ports": [{}], "resources": {"requests": {}, "limits": {}}},
            "security context is mandatory",
        ),
        (
            {"ports": [{}], "resources": {"requests": {}, "limits": {}}, "securityContext": {}},
            None,  # only nil is tested: empty maps pass
        ),
        (
            {"ports": [{}], "resources": {"requests": None, "limits": {}}, "securityContext": {}},
            "resources requests are mandatory",
        ),  # YAML null is nil
    ],
)
def test_sidecar_validate(container: dict[str, Any], message: str | None) -> None:
    assert argo_validate(container) == message


def _valid_plugin() -> ExecutorPlugin:
    return ExecutorPlugin(
        name="my-plug",
        kind="ExecutorPlugin",
        labels={"my-label": "my-value"},
        annotations={"my-anno": "my-value"},
        automount_service_account_token=True,
        container={
            "ports": [{"containerPort": 1234}],
            "resources": {"requests": {}, "limits": {}},
            "securityContext": {},
        },
    )


def test_to_configmap_invalid() -> None:
    plugin = _valid_plugin()
    plugin.container = {}
    with pytest.raises(PluginError, match="sidecar is invalid: at least one port is mandatory"):
        to_configmap(plugin)


def test_to_configmap_valid() -> None:
    cm = to_configmap(_valid_plugin())
    assert cm["metadata"]["name"] == "my-plug-executor-plugin"
    assert cm["metadata"]["labels"] == {
        "my-label": "my-value",
        "workflows.argoproj.io/configmap-type": "ExecutorPlugin",
    }
    assert len(cm["metadata"]["annotations"]) == 1
    assert cm["data"]["sidecar.automountServiceAccountToken"] == "true"
    assert cm["data"]["sidecar.container"] == (
        'name: ""\nports:\n- containerPort: 1234\nresources: {}\nsecurityContext: {}\n'
    )


def test_to_configmap_user_label_overrides_type_label() -> None:
    # Argo copies user labels after the type label, so a user label wins.
    plugin = _valid_plugin()
    plugin.labels = {"workflows.argoproj.io/configmap-type": "Other"}
    assert to_configmap(plugin)["metadata"]["labels"] == {
        "workflows.argoproj.io/configmap-type": "Other"
    }


def test_from_configmap_invalid() -> None:
    with pytest.raises(PluginError, match=r"^sidecar is invalid: at least one port is mandatory$"):
        from_configmap({"kind": "ConfigMap", "metadata": {}, "data": {"sidecar.container": ""}})


def test_from_configmap_valid() -> None:
    # The Go test writes the container as flow-style YAML inside data.
    cm = {
        "kind": "ConfigMap",
        "metadata": {
            "name": "my-plug-executor-plugin",
            "annotations": {"my-anno": "my-value"},
            "labels": {
                "my-label": "my-value",
                "workflows.argoproj.io/configmap-type": "ExecutorPlugin",
            },
        },
        "data": {
            "sidecar.automountServiceAccountToken": "true",
            "sidecar.container": "{'name': 'my-name', 'ports': [{}], "
            "'resources': {'requests': {}, 'limits': {}}, 'securityContext': {}}",
        },
    }
    plugin = from_configmap(cm)
    assert plugin.kind == "ExecutorPlugin"
    assert plugin.name == "my-plug"
    assert plugin.annotations == {"my-anno": "my-value"}
    assert plugin.labels == {"my-label": "my-value"}  # the type label is removed
    assert plugin.automount_service_account_token is True
    assert plugin.container is not None and plugin.container["name"] == "my-name"


def test_from_configmap_roundtrip_trap_resources_empty() -> None:
    # spec 2 "Trap": ToConfigMap writes `resources: {}`, which reads back as nil requests.
    plugin = _valid_plugin()
    plugin.container = {
        "ports": [{"containerPort": 1}],
        "securityContext": {},
        "resources": {"requests": {}, "limits": {}},
    }
    cm = to_configmap(plugin)
    assert "resources: {}" in cm["data"]["sidecar.container"]
    with pytest.raises(PluginError, match="resources requests are mandatory"):
        from_configmap(cm)


@pytest.mark.parametrize(
    "value, expected", [("true", True), ("True", False), ("false", False), (None, False)]
)
def test_automount_only_exact_true(value: str | None, expected: bool) -> None:
    data = {
        "sidecar.container": "ports: [{}]\nresources: {requests: {}, limits: {}}\nsecurityContext: {}"
    }
    if value is not None:
        data["sidecar.automountServiceAccountToken"] = value
    cm = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": data}
    assert from_configmap(cm).automount_service_account_token is expected


def test_from_configmap_is_strict_about_unknown_fields() -> None:
    cm = {
        "kind": "ConfigMap",
        "metadata": {"name": "x-executor-plugin"},
        "data": {"sidecar.container": "ports: [{}]\nsecurityContex: {}\n"},
    }
    with pytest.raises(
        PluginError, match=r"unknown field 'securityContex'.*did you mean 'securityContext'"
    ):
        from_configmap(cm)


def test_plugin_yaml_unknown_spec_field_is_refused() -> None:
    # Old-style `spec.description` is an UnmarshalStrict error in Argo.
    with pytest.raises(PluginError, match="unknown field 'description'"):
        from_manifest(
            {"kind": "ExecutorPlugin", "spec": {"description": "x", "sidecar": {"container": {}}}}
        )


def test_to_configmap_writes_numbers_in_string_fields_as_go_does() -> None:
    # volcano's plugin.yaml has `args: [server, --port, 8080]`: Go holds "8080" (a
    # []string), and quantities are strings too (corpora-findings 3.6).
    plugin = _valid_plugin()
    plugin.container = {
        "ports": [{"containerPort": 8080}],
        "args": ["server", "--port", 8080],
        "resources": {"requests": {"cpu": 1}, "limits": {"cpu": 2, "memory": "1Gi"}},
        "securityContext": {"runAsUser": 1000},
    }
    text = to_configmap(plugin)["data"]["sidecar.container"]
    assert '- "8080"' in text
    assert "containerPort: 8080\n" in text  # an int32 stays a number
    assert 'cpu: "1"' in text and "runAsUser: 1000\n" in text
