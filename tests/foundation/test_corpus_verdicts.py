"""Every real plugin in shared/corpora/argo-plugins, with its verdict and reasons written
down. Each file is checked on its own (no cross-plugin context), as `check FILE` would.

The reasons match research/corpora-findings.md 3.1: only hello, slack, python, argocd,
aws and Argo's own e2e plugins pass; volcano's ConfigMap runs as root; gogit and others
leave privilege escalation allowed and capabilities in place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.check import run_check
from webhook.policy import Action, PolicySet

CM = "data[sidecar.container].securityContext"
PY = "spec.sidecar.container.securityContext"
APE_AND_CAPS = [
    ("plugin-security-context", f"{CM}.allowPrivilegeEscalation"),
    ("plugin-security-context", f"{CM}.capabilities"),
]
APE_AND_CAPS_YAML = [
    ("plugin-security-context", f"{PY}.allowPrivilegeEscalation"),
    ("plugin-security-context", f"{PY}.capabilities"),
]
SECCOMP = "plugin-seccomp-profile"

# (file, document index, allowed, Enforce (policy, path) pairs, Warn/Audit policy ids)
EXPECTED = [
    (
        "_argo/hello-executor-plugin-configmap.yaml",
        0,
        True,
        [],
        [SECCOMP, "plugin-service-account"],
    ),
    ("_argo/massive-executor-plugin-configmap.yaml", 0, True, [], [SECCOMP]),
    ("_argo/workflow-level-executor-plugin.yaml", 0, True, [], [SECCOMP]),
    ("_argo/workflow-level-template-executor-workflow.yaml", 0, True, [], [SECCOMP]),
    ("argocd/argocd-executor-plugin-configmap.yaml", 0, True, [], ["plugin-image-pinned", SECCOMP]),
    ("argocd/plugin.yaml", 0, True, [], ["plugin-image-pinned", SECCOMP]),
    (
        "aws/plugin.yaml",
        6,
        True,
        [],
        [
            "plugin-configmap-name",
            "plugin-image-pinned",
            "plugin-read-only-root-filesystem",
            "plugin-run-as-nobody",
            SECCOMP,
            "plugin-service-account",
        ],
    ),
    (
        "chaos-mesh/configmap.yaml",
        0,
        False,
        APE_AND_CAPS,
        [
            "plugin-read-only-root-filesystem",
            "plugin-reserved-ports",
            "plugin-run-as-nobody",
            SECCOMP,
            "plugin-service-account",
        ],
    ),
    # metadata.name chaosMesh: `build` would write ConfigMap chaosMesh-executor-plugin, an invalid name.
    (
        "chaos-mesh/plugin.yaml",
        0,
        False,
        [("plugin-format", "metadata.name"), *APE_AND_CAPS_YAML],
        [
            "plugin-read-only-root-filesystem",
            "plugin-reserved-ports",
            "plugin-run-as-nobody",
            SECCOMP,
        ],
    ),
    (
        "gogit/README.install.yaml",
        1,
        False,
        APE_AND_CAPS,
        [
            "plugin-read-only-root-filesystem",
            "plugin-run-as-nobody",
            SECCOMP,
            "plugin-service-account",
        ],
    ),
    (
        "gogit/gogit-executor-plugin-configmap.yaml",
        0,
        False,
        APE_AND_CAPS,
        [
            "plugin-read-only-root-filesystem",
            "plugin-run-as-nobody",
            SECCOMP,
            "plugin-service-account",
        ],
    ),
    (
        "gogit/plugin.yaml",
        0,
        False,
        APE_AND_CAPS_YAML,
        ["plugin-read-only-root-filesystem", "plugin-run-as-nobody", SECCOMP],
    ),
    ("hello/hello-executor-plugin-configmap.yaml", 0, True, [], [SECCOMP]),
    ("hello/plugin.yaml", 0, True, [], [SECCOMP]),
    (
        "hermes/install.yaml",
        4,
        False,
        APE_AND_CAPS,
        [
            "plugin-configmap-name",
            "plugin-image-pinned",
            "plugin-read-only-root-filesystem",
            SECCOMP,
        ],
    ),
    # hermes/plugin.yaml is a ConfigMap whose *label* holds '>= v3.3': not a valid label value.
    (
        "hermes/plugin.yaml",
        0,
        False,
        [("plugin-format", "metadata.labels[workflows.argoproj.io/version]"), *APE_AND_CAPS],
        ["plugin-configmap-name", "plugin-read-only-root-filesystem", SECCOMP],
    ),
    ("python/plugin.yaml", 0, True, [], [SECCOMP]),
    ("python/python-executor-plugin-configmap.yaml", 0, True, [], [SECCOMP]),
    (
        "pytorch/pytorch-executor-plugin-configmap.yaml",
        0,
        False,
        APE_AND_CAPS,
        [
            "plugin-read-only-root-filesystem",
            "plugin-run-as-nobody",
            SECCOMP,
            "plugin-service-account",
        ],
    ),
    (
        "ray/ray-executor-plugin-configmap.yaml",
        0,
        False,
        APE_AND_CAPS,
        [
            "plugin-read-only-root-filesystem",
            "plugin-run-as-nobody",
            SECCOMP,
            "plugin-service-account",
        ],
    ),
    ("slack/plugin.yaml", 0, True, [], [SECCOMP]),
    ("slack/slack-executor-plugin-configmap.yaml", 0, True, [], [SECCOMP]),
    (
        "volcano/plugin.yaml",
        0,
        False,
        APE_AND_CAPS_YAML,
        [
            "plugin-read-only-root-filesystem",
            "plugin-reserved-ports",
            "plugin-run-as-nobody",
            SECCOMP,
        ],
    ),
    # The shipped ConfigMap drifted from plugin.yaml: it runs as root (uid 0, runAsNonRoot false).
    (
        "volcano/volcano-executor-plugin-configmap.yaml",
        0,
        False,
        [
            ("plugin-security-context", f"{CM}.capabilities"),
            ("plugin-security-context", f"{CM}.runAsNonRoot"),
            ("plugin-security-context", f"{CM}.runAsUser"),
        ],
        [
            "plugin-read-only-root-filesystem",
            "plugin-reserved-ports",
            SECCOMP,
            "plugin-service-account",
        ],
    ),
    (
        "wasm/distributed-mode-plugin.yaml",
        0,
        False,
        APE_AND_CAPS_YAML,
        ["plugin-read-only-root-filesystem", SECCOMP],
    ),
    (
        "wasm/plugin.yaml",
        0,
        False,
        APE_AND_CAPS_YAML,
        ["plugin-read-only-root-filesystem", SECCOMP],
    ),
]


@pytest.mark.parametrize(
    ("relative", "index", "allowed", "enforced", "warned"),
    EXPECTED,
    ids=[f"{e[0]}#{e[1]}" for e in EXPECTED],
)
def test_real_plugin_verdict(
    plugin_corpus: Path,
    policy_set: PolicySet,
    relative: str,
    index: int,
    allowed: bool,
    enforced: list[tuple[str, str]],
    warned: list[str],
) -> None:
    report = run_check([str(plugin_corpus / relative)], policy_set)
    assert not report.errors
    result = next(r for r in report.results if r.document.index == index)
    verdict = result.verdict
    assert verdict.allowed is allowed
    got_enforced = sorted(
        {(v.policy, v.path) for v in verdict.violations if v.action is Action.ENFORCE}
    )
    assert got_enforced == sorted(enforced)
    got_other = sorted(
        {v.policy for v in verdict.violations if v.action is not Action.ENFORCE}
        - {"no-inline-secrets", "pod-security-restricted"}
    )
    assert got_other == sorted(warned)


def test_every_plugin_in_the_corpus_is_covered(plugin_corpus: Path, policy_set: PolicySet) -> None:
    """A new plugin file in the corpus must get its verdict written down above."""
    from webhook.executor_plugin import read_plugin, workflow_level_plugins
    from webhook.manifests import expand_paths

    covered = {(e[0], e[1]) for e in EXPECTED}
    found = set()
    for path in expand_paths([str(plugin_corpus)]):
        report = run_check([path], policy_set)
        for result in report.results:
            obj = result.document.obj
            if read_plugin(obj) is not None or workflow_level_plugins(obj):
                found.add((str(Path(path).relative_to(plugin_corpus)), result.document.index))
    assert found == covered


def test_port_collision_between_hello_and_argocd(
    plugin_corpus: Path, policy_set: PolicySet
) -> None:
    # Both ship port 4355 (corpora-findings 3.4): checked together, both are denied.
    report = run_check(
        [
            str(plugin_corpus / "hello/hello-executor-plugin-configmap.yaml"),
            str(plugin_corpus / "argocd/argocd-executor-plugin-configmap.yaml"),
        ],
        policy_set,
    )
    collisions = {
        r.document.name: [v for v in r.verdict.violations if v.policy == "plugin-unique-ports"]
        for r in report.results
    }
    assert [v.message.split(":")[0] for v in collisions["hello-executor-plugin"]] == [
        "port 4355 is already used by plugin 'argocd'"
    ]
    assert [v.path for v in collisions["argocd-executor-plugin"]] == [
        "data[sidecar.container].ports[0].containerPort"
    ]
    assert all(not r.verdict.allowed for r in report.results)


def test_plugin_yaml_and_its_configmap_do_not_collide(
    plugin_corpus: Path, policy_set: PolicySet
) -> None:
    report = run_check([str(plugin_corpus / "hello")], policy_set)
    assert not any(
        v.policy == "plugin-unique-ports" for r in report.results for v in r.verdict.violations
    )
