"""admission.mutate(): the AdmissionReview around inject(), still without any transport."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from typing import Any

import jsonpatch
import pytest

from webhook.admission import BadReview, mutate
from webhook.executor_plugin import ExecutorPlugin
from webhook.inject import Injection, Result, inject

from .conftest import agent_review


def injector(registry: list[ExecutorPlugin], policy_set: Any) -> Any:
    def call(pod: Mapping[str, Any], namespace: str) -> Injection:
        return inject(pod, registry, policies=policy_set, namespace=namespace)

    return call


def decode(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"], validate=True))
    return ops


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_agent_pod_review_gets_a_json_patch(
    registry: list[ExecutorPlugin], policy_set: Any, api_version: str
) -> None:
    review = agent_review()
    review["apiVersion"] = api_version
    out = mutate(review, inject=injector(registry, policy_set))
    answer = out.review
    assert answer["apiVersion"] == api_version and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    assert set(response) == {"uid", "allowed", "patchType", "patch"}
    ops = decode(response)
    expected = inject(review["request"]["object"], registry, policies=policy_set, namespace="argo")
    assert ops == list(expected.patch)
    patched = jsonpatch.apply_patch(review["request"]["object"], ops)
    assert [c["name"] for c in patched["spec"]["containers"]][-1] == "main"
    assert out.injection is not None and out.injection.result is Result.INJECTED
    assert out.injection.injected == (
        "hello-executor-plugin",
        "slack-executor-plugin",
        "python-executor-plugin",
    )
    # The patched pod, reviewed again (reinvocation, a retried request): no patch.
    again = copy.deepcopy(review)
    again["request"]["object"] = patched
    response = mutate(again, inject=injector(registry, policy_set)).review["response"]
    assert response == {"uid": review["request"]["uid"], "allowed": True}


def test_no_patch_means_no_patch_type(policy_set: Any) -> None:
    out = mutate(agent_review(), inject=injector([], policy_set))
    assert out.review["response"] == {"uid": out.uid, "allowed": True}
    assert out.injection == Injection(Result.NOTHING)


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_only_pod_create_is_mutated(operation: str) -> None:
    calls: list[Any] = []
    review = agent_review()
    review["request"]["operation"] = operation
    if operation != "UPDATE":
        review["request"]["oldObject"] = review["request"].pop("object")
    out = mutate(review, inject=lambda pod, ns: calls.append(pod) or Injection(Result.NOTHING))
    assert out.review["response"] == {"uid": out.uid, "allowed": True}
    assert calls == [] and out.injection is None


def test_other_kinds_and_sub_resources_are_not_mutated(registry: list[ExecutorPlugin]) -> None:
    calls: list[Any] = []

    def spy(pod: Mapping[str, Any], namespace: str) -> Injection:
        calls.append(pod)
        return inject(pod, registry, namespace=namespace)

    review = agent_review()
    review["request"]["kind"] = {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert "patch" not in mutate(review, inject=spy).review["response"]
    review = agent_review()
    review["request"]["subResource"] = "ephemeralcontainers"
    assert "patch" not in mutate(review, inject=spy).review["response"]
    assert calls == []


def test_without_an_injector_everything_is_allowed_unchanged() -> None:
    out = mutate(agent_review())
    assert out.review["response"] == {"uid": out.uid, "allowed": True}


def test_an_injector_crash_never_fails_the_pod() -> None:
    def broken(pod: Mapping[str, Any], namespace: str) -> Injection:
        raise KeyError("boom")

    out = mutate(agent_review(), inject=broken)
    response = out.review["response"]
    assert response["allowed"] is True and "patch" not in response
    (warning,) = response["warnings"]
    assert "KeyError" in warning and "admitted unchanged" in warning
    assert out.error is not None and out.error.startswith("KeyError at ")
    assert out.injection is not None and out.injection.result is Result.ERROR


def test_warnings_are_returned_with_the_patch(
    registry: list[ExecutorPlugin], policy_set: Any
) -> None:
    review = agent_review()
    pod = review["request"]["object"]
    sidecar = {"name": "metrics-proxy", "image": "x", "ports": [{"containerPort": 7522}]}
    pod["spec"]["containers"].insert(0, sidecar)
    response = mutate(review, inject=injector(registry, policy_set)).review["response"]
    assert response["allowed"] is True
    assert [op for op in decode(response) if op["path"].startswith("/spec/containers/")]
    (warning,) = response["warnings"]
    assert warning.startswith("[inject] plugin slack-executor-plugin not injected: port 7522")
    assert len(warning) <= 120


def test_a_malformed_review_is_still_a_bad_review() -> None:
    with pytest.raises(BadReview):
        mutate({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
