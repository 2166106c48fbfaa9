"""The validating pair of injection: an opted-in agent pod without its injection is
reported (webhook.inject.verify), through the policy engine and an AdmissionReview."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from webhook.admission import validate
from webhook.executor_plugin import ExecutorPlugin
from webhook.inject import INJECT_LABEL, PLUGINS_ANNOTATION, Injection, Result
from webhook.inject.verify import injection_problems
from webhook.policy.model import EvaluationContext

from .conftest import (
    NAMESPACE,
    agent_pod,
    agent_review,
    apply,
    by_name,
    minimal_container,
    plugin_from_container,
)

Run = Callable[..., Injection]


def problems(pod: dict[str, Any], plugins: list[ExecutorPlugin], policy_set: Any) -> list[str]:
    found = injection_problems(pod, plugins, policies=policy_set, namespace=NAMESPACE)
    return [f"{p.path}: {p.message}" for p in found]


def injected(run: Run, registry: list[ExecutorPlugin]) -> dict[str, Any]:
    pod = agent_pod()
    out = run(pod, registry)
    assert out.result is Result.INJECTED
    return apply(pod, out)


def test_an_unmutated_opted_in_agent_pod_is_reported(
    registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    (message,) = problems(agent_pod(), registry, policy_set)
    assert message.startswith("metadata.annotations: this Argo agent pod opted in")
    for name in ("hello-executor-plugin", "slack-executor-plugin", "python-executor-plugin"):
        assert name in message
    assert "mutating webhook did not handle the pod" in message
    assert "no plugin executed the template" in message
    assert "argo retry" in message


def test_the_mutated_pod_has_no_problem(
    run: Run, registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    assert problems(injected(run, registry), registry, policy_set) == []


def test_pods_that_did_not_opt_in_are_not_concerned(
    registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    pod = agent_pod()
    pod["metadata"]["labels"][INJECT_LABEL] = "false"
    assert problems(pod, registry, policy_set) == []
    pod = agent_pod()
    pod["metadata"]["labels"]["workflows.argoproj.io/component"] = "workflow"
    assert problems(pod, registry, policy_set) == []


def test_nothing_to_inject_is_nothing_missing(
    registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    assert problems(agent_pod(), [], policy_set) == []
    # plugins of another namespace, and plugins injection skips, are not demanded
    elsewhere = plugin_from_container(minimal_container("other", 5002), namespace="team-b")
    no_port = minimal_container("noport", 1)
    del no_port["ports"]
    assert problems(agent_pod(), [elsewhere, plugin_from_container(no_port)], policy_set) == []


def test_a_plugin_denied_by_policy_is_not_demanded(policy_set: Any) -> None:
    """Injection skips a plugin that still breaks an Enforce policy after the defaults;
    the check runs injection with the same policies, so it skips it too."""
    root = minimal_container("rooty", 5003, securityContext={"runAsNonRoot": False})
    plugin = plugin_from_container(root)
    assert problems(agent_pod(), [plugin], None) != []  # without policies: demanded
    assert problems(agent_pod(), [plugin], policy_set) == []


def test_a_sidecar_removed_after_injection_is_reported(
    run: Run, registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    pod = injected(run, registry)
    pod["spec"]["containers"] = [
        c for c in pod["spec"]["containers"] if c["name"] != "slack-executor-plugin"
    ]
    (message,) = problems(pod, registry, policy_set)
    assert message.startswith("spec.containers: this Argo agent pod was injected")
    assert "slack-executor-plugin is missing" in message


def test_a_sidecar_with_another_image_is_reported(
    run: Run, registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    pod = injected(run, registry)
    sidecar = by_name(pod["spec"]["containers"], "hello-executor-plugin")
    index = pod["spec"]["containers"].index(sidecar)
    expected = sidecar["image"]
    pod["spec"]["containers"][index]["image"] = "evil.example/hello:1"
    (message,) = problems(pod, registry, policy_set)
    assert message.startswith(f"spec.containers[{index}].image: ")
    assert f"runs image 'evil.example/hello:1', not the registry's {expected!r}" in message


def test_a_plugin_dropped_from_main_argo_plugin_names_is_reported(
    run: Run, registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    pod = injected(run, registry)
    main = by_name(pod["spec"]["containers"], "main")
    for var in main["env"]:
        if var["name"] == "ARGO_PLUGIN_NAMES":
            var["value"] = json.dumps(["hello-executor-plugin"])
    found = problems(pod, registry, policy_set)
    assert len(found) == 2
    assert all("not in ARGO_PLUGIN_NAMES of the main container" in m for m in found)


def test_plugins_added_to_the_registry_after_injection_are_not_demanded(
    run: Run, registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    pod = injected(run, registry)
    late = plugin_from_container(minimal_container("late", 5009))
    assert problems(pod, [*registry, late], policy_set) == []


def test_a_forged_status_listing_absent_sidecars_is_reported(
    registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    pod = agent_pod()
    pod["metadata"]["annotations"].update(
        {"argo-plugin-guard/inject-status": "injected", PLUGINS_ANNOTATION: "hello-executor-plugin"}
    )
    (message,) = problems(pod, registry, policy_set)
    assert "hello-executor-plugin is missing" in message


# --------------------------------------------------------------- policy and review level


def test_the_bundled_policy_enforces_it(registry: list[ExecutorPlugin], policy_set: Any) -> None:
    verdict = policy_set.evaluate(agent_pod(), EvaluationContext(plugins=list(registry)))
    assert not verdict.allowed
    (violation,) = [v for v in verdict.violations if v.policy == "agent-pod-injected"]
    assert violation.action.value == "Enforce"
    assert violation.path == "metadata.annotations"
    # the same pod without a registry: nothing to inject, nothing denied
    assert policy_set.evaluate(agent_pod(), EvaluationContext()).allowed


def test_an_admission_review_of_the_unmutated_pod_is_denied_and_the_mutated_one_allowed(
    run: Run, registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    review = agent_review()
    outcome = validate(review, evaluate=policy_set.evaluate, plugins=registry)
    response = outcome.review["response"]
    assert response["allowed"] is False
    assert "[agent-pod-injected]" in response["status"]["message"]
    assert "reached validation without it" in response["status"]["message"]

    mutated = copy.deepcopy(review)
    mutated["request"]["object"] = injected(run, registry)
    outcome = validate(mutated, evaluate=policy_set.evaluate, plugins=registry)
    assert outcome.review["response"]["allowed"] is True
