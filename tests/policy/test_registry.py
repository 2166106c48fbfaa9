"""The check registry: a check registers itself, is prepared once per rule at load, and a
policy naming a check that does not exist is a load error that names it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.errors import PolicyLoadError
from webhook.policy import Policy, bundled_policies_dir, load_policies
from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
from webhook.policy.registry import CheckRegistry, Parameters, default_registry

BUILT_IN_CHECKS = {
    "agentPodInjected",
    "argoPluginTemplates",
    "httpSuccessCondition",
    "inlineSecrets",
    "pluginConfigMapName",
    "pluginFormat",
    "pluginServiceAccount",
    "podSecurityStandard",
    "resourceQuantities",
    "uniquePluginPorts",
}


def policy_document(policy_id: str, rule: dict[str, Any], targets: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "argo-plugin-guard/v1",
        "kind": "Policy",
        "id": policy_id,
        "description": "test policy",
        "action": "Enforce",
        "match": {"targets": targets},
        "rules": [rule],
    }


def pod(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team-a"},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def test_the_built_in_checks_are_registered_by_importing_the_engine() -> None:
    assert set(default_registry.names()) == BUILT_IN_CHECKS


def test_a_throwaway_check_registers_and_a_policy_uses_it(tmp_path: Path) -> None:
    checks = default_registry.copy()
    prepared: list[Parameters] = []

    def forbidden_tags(parameters: Parameters) -> frozenset[str]:
        prepared.append(parameters)
        return frozenset(parameters["tags"])

    @checks.register(
        "noForbiddenTag",
        targets=[Target.CONTAINER],
        prepare=forbidden_tags,
        parameters_schema={
            "type": "object",
            "required": ["tags"],
            "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        },
    )
    def no_forbidden_tag(
        view: TargetView, tags: frozenset[str], context: EvaluationContext
    ) -> Iterator[Finding]:
        tag = str(view.value.get("image", "")).rpartition(":")[2]
        if tag in tags:
            yield Finding("image", "{container} uses a forbidden tag")

    rule = {"check": "noForbiddenTag", "parameters": {"tags": ["latest"]}}
    (tmp_path / "no-latest.yaml").write_text(
        yaml.safe_dump(policy_document("no-latest", rule, ["container"]))
    )
    shutil.copy(bundled_policies_dir() / "pod-security-restricted.yaml", tmp_path)

    policies = load_policies(tmp_path, checks=checks)

    assert prepared == [{"tags": ["latest"]}]  # once, at load
    verdict = policies.evaluate(pod("example/app:latest"))
    assert [
        (v.policy, v.path, v.message) for v in verdict.violations if v.policy == "no-latest"
    ] == [("no-latest", "spec.containers[0].image", "app uses a forbidden tag")]
    # The built-in checks are still there beside the new one.
    assert "pod-security-restricted" in {v.policy for v in verdict.violations}
    assert not [
        v for v in policies.evaluate(pod("example/app:1.0")).violations if v.policy == "no-latest"
    ]
    policies.evaluate(pod("example/app:latest"))
    assert len(prepared) == 1  # evaluating does not prepare again
    assert "noForbiddenTag" not in default_registry


def test_registering_a_name_twice_is_refused() -> None:
    checks = CheckRegistry()

    @checks.register("once", targets=[Target.RESOURCE])
    def once(
        view: TargetView, parameters: Parameters, context: EvaluationContext
    ) -> Iterator[Finding]:
        return iter(())

    with pytest.raises(ValueError, match="'once' registered twice"):
        checks.register("once", targets=[Target.RESOURCE])(once)


def test_from_document_alone_names_an_unknown_check_and_the_closest_one() -> None:
    document = policy_document("p", {"check": "resourceQuantity"}, ["container"])
    with pytest.raises(PolicyLoadError) as caught:
        Policy.from_document(document, "p.yaml")
    assert caught.value.source == "p.yaml"
    assert caught.value.field == "rules[0].check"
    assert "unknown check 'resourceQuantity'" in str(caught.value)
    assert "did you mean 'resourceQuantities'" in str(caught.value)


def test_from_document_alone_builds_a_working_policy() -> None:
    rule = {"check": "resourceQuantities", "parameters": {"maxLimits": {"cpu": "1"}}}
    policy = Policy.from_document(policy_document("p", rule, ["container"]), "p.yaml")
    from webhook.policy import PolicySet

    container = {
        "name": "app",
        "image": "x",
        "resources": {
            "requests": {"cpu": "1", "memory": "1Mi"},
            "limits": {"cpu": "2", "memory": "1Mi"},
        },
    }
    obj = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}}
    [violation] = PolicySet([policy]).evaluate(obj).violations
    assert violation.path == "spec.containers[0].resources.limits.cpu"
    assert "exceeds the cap of 1" in violation.message


@pytest.mark.parametrize(
    ("rule", "field", "fragment"),
    [
        (
            {"check": "resourceQuantities", "parameters": {"maxLimits": {"memory": "lots"}}},
            "rules[0].parameters",
            "maxLimits.memory 'lots' is not a quantity",
        ),
        (
            {"check": "inlineSecrets", "parameters": {"allow": {"values": ["("]}}},
            "rules[0].parameters",
            "invalid regex",
        ),
    ],
)
def test_parameters_a_check_cannot_prepare_are_a_load_error(
    tmp_path: Path, rule: Mapping[str, Any], field: str, fragment: str
) -> None:
    targets = ["container"] if rule["check"] == "resourceQuantities" else ["resource"]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy_document("p", dict(rule), targets)))
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(tmp_path)
    assert caught.value.source == str(tmp_path / "p.yaml")
    assert caught.value.policy == "p"
    assert caught.value.field == field
    assert fragment in str(caught.value)
