"""The pure review core: AdmissionReview dict in, AdmissionReview dict out."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from webhook.admission import BadReview, format_warning, mutate, validate
from webhook.admission.review import MAX_WARNINGS, WARNING_HARD_LIMIT
from webhook.policy.model import Action, EvaluationContext, Verdict, Violation

ENFORCE = Violation(
    "plugin-resources", Action.ENFORCE, "data[sidecar.container].resources", "set limits"
)
ENFORCE2 = Violation(
    "plugin-security-context",
    Action.ENFORCE,
    "data[sidecar.container].securityContext.runAsNonRoot",
    "must be true",
)
WARN = Violation(
    "plugin-seccomp-profile",
    Action.WARN,
    "data[sidecar.container].securityContext.seccompProfile",
    "set it",
)
AUDIT = Violation("plugin-image-pinned", Action.AUDIT, "data[sidecar.container].image", "pin it")


class FakeEngine:
    def __init__(self, *violations: Violation, error: Exception | None = None) -> None:
        self.violations = violations
        self.error = error
        self.calls: list[tuple[Mapping[str, Any], EvaluationContext | None]] = []

    def __call__(self, obj: Mapping[str, Any], context: EvaluationContext | None = None) -> Verdict:
        self.calls.append((obj, context))
        if self.error:
            raise self.error
        return Verdict(self.violations)


def review(
    operation: str = "CREATE", api_version: str = "admission.k8s.io/v1", **request: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "hello-executor-plugin",
            "namespace": "argo",
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "hello-executor-plugin"},
                "data": {"sidecar.container": "name: hello\n"},
            },
            "dryRun": False,
        },
    }
    body["request"].update(request)
    return body


def test_allowed_review_echoes_and_omits_empty_fields() -> None:
    engine = FakeEngine()
    out = validate(review(), evaluate=engine)
    assert out.review == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True},
    }
    assert out.allowed and out.evaluated
    assert (out.kind, out.namespace, out.name, out.operation) == (
        "ConfigMap",
        "argo",
        "hello-executor-plugin",
        "CREATE",
    )
    obj, context = engine.calls[0]
    assert obj["kind"] == "ConfigMap"
    assert context is not None and context.namespace == "argo"


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_answered_in_own_version(api_version: str) -> None:
    out = validate(review(api_version=api_version), evaluate=FakeEngine(ENFORCE))
    assert out.review["apiVersion"] == api_version
    assert out.review["kind"] == "AdmissionReview"


def test_every_enforce_reason_in_status_warnings_separate_audit_silent() -> None:
    out = validate(review(), evaluate=FakeEngine(ENFORCE, WARN, ENFORCE2, AUDIT))
    response = out.review["response"]
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    message = status["message"]
    assert message.splitlines()[0] == "2 policy violations:"
    for v in (ENFORCE, ENFORCE2):
        assert f"[{v.policy}] {v.path}: {v.message}" in message
    assert "plugin-seccomp-profile" not in message and "plugin-image-pinned" not in message
    assert response["warnings"] == [
        "[plugin-seccomp-profile] sidecar.securityContext.seccompProfile: set it"
    ]
    assert "plugin-image-pinned" not in str(response)
    assert out.violations == (ENFORCE, WARN, ENFORCE2, AUDIT)


def test_warn_only_is_allowed_with_warnings_and_no_status() -> None:
    response = validate(review(), evaluate=FakeEngine(WARN)).review["response"]
    assert response["allowed"] is True
    assert "status" not in response
    assert len(response["warnings"]) == 1


def test_audit_only_answer_is_bare() -> None:
    out = validate(review(), evaluate=FakeEngine(AUDIT))
    assert out.review["response"] == {"uid": out.uid, "allowed": True}
    assert out.violations == (AUDIT,)


def test_long_warning_is_cut_only_past_what_the_api_server_keeps() -> None:
    v = Violation("plugin-ports", Action.WARN, "data[sidecar.container].ports[0]", "x" * 500)
    text = format_warning(v)
    assert len(text) == WARNING_HARD_LIMIT
    assert text.startswith("[plugin-ports] sidecar.ports[0]: xxx")
    assert text.endswith("…")
    fits = Violation("plugin-ports", Action.WARN, "data[sidecar.container].ports[0]", "y" * 200)
    assert format_warning(fits) == "[plugin-ports] sidecar.ports[0]: " + "y" * 200


def test_pathological_path_warning_is_bounded() -> None:
    v = Violation("p", Action.WARN, "a." * 400, "msg\nwith\x00control")
    text = format_warning(v)
    assert text.startswith("[p] a.a.")
    assert len(text) <= 256
    assert "\n" not in text and "\x00" not in text


def test_many_warnings_are_capped() -> None:
    warns = [Violation("w", Action.WARN, f"spec.containers[{i}]", "m") for i in range(100)]
    response = validate(review(), evaluate=FakeEngine(*warns)).review["response"]
    assert len(response["warnings"]) == MAX_WARNINGS + 1
    assert response["warnings"][-1] == f"... and {100 - MAX_WARNINGS} more warnings"


@pytest.mark.parametrize("obj_present", [True, False])
def test_delete_is_allowed_without_evaluation(obj_present: bool) -> None:
    body = review("DELETE")
    old = body["request"].pop("object")
    body["request"]["oldObject"] = old
    if obj_present:
        body["request"]["object"] = None
    engine = FakeEngine(ENFORCE)
    out = validate(body, evaluate=engine)
    assert out.review["response"] == {"uid": out.uid, "allowed": True}
    assert not engine.calls and not out.evaluated
    assert out.name == "hello-executor-plugin"


def test_connect_is_allowed_without_evaluation() -> None:
    body = review("CONNECT", subResource="exec")
    body["request"]["object"] = {"kind": "PodExecOptions", "command": ["sh"]}
    engine = FakeEngine(ENFORCE)
    assert validate(body, evaluate=engine).allowed
    assert not engine.calls


@pytest.mark.parametrize(
    ("sub", "evaluated"), [("status", False), ("scale", False), ("ephemeralcontainers", True)]
)
def test_subresources(sub: str, evaluated: bool) -> None:
    engine = FakeEngine(ENFORCE)
    out = validate(review("UPDATE", subResource=sub), evaluate=engine)
    assert out.evaluated is evaluated
    assert out.allowed is (not evaluated)
    assert out.sub_resource == sub


def test_dry_run_is_evaluated_and_reported() -> None:
    out = validate(review(dryRun=True), evaluate=FakeEngine(ENFORCE))
    assert out.dry_run and not out.allowed


def test_update_evaluates_new_object() -> None:
    body = review("UPDATE")
    body["request"]["oldObject"] = {"kind": "ConfigMap", "metadata": {"name": "old"}}
    engine = FakeEngine()
    validate(body, evaluate=engine)
    assert engine.calls[0][0] is body["request"]["object"]


def test_namespace_from_object_when_request_has_none() -> None:
    body = review()
    del body["request"]["namespace"], body["request"]["name"]
    body["request"]["object"]["metadata"] = {"generateName": "x-", "namespace": "team"}
    engine = FakeEngine()
    out = validate(body, evaluate=engine)
    assert out.namespace == "team" and out.name == "x-"
    context = engine.calls[0][1]
    assert context is not None and context.namespace == "team"


def test_kind_from_object_when_request_kind_missing() -> None:
    body = review()
    del body["request"]["kind"]
    assert validate(body, evaluate=FakeEngine()).kind == "ConfigMap"


def test_engine_crash_is_a_denial_not_an_exception() -> None:
    out = validate(review(), evaluate=FakeEngine(error=KeyError("secret-value")))
    response = out.review["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "KeyError" in response["status"]["message"]
    assert "secret-value" not in str(out.review)
    assert out.error is not None and out.error.startswith("KeyError at ")
    assert "test_admission_review.py:" in out.error


def test_engine_recursion_is_a_denial() -> None:
    out = validate(review(), evaluate=FakeEngine(error=RecursionError()))
    assert out.review["response"]["status"]["code"] == 400


def test_plugin_under_review_is_not_its_own_collision() -> None:
    class Plugin:  # the shape of webhook.executor_plugin.ExecutorPlugin
        def __init__(self, resource_name: str, namespace: str | None) -> None:
            self.resource_name = resource_name
            self.namespace = namespace

    registry: list[Any] = [
        {"metadata": {"name": "hello-executor-plugin", "namespace": "argo"}},
        {"metadata": {"name": "other-executor-plugin"}},
        {"metadata": {"name": "hello-executor-plugin", "namespace": "elsewhere"}},
        Plugin("hello-executor-plugin", None),
        Plugin("third-executor-plugin", "argo"),
    ]
    engine = FakeEngine()
    validate(review(), evaluate=engine, plugins=registry)
    context = engine.calls[0][1]
    assert context is not None
    assert context.plugins == [registry[1], registry[2], registry[4]]


def test_mutate_allows_without_patch() -> None:
    out = mutate(review())
    assert out.review["response"] == {"uid": out.uid, "allowed": True}


BAD = [
    ([], "body"),
    ("x", "body"),
    ({}, "apiVersion"),
    ({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview", "request": {}}, "apiVersion"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {}}, "kind"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
    ({"apiVersion": [], "kind": "AdmissionReview", "request": {}}, "apiVersion"),
    ({"apiVersion": {"a": 1}, "kind": "AdmissionReview", "request": {}}, "apiVersion"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []}, "request"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_envelopes(body: Any, field: str) -> None:
    with pytest.raises(BadReview) as info:
        validate(body, evaluate=FakeEngine())
    assert info.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uid": None}, "request.uid"),
        ({"uid": ""}, "request.uid"),
        ({"uid": 5}, "request.uid"),
        ({"uid": "u" * 10_000}, "request.uid"),
        ({"operation": "PATCH"}, "request.operation"),
        ({"operation": None}, "request.operation"),
        ({"operation": ["CREATE"]}, "request.operation"),
        ({"operation": {"CREATE": 1}}, "request.operation"),
        ({"name": 3}, "request.name"),
        ({"namespace": ["a"]}, "request.namespace"),
        ({"subResource": {}}, "request.subResource"),
        ({"dryRun": "true"}, "request.dryRun"),
        ({"object": "cm"}, "request.object"),
        ({"object": None}, "request.object"),
        ({"oldObject": 1}, "request.oldObject"),
        ({"kind": "ConfigMap"}, "request.kind"),
        ({"kind": {"kind": 1}}, "request.kind.kind"),
        ({"userInfo": "admin"}, "request.userInfo"),
    ],
)
def test_bad_requests(change: dict[str, Any], field: str) -> None:
    body = review()
    for key, value in change.items():
        if value is None:
            body["request"].pop(key, None)
        else:
            body["request"][key] = value
    with pytest.raises(BadReview) as info:
        validate(copy.deepcopy(body), evaluate=FakeEngine())
    assert info.value.field == field
    assert str(info.value).startswith(field + ": ")
