"""The policy engine on hand-made policies: targets, paths, matching, every violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.errors import PolicyLoadError
from webhook.policy import Action, EvaluationContext, load_policies


def write_policy(directory: Path, policy_id: str, **fields: Any) -> None:
    document = {
        "apiVersion": "argo-plugin-guard/v1",
        "kind": "Policy",
        "id": policy_id,
        "description": "test policy",
        "action": "Enforce",
        **fields,
    }
    (directory / f"{policy_id}.yaml").write_text(yaml.safe_dump(document))


NON_ROOT = {
    "match": {"targets": ["container"]},
    "rules": [
        {
            "schema": {
                "required": ["securityContext"],
                "properties": {
                    "securityContext": {
                        "required": ["runAsNonRoot"],
                        "properties": {"runAsNonRoot": {"const": True}},
                    }
                },
            },
            "message": "{container} must run as non-root",
        }
    ],
}


def pod(*containers: dict[str, Any], namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"containers": list(containers)},
    }


def test_every_container_is_reported_with_its_path(tmp_path: Path) -> None:
    write_policy(tmp_path, "non-root", **NON_ROOT)
    policies = load_policies(tmp_path)
    verdict = policies.evaluate(
        pod(
            {"name": "a"},
            {"name": "b", "securityContext": {"runAsNonRoot": True}},
            {"name": "c", "securityContext": {"runAsNonRoot": False}},
        )
    )
    assert [(v.path, v.message) for v in verdict.violations] == [
        ("spec.containers[0].securityContext", "a must run as non-root"),
        ("spec.containers[2].securityContext.runAsNonRoot", "c must run as non-root"),
    ]
    assert not verdict.allowed


@pytest.mark.parametrize(
    ("kind", "wrap", "prefix"),
    [
        ("Deployment", lambda s: {"spec": {"template": {"spec": s}}}, "spec.template.spec"),
        (
            "CronJob",
            lambda s: {"spec": {"jobTemplate": {"spec": {"template": {"spec": s}}}}},
            "spec.jobTemplate.spec.template.spec",
        ),
    ],
)
def test_workload_pod_templates(tmp_path: Path, kind: str, wrap: Any, prefix: str) -> None:
    write_policy(tmp_path, "non-root", **NON_ROOT)
    obj = {"kind": kind, "metadata": {"name": "w"}, **wrap({"initContainers": [{"name": "i"}]})}
    [violation] = load_policies(tmp_path).evaluate(obj).violations
    assert violation.path == f"{prefix}.initContainers[0].securityContext"


def test_argo_workflow_template_containers(tmp_path: Path) -> None:
    write_policy(tmp_path, "non-root", **NON_ROOT)
    workflow = {
        "kind": "CronWorkflow",
        "metadata": {"name": "w"},
        "spec": {
            "workflowSpec": {
                "templates": [
                    {"name": "plug", "plugin": {"hello": {}}},
                    {"name": "s", "script": {"image": "x", "source": "echo"}},
                    {"name": "cs", "containerSet": {"containers": [{"name": "x"}]}},
                ]
            }
        },
    }
    paths = [v.path for v in load_policies(tmp_path).evaluate(workflow).violations]
    assert paths == [
        "spec.workflowSpec.templates[1].script.securityContext",
        "spec.workflowSpec.templates[2].containerSet.containers[0].securityContext",
    ]


def test_namespace_and_kind_matching(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "non-root",
        **{
            **NON_ROOT,
            "match": {
                "targets": ["container"],
                "kinds": ["Pod"],
                "namespaces": {"exclude": ["kube-*"]},
            },
        },
    )
    policies = load_policies(tmp_path)
    assert policies.evaluate(pod({"name": "a"}, namespace="kube-system")).allowed
    assert not policies.evaluate(pod({"name": "a"}, namespace="team-a")).allowed
    # The request namespace is used when the object has none (AdmissionReview objects).
    bare = pod({"name": "a"})
    del bare["metadata"]["namespace"]
    assert policies.evaluate(bare, EvaluationContext(namespace="kube-public")).allowed


def test_warn_and_audit_do_not_deny(tmp_path: Path) -> None:
    write_policy(tmp_path, "non-root", **{**NON_ROOT, "action": "Warn"})
    verdict = load_policies(tmp_path).evaluate(pod({"name": "a"}))
    assert verdict.allowed
    assert [v.action for v in verdict.violations] == [Action.WARN]


def test_messages_never_echo_object_values(tmp_path: Path) -> None:
    # Only the known placeholders are filled; anything else stays literal.
    write_policy(
        tmp_path,
        "p",
        match={"targets": ["container"]},
        rules=[{"schema": {"required": ["x"]}, "message": "{container} {env} {value}"}],
    )
    [violation] = load_policies(tmp_path).evaluate(pod({"name": "c"})).violations
    assert violation.message == "c {env} {value}"


def test_invalid_rule_schema_is_a_load_error(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "p",
        match={"targets": ["container"]},
        rules=[{"schema": {"type": "objekt"}, "message": "m"}],
    )
    with pytest.raises(
        PolicyLoadError, match=r"policy 'p': field 'rules\[0\]\.schema.*not a valid JSON Schema"
    ):
        load_policies(tmp_path)


def test_check_on_a_target_it_does_not_support(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "p",
        match={"targets": ["pod"]},
        rules=[{"check": "pluginFormat"}],
    )
    with pytest.raises(PolicyLoadError, match="works on targets"):
        load_policies(tmp_path)


def test_duplicate_ids_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="does not exist"):
        load_policies(tmp_path / "missing")


def test_bundled_policy_ids(policy_set: Any) -> None:
    assert {"argo-sidecar-valid", "plugin-security-context", "pod-security-restricted"} <= set(
        policy_set.policy_ids
    )
