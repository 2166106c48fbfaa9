"""Argo's checks on `plugin:` templates and workflow-level plugins (spec 1.2, 1.3, 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webhook.check import run_check
from webhook.policy import Action, PolicySet


def workflow_template(*templates: dict[str, Any], kind: str = "WorkflowTemplate") -> dict[str, Any]:
    spec = {"templates": list(templates)}
    if kind == "CronWorkflow":
        spec = {"workflowSpec": spec}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "t"},
        "spec": spec,
    }


def findings(policy_set: PolicySet, obj: dict[str, Any], policy: str) -> list[tuple[str, str]]:
    return [(v.path, v.message) for v in policy_set.evaluate(obj).violations if v.policy == policy]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        # TestPlugin_UnmarshalJSON: {} -> "expected exactly one key, got 0"; 1 -> a JSON type error.
        ({}, "expected exactly one key, got 0"),
        ({"a": {}, "b": {}}, "expected exactly one key, got 2"),
        (1, "json: cannot unmarshal number into Go value of type map[string]interface {}"),
        ("x", "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    ],
)
def test_plugin_field_needs_exactly_one_key(
    policy_set: PolicySet, plugin: Any, message: str
) -> None:
    [(path, text)] = findings(
        policy_set, workflow_template({"name": "a", "plugin": plugin}), "argo-plugin-templates"
    )
    assert path == "spec.templates[0].plugin"
    assert text.startswith(message)


def test_one_key_is_fine_and_paths_follow_cron_workflows(policy_set: PolicySet) -> None:
    ok = workflow_template({"name": "a", "plugin": {"foo": 1}}, kind="CronWorkflow")
    assert findings(policy_set, ok, "argo-plugin-templates") == []
    bad = workflow_template({"name": "a", "plugin": {}}, kind="CronWorkflow")
    assert [p for p, _ in findings(policy_set, bad, "argo-plugin-templates")] == [
        "spec.workflowSpec.templates[0].plugin"
    ]


def test_pod_resources_are_not_supported_for_plugin_templates(policy_set: PolicySet) -> None:
    obj = workflow_template(
        {"name": "p", "plugin": {"x": {}}, "podResources": {}, "resourceClaims": []}
    )
    assert findings(policy_set, obj, "argo-plugin-templates") == [
        (
            "spec.templates[0].podResources",
            "templates.p.podResources is not supported for Plugin templates",
        ),
        (
            "spec.templates[0].resourceClaims",
            "templates.p.resourceClaims is not supported for Plugin templates",
        ),
    ]


def test_workflow_level_plugin_needs_a_name(policy_set: PolicySet) -> None:
    # TestExecutorPluginsValidation/MissingName.
    obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "w-"},
        "spec": {"executorPlugins": [{"spec": {"sidecar": {"container": {"name": "x"}}}}]},
    }
    verdict = policy_set.evaluate(obj)
    assert (
        "spec.executorPlugins[0].metadata.name",
        "spec.executorPlugins: executor plugin metadata name is mandatory",
    ) in [(v.path, v.message) for v in verdict.violations if v.policy == "plugin-format"]
    # TestExecutorPluginsValidation/InvalidSidecar: the sidecar checks apply to the entry.
    assert (
        "spec.executorPlugins[0].spec.sidecar.container.ports",
        "sidecar is invalid: at least one port is mandatory",
    ) in [(v.path, v.message) for v in verdict.violations if v.action is Action.ENFORCE]


def test_empty_executor_plugins_list_is_valid(policy_set: PolicySet) -> None:
    # TestExecutorPluginsValidation/EmptyList.
    obj = {
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"executorPlugins": [], "templates": []},
    }
    assert policy_set.evaluate(obj).violations == ()


def test_every_corpus_workflow_passes(plugin_corpus: Path, policy_set: PolicySet) -> None:
    # corpora-findings 1: every `plugin:` value in the corpus has exactly one key.
    report = run_check([str(plugin_corpus)], policy_set)
    argo = [
        r
        for r in report.results
        if r.document.kind in {"Workflow", "WorkflowTemplate", "CronWorkflow"}
    ]
    assert len(argo) >= 20
    assert [
        (r.document.source, v.path)
        for r in argo
        for v in r.verdict.violations
        if v.policy == "argo-plugin-templates"
    ] == []
