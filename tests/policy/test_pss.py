"""Pod Security Standards (`webhook.policy.pss`) against the upstream oracles.

- kubernetes/pod-security-admission v1.37 fixtures (`shared/corpora/pss/`): every pass
  fixture gives no finding at its level, every fail fixture at least one, and a finding
  that names the control the fixture's file name says it exercises.
- kyverno/policies restricted test resources (`shared/corpora/kyverno-pss-restricted/`):
  good pods and pod templates give no finding for the policy's control, bad ones do.
- the `podSecurityStandard` check and `policies/pod-security-restricted.yaml` agree with
  the restricted fixtures.

The corpora live in `shared/` beside the repository (CI clones it there). A missing corpus
fails these tests; it never skips them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from webhook.policy import PolicySet, load_policies
from webhook.policy.checks.pod_security import pod_security_standard, prepare_level
from webhook.policy.model import Action, EvaluationContext, Finding, Target, TargetView, Violation
from webhook.policy.pss import ALLOWED_SYSCTLS, Level, pod_security_findings
from webhook.policy.registry import default_registry

REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "corpora"
PSS = CORPORA / "pss"
KYVERNO = CORPORA / "kyverno-pss-restricted"
if not CORPORA.parent.is_dir():  # only outside CI: tests/conftest.py fails a CI run without it
    pytest.skip("shared/ is missing: this module reads its corpora", allow_module_level=True)
POLICY_FILE = REPO / "policies" / "pod-security-restricted.yaml"

# kubernetes/pod-security-admission test/testdata/<level>/v1.37/<pass|fail>/*.yaml
EXPECTED_COUNTS = {
    ("baseline", "pass"): 15,
    ("baseline", "fail"): 34,
    ("restricted", "pass"): 23,
    ("restricted", "fail"): 76,
}
MISSING = "corpus-missing"


def _fixture_names(level: str, verdict: str) -> list[str]:
    folder = PSS / level / verdict
    if not folder.is_dir():
        return [MISSING]  # the test then fails, saying where the corpus was looked for
    return sorted(path.name for path in folder.glob("*.yaml"))


def _pod(level: str, verdict: str, name: str) -> dict[str, Any]:
    path = PSS / level / verdict / name
    if name == MISSING or not path.is_file():
        pytest.fail(
            f"PSS fixture corpus missing: {path.parent} does not exist or lacks {name}; "
            "the repository's parent folder must hold shared/corpora/pss/"
        )
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {"metadata": document.get("metadata"), "spec": document.get("spec")}


def _show(findings: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {path}: {message}" for path, message in findings) or "  (none)"


def test_corpus_is_present_and_complete() -> None:
    assert PSS.is_dir(), f"PSS fixture corpus missing at {PSS} (shared/ must sit beside the repo)"
    assert KYVERNO.is_dir(), f"kyverno corpus missing at {KYVERNO}"
    counts = {key: len(list((PSS / key[0] / key[1]).glob("*.yaml"))) for key in EXPECTED_COUNTS}
    assert counts == EXPECTED_COUNTS


# --- kubernetes/pod-security-admission fixtures -------------------------------------------


@pytest.mark.parametrize(
    ("level", "name"),
    [("baseline", name) for name in _fixture_names("baseline", "pass")]
    + [("restricted", name) for name in _fixture_names("restricted", "pass")],
)
def test_pass_fixture_has_no_finding(level: Level, name: str) -> None:
    findings = pod_security_findings(_pod(level, "pass", name), level)
    assert findings == [], f"{level}/pass/{name} must be allowed, got:\n{_show(findings)}"


@pytest.mark.parametrize("name", _fixture_names("restricted", "pass"))
def test_restricted_pass_fixture_also_passes_baseline(name: str) -> None:
    findings = pod_security_findings(_pod("restricted", "pass", name), "baseline")
    assert findings == [], f"restricted includes baseline:\n{_show(findings)}"


# File-name prefix (the PSA check id, lower-cased) -> pattern a finding path must match.
CONTROL_PATHS: dict[str, str] = {
    "allowprivilegeescalation": r"\.securityContext\.allowPrivilegeEscalation$",
    "apparmorprofile": r"^metadata\.annotations\[container\.apparmor\.security\.beta\.kubernetes\.io/"
    r"|\.appArmorProfile\.type$",
    "capabilities_baseline": r"\.securityContext\.capabilities\.add\[\d+\]$",
    "capabilities_restricted": r"\.securityContext\.capabilities\.(add\[\d+\]|drop)$",
    "hostnamespaces": r"^spec\.host(Network|PID|IPC)$",
    "hostpathvolumes": r"^spec\.volumes\[\d+\]\.hostPath$",
    "hostports": r"\.ports\[\d+\]\.hostPort$",
    "hostprobesandhostlifecycle": r"\.(livenessProbe|readinessProbe|startupProbe"
    r"|lifecycle\.postStart|lifecycle\.preStop)\.(httpGet|tcpSocket)\.host$",
    "privileged": r"\.securityContext\.privileged$",
    "procmount": r"\.securityContext\.procMount$",
    "procmount_restricted": r"\.securityContext\.procMount$",
    "restrictedvolumes": r"^spec\.volumes\[\d+\]\.[A-Za-z]+$",
    "runasnonroot": r"\.securityContext\.runAsNonRoot$",
    "runasuser": r"\.securityContext\.runAsUser$",
    "seccompprofile_baseline": r"\.securityContext\.seccompProfile\.type$",
    "seccompprofile_restricted": r"\.securityContext\.seccompProfile\.type$",
    "selinuxoptions": r"\.securityContext\.seLinuxOptions\.(type|user|role)$",
    "sysctls": r"^spec\.securityContext\.sysctls\[\d+\]\.name$",
    "windowshostprocess": r"\.securityContext\.windowsOptions\.hostProcess$",
}
# What the message must name for that control (case-insensitive).
CONTROL_WORDS: dict[str, str] = {
    "allowprivilegeescalation": "allowPrivilegeEscalation",
    "apparmorprofile": "AppArmor",
    "capabilities_baseline": "capabilit",
    "capabilities_restricted": "capabilit",
    "hostnamespaces": "host",
    "hostpathvolumes": "hostPath",
    "hostports": "hostPort",
    "hostprobesandhostlifecycle": "host",
    "privileged": "privileged",
    "procmount": "procMount",
    "procmount_restricted": "procMount",
    "restrictedvolumes": "volumes",
    "runasnonroot": "runAsNonRoot",
    "runasuser": "runAsUser",
    "seccompprofile_baseline": "seccompProfile",
    "seccompprofile_restricted": "seccompProfile",
    "selinuxoptions": "seLinuxOptions",
    "sysctls": "sysctl",
    "windowshostprocess": "hostProcess",
}


def _control(name: str) -> str:
    return re.sub(r"\d+\.yaml$", "", name)


@pytest.mark.parametrize(
    ("level", "name"),
    [("baseline", name) for name in _fixture_names("baseline", "fail")]
    + [("restricted", name) for name in _fixture_names("restricted", "fail")],
)
def test_fail_fixture_is_refused_for_its_control(level: Level, name: str) -> None:
    pod = _pod(level, "fail", name)
    findings = pod_security_findings(pod, level)
    assert findings, f"{level}/fail/{name} must be refused at {level}"

    control = _control(name)
    assert control in CONTROL_PATHS, f"no expected control for fixture prefix {control!r}"
    pattern = re.compile(CONTROL_PATHS[control])
    word = CONTROL_WORDS[control].lower()
    named = [(p, m) for p, m in findings if pattern.search(p) and word in m.lower()]
    assert named, f"{level}/fail/{name}: no finding names {control}:\n{_show(findings)}"


@pytest.mark.parametrize("name", _fixture_names("restricted", "fail"))
def test_every_finding_says_its_profile(name: str) -> None:
    for path, message in pod_security_findings(_pod("restricted", "fail", name), "restricted"):
        assert path and not path.startswith("."), path
        assert message.endswith(("(baseline)", "(restricted)")), message


# --- kyverno/policies restricted test resources ---------------------------------------------

# Policy folder -> the control it tests, as a predicate on finding paths.
KYVERNO_CONTROLS: dict[str, Callable[[str], bool]] = {
    "disallow-capabilities-strict": lambda path: ".securityContext.capabilities." in path,
    "disallow-privilege-escalation": lambda path: path.endswith(".allowPrivilegeEscalation"),
    "require-run-as-non-root-user": lambda path: path.endswith(".runAsUser"),
    "require-run-as-nonroot": lambda path: path.endswith(".runAsNonRoot"),
    "restrict-seccomp-strict": lambda path: ".seccompProfile." in path,
    "restrict-volume-types": lambda path: path.startswith("spec.volumes["),
}
KYVERNO_FILES = ("pod-good", "pod-bad", "podcontroller-good", "podcontroller-bad")


def _pod_template(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod (template) of a Pod, a CronJob or a workload with spec.template."""
    kind = document.get("kind")
    if kind == "Pod":
        return document
    spec = document["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Mapping[str, Any] = spec["template"]
    return template


def _kyverno_cases() -> Iterator[Any]:
    for folder in KYVERNO_CONTROLS:
        for stem in KYVERNO_FILES:
            path = KYVERNO / folder / f"{stem}.yaml"
            if not path.is_file():
                yield pytest.param(folder, stem, MISSING, None, id=f"{folder}/{stem}/{MISSING}")
                continue
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if document:
                    name = f"{document['kind']}/{document['metadata']['name']}"
                    yield pytest.param(folder, stem, name, document, id=f"{folder}/{stem}/{name}")


@pytest.mark.parametrize(("folder", "stem", "name", "document"), list(_kyverno_cases()))
def test_kyverno_resource(folder: str, stem: str, name: str, document: Any) -> None:
    if document is None:
        pytest.fail(f"kyverno corpus missing: {KYVERNO / folder / stem}.yaml")
    template = _pod_template(document)
    pod = {"metadata": template.get("metadata"), "spec": template.get("spec")}
    findings = pod_security_findings(pod, "restricted")
    relevant = [(p, m) for p, m in findings if KYVERNO_CONTROLS[folder](p)]
    if stem.endswith("-good"):
        assert relevant == [], f"{name} is good for {folder}:\n{_show(relevant)}"
    else:
        assert relevant, f"{name} is bad for {folder}; all findings:\n{_show(findings)}"


def test_kyverno_corpus_counts() -> None:
    documents = [case.values[3] for case in _kyverno_cases()]
    assert None not in documents, f"kyverno corpus incomplete under {KYVERNO}"
    assert len(documents) == 374


# --- the standard, control by control, on hand-written pods ---------------------------------


def _restricted_pod(**spec: Any) -> dict[str, Any]:
    """restricted/pass/base.yaml, with `spec` fields replaced."""
    container = {
        "name": "app",
        "image": "registry.k8s.io/pause",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    base: dict[str, Any] = {
        "containers": [container],
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    base.update(spec)
    return {"metadata": {"name": "p"}, "spec": base}


def test_messages_and_paths_say_what_to_write() -> None:
    pod = _restricted_pod(
        containers=[{"name": "app", "securityContext": {"capabilities": {"drop": ["ALL"]}}}],
        volumes=[
            {"name": "a", "emptyDir": {}},
            {"name": "b", "secret": {"secretName": "s"}},
            {"name": "c", "hostPath": {"path": "/"}},
        ],
    )
    pod["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/x": "unconfined"
    }
    findings = dict(pod_security_findings(pod, "restricted"))
    assert findings["spec.containers[0].securityContext.allowPrivilegeEscalation"] == (
        "allowPrivilegeEscalation must be false (restricted)"
    )
    assert "spec.volumes[2].hostPath" in findings
    assert "persistentVolumeClaim" in findings["spec.volumes[2].hostPath"]
    assert (
        "runtime/default"
        in findings["metadata.annotations[container.apparmor.security.beta.kubernetes.io/x]"]
    )
    assert len(findings) == 3


def test_baseline_allows_what_only_restricted_forbids() -> None:
    pod = {
        "metadata": {},
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "securityContext": {"runAsUser": 0, "capabilities": {"add": ["CHOWN"]}},
                }
            ],
            "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}],
        },
    }
    assert pod_security_findings(pod, "baseline") == []
    paths = {path for path, _ in pod_security_findings(pod, "restricted")}
    assert paths == {
        "spec.containers[0].securityContext.runAsUser",
        "spec.containers[0].securityContext.capabilities.add[0]",
        "spec.containers[0].securityContext.capabilities.drop",
        "spec.containers[0].securityContext.allowPrivilegeEscalation",
        "spec.securityContext.runAsNonRoot",
        "spec.securityContext.seccompProfile.type",
        "spec.volumes[0].nfs",
    }


def test_ephemeral_and_init_containers_are_checked() -> None:
    bad = {"name": "x", "securityContext": {"privileged": True}}
    pod = {
        "metadata": {},
        "spec": {
            "containers": [{"name": "a"}],
            "initContainers": [bad],
            "ephemeralContainers": [bad],
        },
    }
    assert [path for path, _ in pod_security_findings(pod, "baseline")] == [
        "spec.initContainers[0].securityContext.privileged",
        "spec.ephemeralContainers[0].securityContext.privileged",
    ]
    restricted = _restricted_pod(ephemeralContainers=[{"name": "debug"}])
    assert {path for path, _ in pod_security_findings(restricted, "restricted")} == {
        "spec.ephemeralContainers[0].securityContext.allowPrivilegeEscalation",
        "spec.ephemeralContainers[0].securityContext.capabilities.drop",
    }


def test_windows_pods_are_exempt_from_linux_only_restricted_controls() -> None:
    windows = {
        "metadata": {},
        "spec": {
            "os": {"name": "windows"},
            "securityContext": {"runAsNonRoot": True},
            "containers": [{"name": "w"}],
        },
    }
    assert pod_security_findings(windows, "restricted") == []
    # ...but not from runAsNonRoot, nor from baseline.
    windows["spec"]["securityContext"] = {"windowsOptions": {"hostProcess": True}}
    assert {path for path, _ in pod_security_findings(windows, "restricted")} == {
        "spec.securityContext.windowsOptions.hostProcess",
        "spec.securityContext.runAsNonRoot",
    }
    linux = _restricted_pod(os={"name": "linux"}, containers=[{"name": "l"}])
    assert len(pod_security_findings(linux, "restricted")) == 2


def test_user_namespace_relaxations() -> None:
    pod = _restricted_pod(
        hostUsers=False,
        securityContext={"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
    )
    assert pod_security_findings(pod, "restricted") == []
    pod["spec"]["containers"][0]["securityContext"]["procMount"] = "Unmasked"
    assert [path for path, _ in pod_security_findings(pod, "restricted")] == [
        "spec.containers[0].securityContext.procMount"
    ]
    assert pod_security_findings(pod, "baseline") == []
    pod["spec"]["hostUsers"] = True
    assert len(pod_security_findings(pod, "baseline")) == 1


def test_run_as_non_root_container_overrides() -> None:
    two: list[dict[str, Any]] = [
        {
            "name": "a",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
            },
        },
        {
            "name": "b",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        },
    ]
    pod = _restricted_pod(
        containers=two,
        securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}},
    )
    findings = pod_security_findings(pod, "restricted")
    assert [path for path, _ in findings] == ["spec.containers[1].securityContext.runAsNonRoot"]
    assert "spec.securityContext" in findings[0][1]
    two[1]["securityContext"]["runAsNonRoot"] = True
    assert pod_security_findings(pod, "restricted") == []
    two[1]["securityContext"]["runAsNonRoot"] = False  # a container cannot undo the pod's true
    pod["spec"]["securityContext"]["runAsNonRoot"] = True
    assert [path for path, _ in pod_security_findings(pod, "restricted")] == [
        "spec.containers[1].securityContext.runAsNonRoot"
    ]


@pytest.mark.parametrize(
    ("volume", "allowed"),
    [
        ({"name": "v"}, True),  # defaulted to emptyDir by the API server
        ({"name": "v", "image": {"reference": "registry.k8s.io/x:1"}}, True),
        ({"name": "v", "csi": {"driver": "d"}}, True),
        ({"name": "v", "ephemeral": {"volumeClaimTemplate": {}}}, True),
        ({"name": "v", "hostPath": None}, True),
        ({"name": "v", "photonPersistentDisk": {"pdID": "x"}}, False),
        ({"name": "v", "someFutureSource": {}}, False),
    ],
)
def test_restricted_volume_types(volume: dict[str, Any], allowed: bool) -> None:
    findings = pod_security_findings(_restricted_pod(volumes=[volume]), "restricted")
    assert (findings == []) is allowed, _show(findings)


def test_safe_sysctls_v1_37() -> None:
    sysctls = [{"name": name, "value": "1"} for name in sorted(ALLOWED_SYSCTLS)]
    pod = {
        "metadata": {},
        "spec": {"securityContext": {"sysctls": sysctls}, "containers": [{"name": "a"}]},
    }
    assert pod_security_findings(pod, "baseline") == []
    assert {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"} <= ALLOWED_SYSCTLS
    sysctls.append({"name": "net.core.somaxconn", "value": "1"})
    assert [path for path, _ in pod_security_findings(pod, "baseline")] == [
        f"spec.securityContext.sysctls[{len(sysctls) - 1}].name"
    ]


@pytest.mark.parametrize(
    ("security_context", "bad_path"),
    [
        ({"appArmorProfile": {"type": "RuntimeDefault"}}, None),
        ({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}, None),
        ({"appArmorProfile": {"type": "Unconfined"}}, "appArmorProfile.type"),
        ({"seLinuxOptions": {"type": "container_engine_t", "level": "s0:c1"}}, None),
        ({"seLinuxOptions": {"type": "spc_t"}}, "seLinuxOptions.type"),
        ({"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}, None),
        ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile.type"),
        ({"windowsOptions": {"hostProcess": False}}, None),
        ({"procMount": "Default"}, None),
        ({"privileged": False}, None),
    ],
)
def test_baseline_security_context_values(
    security_context: dict[str, Any], bad_path: str | None
) -> None:
    for prefix, pod in (
        (
            "spec.securityContext",
            {"securityContext": security_context, "containers": [{"name": "a"}]},
        ),
        (
            "spec.containers[0].securityContext",
            {"containers": [{"name": "a", "securityContext": security_context}]},
        ),
    ):
        if prefix == "spec.securityContext" and "privileged" in security_context:
            continue  # container-only fields
        if prefix == "spec.securityContext" and "procMount" in security_context:
            continue
        paths = [
            path for path, _ in pod_security_findings({"metadata": {}, "spec": pod}, "baseline")
        ]
        assert paths == ([] if bad_path is None else [f"{prefix}.{bad_path}"])


def test_probe_and_lifecycle_hosts() -> None:
    container = {
        "name": "a",
        "ports": [{"containerPort": 80, "hostPort": 0}],
        "startupProbe": {"httpGet": {"port": 80, "host": ""}},
        "livenessProbe": {"grpc": {"port": 80}},
        "lifecycle": {"preStop": {"tcpSocket": {"port": 80, "host": "10.0.0.1"}}},
    }
    paths = [
        p
        for p, _ in pod_security_findings(
            {"metadata": {}, "spec": {"containers": [container]}}, "baseline"
        )
    ]
    assert paths == ["spec.containers[0].lifecycle.preStop.tcpSocket.host"]


def test_capability_hints() -> None:
    pod = {
        "metadata": {},
        "spec": {
            "containers": [
                {"name": "a", "securityContext": {"capabilities": {"add": ["cap_kill"]}}}
            ]
        },
    }
    ((_, message),) = pod_security_findings(pod, "baseline")
    assert "write KILL" in message
    pod = _restricted_pod(
        containers=[
            {
                "name": "a",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["all"]},
                },
            }
        ]
    )
    ((path, message),) = pod_security_findings(pod, "restricted")
    assert path == "spec.containers[0].securityContext.capabilities.drop"
    assert "capitals" in message


@pytest.mark.parametrize(
    "pod",
    [
        {},
        {"metadata": None, "spec": None},
        {"metadata": "x", "spec": ["not", "a", "mapping"]},
        {
            "spec": {
                "containers": ["nginx", None, 3],
                "volumes": "v",
                "securityContext": {"sysctls": [None]},
            }
        },
        {
            "spec": {
                "containers": [
                    {"securityContext": "x", "ports": [None], "livenessProbe": "x", "lifecycle": 1}
                ]
            }
        },
        {"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/a": None}}},
        {
            "spec": {
                "securityContext": {
                    "sysctls": [{"name": ["x"]}],
                    "seccompProfile": {"type": {}},
                    "seLinuxOptions": {"type": []},
                    "appArmorProfile": {"type": []},
                },
                "containers": [{"securityContext": {"capabilities": {"add": [[]], "drop": [{}]}}}],
                "volumes": [{"name": "v", "hostPath": []}],
            }
        },
    ],
)
def test_malformed_input_does_not_crash(pod: dict[str, Any]) -> None:
    for level in ("baseline", "restricted"):
        assert isinstance(pod_security_findings(pod, level), list)


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="baseline"):
        pod_security_findings({}, "privileged")  # type: ignore[arg-type]


# --- the registered check and the bundled policy ---------------------------------------------


def _view(pod: Mapping[str, Any]) -> TargetView:
    return TargetView(
        target=Target.POD, value=pod, path="", resource=pod, kind="Pod", namespace="ns", name="p"
    )


def test_check_is_registered_for_pods() -> None:
    spec = default_registry.get("podSecurityStandard")
    assert spec is not None
    assert spec.function is pod_security_standard
    assert spec.prepare({"level": "baseline"}) == "baseline"
    assert spec.targets == frozenset({Target.POD})
    validator = jsonschema.Draft202012Validator(spec.parameters_schema)
    assert validator.is_valid({"level": "baseline"})
    assert validator.is_valid({"level": "restricted"})
    for bad in ({}, {"level": "privileged"}, {"level": "restricted", "version": "v1.37"}):
        assert not validator.is_valid(bad), bad


def test_check_yields_the_findings() -> None:
    pod = _pod("restricted", "fail", "hostports2.yaml")
    findings = list(pod_security_standard(_view(pod), "restricted", EvaluationContext()))
    assert findings == [Finding(p, m) for p, m in pod_security_findings(pod, "restricted")]
    assert len(findings) == 2
    with pytest.raises(ValueError, match="level must be one of"):
        prepare_level({"level": "nope"})


def _policy() -> dict[str, Any]:
    policy: dict[str, Any] = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    return policy


@pytest.fixture(scope="module")
def policy_set(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    """The policy file alone, loaded (and validated) by the real loader."""
    folder = tmp_path_factory.mktemp("policies")
    shutil.copy(POLICY_FILE, folder / POLICY_FILE.name)
    return load_policies(folder)


def test_policy_file(policy_set: PolicySet) -> None:
    assert policy_set.policy_ids == ["pod-security-restricted"]
    policy = _policy()
    assert policy["id"] == POLICY_FILE.stem
    assert policy["action"] == "Audit"
    assert "Enforce" in policy["description"]
    assert policy["match"] == {"targets": ["pod"]}
    (rule,) = policy["rules"]
    assert rule == {"check": "podSecurityStandard", "parameters": {"level": "restricted"}}


def _violations(policy_set: PolicySet, resource: Mapping[str, Any]) -> list[Violation]:
    verdict = policy_set.evaluate(resource)
    return [v for v in verdict.violations if v.policy == "pod-security-restricted"]


@pytest.mark.parametrize(
    ("verdict", "name"),
    [("pass", name) for name in _fixture_names("restricted", "pass")]
    + [("fail", name) for name in _fixture_names("restricted", "fail")],
)
def test_policy_agrees_with_restricted_fixtures(
    policy_set: PolicySet, verdict: str, name: str
) -> None:
    """The issue's acceptance test: pass fixtures give no violation, fail fixtures some."""
    pod = _pod("restricted", verdict, name)
    violations = _violations(policy_set, {"apiVersion": "v1", "kind": "Pod", **pod})
    assert (violations == []) is (verdict == "pass"), violations
    assert all(v.action is Action.AUDIT for v in violations)


def test_policy_reports_paths_from_the_workload_root(policy_set: PolicySet) -> None:
    pod = _pod("restricted", "fail", "hostpathvolumes0.yaml")
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": pod}}},
    }
    assert [v.path for v in _violations(policy_set, cronjob)] == [
        "spec.jobTemplate.spec.template.spec.volumes[1].hostPath"
    ]
