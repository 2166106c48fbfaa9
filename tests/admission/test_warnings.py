"""Every warning a bundled policy can produce keeps its policy id and its whole fix.

`kubectl` shows an admission warning as one line, and the API server truncates warnings
past 256 characters; the Kubernetes good practice asks for 120. Each bundled policy is
evaluated here with its action forced to Warn (a platform team may set any policy to
Warn) against plugins that break it: the real corpus plugins, the bundled suites'
resources and the examples. Every warning must fit in 256 characters without a cut,
end with the policy's short fix (or its full message when it has none), and fit in 120
unless the policy is one of the few whose fix must name long things.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from webhook.admission import format_warning
from webhook.admission.review import WARNING_HARD_LIMIT, WARNING_SOFT_LIMIT, short_path
from webhook.check import plugins_in
from webhook.errors import ManifestError
from webhook.manifests import Document, expand_paths, parse_documents, read_source
from webhook.policy import Action, EvaluationContext, PolicySet, Violation, load_policies

REPO_ROOT = Path(__file__).resolve().parents[2]

# Policies whose fix must name long things: a service account, a plugin on the same port
# (names of up to 253 characters), a secret rule and the redacted start of its value, a
# Pod Security control, or a misspelt container field and the closest real one. These
# may use more of the 256 characters the API server keeps; all others fit in 120.
MAY_EXCEED_120 = {
    "plugin-service-account",
    "plugin-unique-ports",
    "no-inline-secrets",
    "pod-security-restricted",
    "plugin-format",
}


@pytest.fixture(scope="module")
def warnings_by_policy(plugin_corpus: Path) -> dict[str, list[Violation]]:
    bundled = load_policies()
    as_warn = PolicySet(
        [dataclasses.replace(policy, action=Action.WARN) for policy in bundled.policies]
    )
    paths = expand_paths(
        [str(plugin_corpus), str(REPO_ROOT / "policies" / "tests"), str(REPO_ROOT / "examples")]
    )
    documents = []
    for path in paths:
        if path.endswith("plugin-guard-test.yaml"):
            continue
        try:
            objects = parse_documents(read_source(path), path)
        except ManifestError:
            continue  # the corpus holds a few files that are not Kubernetes objects
        documents.extend(Document(path, i, obj) for i, obj in enumerate(objects))
    context = EvaluationContext(plugins=plugins_in(documents))
    found: dict[str, list[Violation]] = {}
    for document in documents:
        for violation in as_warn.evaluate(document.obj, context).violations:
            # A check may raise a finding above Warn (inline secrets in plugins): that
            # one is a denial, which has no length limit.
            if violation.action is Action.WARN:
                found.setdefault(violation.policy, []).append(violation)
    return found


def test_every_bundled_policy_is_exercised(warnings_by_policy: dict[str, list[Violation]]) -> None:
    assert set(warnings_by_policy) == set(load_policies().policy_ids)


def test_every_warning_is_whole_and_within_its_budget(
    warnings_by_policy: dict[str, list[Violation]],
) -> None:
    problems = []
    for policy, violations in warnings_by_policy.items():
        for violation in violations:
            text = format_warning(violation)
            fix = violation.warning or violation.message
            budget = WARNING_HARD_LIMIT if policy in MAY_EXCEED_120 else WARNING_SOFT_LIMIT
            if not text.startswith(f"[{policy}] {short_path(violation.path)}: "):
                problems.append(("no policy id or path", text))
            elif not text.endswith(fix):
                problems.append(("fix cut", text))
            elif len(text) > budget:
                problems.append((f"over {budget}", text))
    assert problems == [], "\n".join(f"{why}: {len(text)} {text}" for why, text in problems)


def test_schema_rules_of_warn_policies_say_what_to_write() -> None:
    """A schema rule's warning is what to do, not a restatement of the problem."""
    for policy in load_policies().policies:
        for rule in policy.rules:
            warning = getattr(rule, "warning", None)
            if policy.action is Action.WARN and hasattr(rule, "validator"):
                assert warning, f"{policy.id}: a Warn policy's schema rule needs a warning"
            if warning:
                first = warning.split()[0].lower()
                assert first in {"set", "use", "pin", "avoid", "add", "uid", "sidecar"}, warning


@pytest.mark.parametrize(
    ("path", "short"),
    [
        (
            "data[sidecar.container].securityContext.seccompProfile",
            "sidecar.securityContext.seccompProfile",
        ),
        ("data[sidecar.container]", "sidecar"),
        ("data[sidecar.automountServiceAccountToken]", "sidecar.automountServiceAccountToken"),
        ("spec.sidecar.container.ports[0].containerPort", "sidecar.ports[0].containerPort"),
        (
            "spec.executorPlugins[2].spec.sidecar.container.image",
            "executorPlugins[2].sidecar.image",
        ),
        ("spec.template.spec.containers[0].image", "containers[0].image"),
        ("spec.jobTemplate.spec.template.spec.initContainers[1]", "initContainers[1]"),
        ("spec.containers[0].securityContext", "spec.containers[0].securityContext"),
        (
            "metadata.labels[workflows.argoproj.io/version]",
            "labels[workflows.argoproj.io/version]",
        ),
        ("metadata.name", "metadata.name"),
        ("data[sidecar.containers]", "sidecar.containers"),
    ],
)
def test_short_paths(path: str, short: str) -> None:
    assert short_path(path) == short


def test_denials_keep_the_full_path_and_message() -> None:
    from webhook.admission import format_denial

    violation = Violation(
        "plugin-seccomp-profile",
        Action.ENFORCE,
        "data[sidecar.container].securityContext.seccompProfile",
        "the whole message, however long " * 10,
        warning="set seccompProfile.type: RuntimeDefault",
    )
    text = format_denial([violation])
    assert "data[sidecar.container].securityContext.seccompProfile" in text
    assert violation.message in text and violation.warning not in text
