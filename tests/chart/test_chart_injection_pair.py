"""The chart's validating pair of the mutating webhook: with `mutating.enabled`, the
ValidatingWebhookConfiguration sends exactly the pods the mutation handles (opted-in
Argo agent pods, Pod CREATE, the same namespaces) to /validate, fail-closed, and the
policy that judges them denies the unmutated one."""

from __future__ import annotations

import copy
import json
from typing import Any

from webhook.admission import validate
from webhook.inject import AGENT_COMPONENT, COMPONENT_LABEL, INJECT_LABEL

from .conftest import CERT_MANAGER, FULLNAME, NAMESPACE, REPO_ROOT, Helm, arg_value, container, find
from .test_chart_render import excluded_namespaces, selector_matches

AGENT_REVIEW = REPO_ROOT / "tests" / "inject" / "data" / "agent-pod-review.json"
PAIR = f"agent-pods.{FULLNAME}.{NAMESPACE}.svc"


def webhooks(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    config = find(docs, "ValidatingWebhookConfiguration", FULLNAME)
    return {w["name"]: w for w in config["webhooks"]}


def test_no_pair_without_the_mutation_or_when_disabled(helm: Helm) -> None:
    assert PAIR not in webhooks(helm.template(*CERT_MANAGER))
    disabled = helm.template(
        *CERT_MANAGER,
        "--set",
        "mutating.enabled=true",
        "--set",
        "mutating.validation.enabled=false",
    )
    assert PAIR not in webhooks(disabled)


def test_the_pair_selects_what_the_mutation_selects_and_fails_closed(helm: Helm) -> None:
    docs = helm.template(*CERT_MANAGER, "--set", "mutating.enabled=true")
    pair = webhooks(docs)[PAIR]
    (mutation,) = find(docs, "MutatingWebhookConfiguration", FULLNAME)["webhooks"]
    assert pair["clientConfig"]["service"]["path"] == "/validate"
    assert pair["rules"] == mutation["rules"]  # Pod CREATE
    assert (
        pair["objectSelector"]
        == mutation["objectSelector"]
        == {"matchLabels": {COMPONENT_LABEL: AGENT_COMPONENT, INJECT_LABEL: "true"}}
    )
    assert pair["namespaceSelector"] == mutation["namespaceSelector"]
    assert excluded_namespaces(pair) == ["kube-system", "kube-node-lease", NAMESPACE]
    assert pair["failurePolicy"] == "Fail"
    assert mutation["failurePolicy"] == "Ignore"
    assert pair["sideEffects"] == "None" and pair["matchPolicy"] == "Equivalent"
    assert pair["timeoutSeconds"] == 5
    # the server's timeout covers the pair's
    assert arg_value(container(docs)["args"], "--timeout") == "5"


def test_the_pair_sends_the_agent_pod_and_nothing_else(helm: Helm) -> None:
    pair = webhooks(helm.template(*CERT_MANAGER, "--set", "mutating.enabled=true"))[PAIR]
    pod = json.loads(AGENT_REVIEW.read_text())["request"]["object"]
    labels = pod["metadata"]["labels"]
    assert selector_matches(pair["objectSelector"], labels)
    for key, value in ((INJECT_LABEL, "false"), (COMPONENT_LABEL, "workflow")):
        assert not selector_matches(pair["objectSelector"], {**labels, key: value})
    assert not selector_matches(pair["objectSelector"], {})  # ordinary pods are never sent
    ns = "kubernetes.io/metadata.name"
    assert selector_matches(pair["namespaceSelector"], {ns: "argo"})
    assert not selector_matches(pair["namespaceSelector"], {ns: NAMESPACE})


def test_values_reach_the_pair(helm: Helm) -> None:
    docs = helm.template(
        *CERT_MANAGER,
        "--set",
        "mutating.enabled=true",
        "--set",
        "mutating.validation.failurePolicy=Ignore",
        "--set",
        "mutating.validation.timeoutSeconds=9",
        "--set",
        "mutating.namespaceLabels.team=argo",
        "--set",
        "terminationGracePeriodSeconds=30",
    )
    pair = webhooks(docs)[PAIR]
    assert pair["failurePolicy"] == "Ignore" and pair["timeoutSeconds"] == 9
    assert pair["namespaceSelector"]["matchLabels"] == {"team": "argo"}
    assert arg_value(container(docs)["args"], "--timeout") == "9"


def test_a_pod_the_pair_sends_is_judged_by_the_bundled_policy(
    helm: Helm, policy_set: Any, plugin_corpus: Any
) -> None:
    """What the pair sends, the bundled policies (the image's, which the chart runs by
    default) deny when it lacks its plugins."""
    from webhook.executor_plugin import read_plugin
    from webhook.manifests import load_documents

    args = container(helm.template(*CERT_MANAGER, "--set", "mutating.enabled=true"))["args"]
    assert arg_value(args, "--policies") is None  # the bundled set
    assert "agent-pod-injected" in policy_set.policy_ids
    (plugin_doc,) = load_documents(
        [str(plugin_corpus / "hello" / "hello-executor-plugin-configmap.yaml")]
    )
    plugin = read_plugin(plugin_doc.obj)
    review = json.loads(AGENT_REVIEW.read_text())
    outcome = validate(copy.deepcopy(review), evaluate=policy_set.evaluate, plugins=[plugin])
    assert outcome.review["response"]["allowed"] is False
    assert "[agent-pod-injected]" in outcome.review["response"]["status"]["message"]
