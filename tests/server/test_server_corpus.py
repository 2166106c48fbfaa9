"""End to end: the real AdmissionReviews and plugin ConfigMaps of the corpora, sent to
the real server (gunicorn, TLS, sockets), answers checked field by field against the
engine's verdict for the same object."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.admission import format_denial, format_warning
from webhook.executor_plugin import is_plugin_configmap
from webhook.policy.model import Action, EvaluationContext, Verdict

from .conftest import Server

REVIEWS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "admission-reviews"
PLUGINS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "argo-plugins"


def load(path: Path) -> Any:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def wrap(request: dict[str, Any], api_version: str = "admission.k8s.io/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def as_review(path: Path) -> dict[str, Any]:
    """Complete reviews as they are; bare AdmissionRequest objects wrapped in a v1 review."""
    data = load(path)
    if "request" in data:
        return dict(data)
    assert "uid" in data and "operation" in data, path
    return wrap(data)


COMPLETE_OR_BARE = sorted(
    p.relative_to(REVIEWS).as_posix()
    for p in REVIEWS.glob("*/*.json")
    if p.name != "raw_review.json"
)


def expected_verdict(policy_set: Any, request: dict[str, Any]) -> Verdict | None:
    """The engine's verdict, or None when the review core does not evaluate."""
    if request["operation"] not in ("CREATE", "UPDATE"):
        return None
    if request.get("subResource") not in (None, "", "ephemeralcontainers"):
        return None
    context = EvaluationContext(namespace=request.get("namespace") or None)
    verdict: Verdict = policy_set.evaluate(request["object"], context)
    return verdict


def check_answer(
    review: dict[str, Any], status: int, answer: dict[str, Any], verdict: Verdict | None
) -> None:
    assert status == 200, answer
    request = review["request"]
    assert answer["apiVersion"] == review["apiVersion"]
    assert answer["kind"] == "AdmissionReview"
    assert set(answer) == {"apiVersion", "kind", "response"}
    response = answer["response"]
    assert response["uid"] == request["uid"]
    violations = verdict.violations if verdict else ()
    enforced = [v for v in violations if v.action is Action.ENFORCE]
    warned = [v for v in violations if v.action is Action.WARN]
    expected_keys = {"uid", "allowed"}
    assert response["allowed"] is (not enforced)
    if enforced:
        expected_keys.add("status")
        assert response["status"] == {
            "code": 403,
            "reason": "Forbidden",
            "message": format_denial(enforced),
        }
        for v in enforced:
            assert f"[{v.policy}] {v.path}: " in response["status"]["message"]
    if warned:
        expected_keys.add("warnings")
        assert response["warnings"] == [format_warning(v) for v in warned]
        assert all(len(w) <= 256 for w in response["warnings"])
    assert set(response) == expected_keys
    assert "patch" not in response and "patchType" not in response


def review_lines(server: Server, uid: str) -> list[dict[str, Any]]:
    return [e for e in server.log_lines() if e.get("msg") == "admission review" and e["uid"] == uid]


@pytest.mark.parametrize("name", COMPLETE_OR_BARE)
def test_corpus_review(server: Server, policy_set: Any, name: str) -> None:
    review = as_review(REVIEWS / name)
    client = server.client()
    status, answer = client.post_json("/validate", review)
    check_answer(review, status, answer, expected_verdict(policy_set, review["request"]))
    # No plugin registry on this server: nothing to inject, every review allowed unpatched.
    status, answer = client.post_json("/mutate", review)
    assert status == 200
    assert answer["response"] == {"uid": review["request"]["uid"], "allowed": True}
    client.close()


def test_corpus_review_log_lines(server: Server, policy_set: Any) -> None:
    client = server.client()
    review = as_review(REVIEWS / "kubewarden-kwctl/privileged-pod-admission-review.json")
    review["request"]["uid"] = uid = str(uuid.uuid4())
    marker = uuid.uuid4().hex
    for container in review["request"]["object"]["spec"]["containers"]:
        container["image"] = f"registry.example/{marker}:1"
    status, answer = client.post_json("/validate", review)
    assert status == 200
    verdict = expected_verdict(policy_set, review["request"])
    assert verdict is not None
    lines = review_lines(server, uid)
    assert len(lines) == 1
    line = lines[0]
    request = review["request"]
    assert line["kind"] == request["kind"]["kind"]
    assert line["namespace"] == request["namespace"]
    assert line["name"] == request["name"]
    assert line["operation"] == "CREATE"
    assert line["allowed"] is answer["response"]["allowed"]
    assert line["durationMs"] >= 0
    logged = [(v["policy"], v["action"], v["path"]) for v in line.get("violations", [])]
    assert logged == [(v.policy, v.action.value, v.path) for v in verdict.violations][:20]
    # Never the object: no image, no container name, no managedFields, no userInfo.
    text = json.dumps(line)
    assert marker not in text
    assert request["userInfo"]["username"] not in text


def test_v1beta1_without_uid_is_bad_review_then_answered_in_v1beta1(
    server: Server, policy_set: Any
) -> None:
    client = server.client()
    for path in sorted(REVIEWS.glob("gatekeeper-library/*.yaml")):
        review = load(path)
        assert review["apiVersion"] == "admission.k8s.io/v1beta1"
        status, body = client.post_json("/validate", review)
        assert status == 400
        assert body["kind"] == "Status" and body["code"] == 400
        assert "request.uid" in body["message"]
        review["request"]["uid"] = str(uuid.uuid4())
        status, answer = client.post_json("/validate", review)
        check_answer(review, status, answer, expected_verdict(policy_set, review["request"]))


def test_linkerd_typo_iapiversion_is_bad_review_then_repaired(
    server: Server, policy_set: Any
) -> None:
    client = server.client()
    for path in sorted(REVIEWS.glob("linkerd2/*-response.yaml")):
        review = load(path)
        assert "apiVersion" not in review and "iapiVersion" in review
        status, body = client.post_json("/validate", review)
        assert status == 400 and "apiVersion" in body["message"]
        review["apiVersion"] = review.pop("iapiVersion")
        status, answer = client.post_json("/validate", review)
        check_answer(review, status, answer, expected_verdict(policy_set, review["request"]))


def test_raw_review_is_bad_review(server: Server) -> None:
    status, body = server.client().post_json(
        "/validate", load(REVIEWS / "kubewarden-policy-server/raw_review.json")
    )
    assert status == 400
    assert body["reason"] == "BadRequest" and "apiVersion" in body["message"]


def _cm1() -> dict[str, Any]:
    return as_review(REVIEWS / "pepr/cm1.json")


@pytest.mark.parametrize(
    "variant", ["update", "delete-null", "delete-missing", "dry-run", "status", "connect"]
)
def test_synthesized_configmap_operations(server: Server, policy_set: Any, variant: str) -> None:
    """The corpus has no ConfigMap UPDATE/DELETE nor dryRun: derive them from cm1.json."""
    review = _cm1()
    request = review["request"]
    request["uid"] = str(uuid.uuid4())
    if variant == "update":
        request["operation"] = "UPDATE"
        request["oldObject"] = copy.deepcopy(request["object"])
    elif variant.startswith("delete"):
        request["operation"] = "DELETE"
        request["oldObject"] = request.pop("object")
        if variant == "delete-null":
            request["object"] = None
    elif variant == "dry-run":
        request["dryRun"] = True
    elif variant == "status":
        request["operation"] = "UPDATE"
        request["subResource"] = "status"
    elif variant == "connect":
        request["operation"] = "CONNECT"
        request["object"] = {"kind": "PodExecOptions", "apiVersion": "v1", "command": ["sh"]}
    status, answer = server.client().post_json("/validate", review)
    check_answer(review, status, answer, expected_verdict(policy_set, request))
    if variant in ("delete-null", "delete-missing", "status", "connect"):
        assert answer["response"] == {"uid": request["uid"], "allowed": True}
    line = review_lines(server, request["uid"])[0]
    assert line.get("dryRun", False) is (variant == "dry-run")


def plugin_configmaps() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(PLUGINS.rglob("*.yaml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        for index, doc in enumerate(docs):
            if isinstance(doc, dict) and is_plugin_configmap(doc):
                out.append((f"{path.relative_to(PLUGINS).as_posix()}#{index}", doc))
    return out


if not PLUGINS.parent.is_dir():  # only outside CI: tests/conftest.py fails a CI run without it
    pytest.skip("shared/ is missing: this module reads its corpora", allow_module_level=True)
PLUGIN_CONFIGMAPS = plugin_configmaps()


def test_plugin_corpus_is_not_empty() -> None:
    assert len(PLUGIN_CONFIGMAPS) >= 10


@pytest.mark.parametrize(
    ("name", "configmap"), PLUGIN_CONFIGMAPS, ids=[n for n, _ in PLUGIN_CONFIGMAPS]
)
@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_plugin_configmap_reviews(
    server: Server, policy_set: Any, name: str, configmap: dict[str, Any], api_version: str
) -> None:
    metadata = configmap.get("metadata") or {}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "requestKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "requestResource": {"group": "", "version": "v1", "resource": "configmaps"},
        "name": metadata.get("name", ""),
        "namespace": metadata.get("namespace") or "argo",
        "operation": "CREATE",
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "object": configmap,
        "oldObject": None,
        "dryRun": False,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
    }
    review = wrap(request, api_version)
    status, answer = server.client().post_json("/validate", review)
    check_answer(review, status, answer, expected_verdict(policy_set, request))
