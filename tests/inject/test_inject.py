"""inject(): real agent pods and real plugins in, a JSON Patch out, checked by applying it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from webhook.executor_plugin import ExecutorPlugin
from webhook.inject import (
    INJECT_LABEL,
    PLUGINS_ANNOTATION,
    STATUS_ANNOTATION,
    Injection,
    Result,
    inject,
    token_volume_name,
)
from webhook.inject.hardening import plugin_object
from webhook.policy import Action, load_policies
from webhook.policy.model import EvaluationContext

from .conftest import (
    NAMESPACE,
    agent_pod,
    apply,
    by_name,
    corpus_plugin,
    env_value,
    load_plugin,
    minimal_container,
    plugin_from_container,
)

Run = Callable[..., Injection]
REPO = Path(__file__).resolve().parents[2]
BENCH_AGENT = REPO.parent / "shared" / "bench" / "payloads" / "c-pod-agent-3-containers.json"
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def argo_mount(name: str) -> dict[str, Any]:
    return {"name": "var-run-argo", "mountPath": "/var/run/argo", "readOnly": True, "subPath": name}


def with_sidecar(pod: dict[str, Any], plugin: ExecutorPlugin) -> dict[str, Any]:
    """The pod Argo's controller builds when it attached `plugin` itself (4.3-4.5)."""
    pod = copy.deepcopy(pod)
    assert plugin.container is not None
    sidecar = copy.deepcopy(plugin.container)
    sidecar["volumeMounts"] = [argo_mount(sidecar["name"])]
    pod["spec"]["containers"].insert(0, sidecar)
    for container in (pod["spec"]["initContainers"][0], pod["spec"]["containers"][-1]):
        for var in container["env"]:
            if var["name"] == "ARGO_PLUGIN_ADDRESSES":
                var["value"] = json.dumps([f"http://localhost:{plugin.port}"])
            elif var["name"] == "ARGO_PLUGIN_NAMES":
                var["value"] = json.dumps([sidecar["name"]])
    return pod


# --------------------------------------------------------------------------- the patch


def test_attaches_every_plugin_as_argos_controller_does(
    run: Run, registry: list[ExecutorPlugin]
) -> None:
    pod = agent_pod()
    out = run(pod, registry)
    assert out.result is Result.INJECTED
    assert out.warnings == ()
    names = [p.container_name for p in registry]
    assert (
        list(out.injected)
        == names
        == [
            "hello-executor-plugin",
            "slack-executor-plugin",
            "python-executor-plugin",
        ]
    )
    patched = apply(pod, out)
    spec = patched["spec"]
    # Sidecars before main, main last (spec 4.3).
    assert [c["name"] for c in spec["containers"]] == [*names, "main"]
    for plugin, sidecar in zip(registry, spec["containers"][:-1], strict=True):
        original = plugin.container
        assert original is not None
        # Everything the plugin sets is kept as it is.
        for key, value in original.items():
            if key == "securityContext":
                assert value.items() <= sidecar[key].items()
            else:
                assert sidecar[key] == value, key
        # The token mount, exactly Argo's (4.5): only its own folder, read-only.
        assert sidecar["volumeMounts"] == [argo_mount(sidecar["name"])]
        # The hardened default the bundled plugin-seccomp-profile policy fixes.
        assert sidecar["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        # Argo gives plugin sidecars none of the agent's environment (4.4).
        assert not any(var["name"].startswith("ARGO_") for var in sidecar.get("env", []))
    addresses = ["http://localhost:4355", "http://localhost:7522", "http://localhost:7984"]
    for container in (spec["initContainers"][0], spec["containers"][-1]):
        assert env_value(container, "ARGO_PLUGIN_ADDRESSES") == addresses
        assert env_value(container, "ARGO_PLUGIN_NAMES") == names
    annotations = patched["metadata"]["annotations"]
    assert annotations[STATUS_ANNOTATION] == "injected"
    assert annotations[PLUGINS_ANNOTATION] == ",".join(names)
    assert annotations["kubectl.kubernetes.io/default-container"] == "main"


def test_nothing_else_changes(run: Run, registry: list[ExecutorPlugin]) -> None:
    pod = agent_pod()
    patched = apply(pod, run(pod, registry))
    # Remove exactly what injection adds: the rest is the pod as it came.
    for key in (STATUS_ANNOTATION, PLUGINS_ANNOTATION):
        del patched["metadata"]["annotations"][key]
    patched["spec"]["containers"] = patched["spec"]["containers"][-1:]
    for container in (patched["spec"]["initContainers"][0], patched["spec"]["containers"][0]):
        for var in container["env"]:
            if var["name"] in ("ARGO_PLUGIN_ADDRESSES", "ARGO_PLUGIN_NAMES"):
                var["value"] = "null"
    assert patched == pod


def test_patch_is_add_only_and_never_replaces_a_list(
    run: Run, registry: list[ExecutorPlugin]
) -> None:
    out = run(agent_pod(), registry)
    assert {op["op"] for op in out.patch} == {"add"}
    paths = [op["path"] for op in out.patch]
    assert "/spec/containers" not in paths and "/spec/volumes" not in paths
    assert all(not p.endswith("/env") for p in paths)


def test_only_agent_pods_that_opted_in(run: Run, registry: list[ExecutorPlugin]) -> None:
    pod = agent_pod()
    labels = pod["metadata"]["labels"]
    for value in ("false", "True", "yes", ""):
        labels[INJECT_LABEL] = value
        assert run(pod, registry) == Injection(Result.NOT_OPTED_IN)
    del labels[INJECT_LABEL]
    assert run(pod, registry) == Injection(Result.NOT_OPTED_IN)
    labels[INJECT_LABEL] = "true"
    labels["workflows.argoproj.io/component"] = "workflow"
    assert run(pod, registry) == Injection(Result.NOT_AGENT)
    del labels["workflows.argoproj.io/component"]
    assert run(pod, registry) == Injection(Result.NOT_AGENT)
    assert run({"kind": "Pod"}, registry) == Injection(Result.NOT_AGENT)


# --------------------------------------------------------------------------- idempotency


def test_second_call_on_the_patched_pod_changes_nothing(
    run: Run, registry: list[ExecutorPlugin]
) -> None:
    pod = agent_pod()
    patched = apply(pod, run(pod, registry))
    again = run(patched, registry)
    assert again == Injection(Result.ALREADY)
    assert again.patch == ()


def test_same_request_twice_gives_the_same_patch(
    run: Run, registry: list[ExecutorPlugin], plugin_corpus: Path
) -> None:
    pod = agent_pod()
    first = run(pod, registry)
    second = run(copy.deepcopy(pod), registry)
    assert second == first
    # A reloaded registry (new objects, no cache) and policy set give the same patch too.
    fresh = [corpus_plugin(plugin_corpus, p.name) for p in registry]
    assert run(pod, fresh, policies=load_policies()).patch == first.patch
    assert pod == agent_pod()  # the input is never changed


def test_status_annotation_alone_means_injected(run: Run, registry: list[ExecutorPlugin]) -> None:
    pod = agent_pod()
    pod["metadata"]["annotations"][STATUS_ANNOTATION] = "injected"
    assert run(pod, registry) == Injection(Result.ALREADY)


def test_plugins_argo_attached_are_kept_and_not_duplicated(
    run: Run, registry: list[ExecutorPlugin]
) -> None:
    hello = registry[0]
    pod = with_sidecar(agent_pod(), hello)
    out = run(pod, registry)
    assert out.injected == ("slack-executor-plugin", "python-executor-plugin")
    assert out.warnings == ()
    patched = apply(pod, out)
    containers = patched["spec"]["containers"]
    assert [c["name"] for c in containers] == [
        "hello-executor-plugin",
        "slack-executor-plugin",
        "python-executor-plugin",
        "main",
    ]
    assert containers[0] == pod["spec"]["containers"][0]  # Argo's sidecar untouched
    for container in (patched["spec"]["initContainers"][0], containers[-1]):
        assert env_value(container, "ARGO_PLUGIN_NAMES") == [c["name"] for c in containers[:-1]]
        assert env_value(container, "ARGO_PLUGIN_ADDRESSES") == [
            "http://localhost:4355",
            "http://localhost:7522",
            "http://localhost:7984",
        ]


def test_every_plugin_already_there_gives_no_patch(
    run: Run, registry: list[ExecutorPlugin]
) -> None:
    pod = agent_pod()
    for plugin in reversed(registry):
        pod = with_sidecar(pod, plugin)
    out = run(pod, registry)
    assert out == Injection(Result.NOTHING)


# --------------------------------------------------------------------------- scope


def test_plugin_namespaces(run: Run) -> None:
    here = plugin_from_container(minimal_container("here", 5001), namespace=NAMESPACE)
    other = plugin_from_container(minimal_container("other", 5002), namespace="team-b")
    everywhere = plugin_from_container(minimal_container("everywhere", 5003))
    out = run(agent_pod(), [here, other, everywhere])
    assert out.injected == ("here", "everywhere")
    # A pod created with generateName may have no namespace yet: the request's counts.
    pod = agent_pod()
    del pod["metadata"]["namespace"]
    assert run(pod, [here, other, everywhere], namespace="team-b").injected == (
        "other",
        "everywhere",
    )


def test_empty_registry_gives_no_patch(run: Run) -> None:
    assert run(agent_pod(), []) == Injection(Result.NOTHING)


# --------------------------------------------------------------------------- collisions


def test_port_already_used_in_the_pod_skips_that_plugin(
    run: Run, registry: list[ExecutorPlugin]
) -> None:
    pod = agent_pod()
    # Another sidecar (not a registry plugin) already listens on slack's port.
    pod["spec"]["containers"].insert(0, minimal_container("metrics-proxy", 7522))
    out = run(pod, registry)
    assert out.result is Result.INJECTED
    assert out.injected == ("hello-executor-plugin", "python-executor-plugin")
    assert out.skipped == ("slack-executor-plugin",)
    (warning,) = out.warnings
    assert "slack-executor-plugin" in warning
    assert "port 7522" in warning and "metrics-proxy" in warning
    assert len(warning) <= 120
    patched = apply(pod, out)
    main = patched["spec"]["containers"][-1]
    assert env_value(main, "ARGO_PLUGIN_NAMES") == list(out.injected)


def test_two_registry_plugins_on_one_port_first_wins(run: Run) -> None:
    first = plugin_from_container(minimal_container("first", 4355))
    second = plugin_from_container(minimal_container("second", 4355))
    out = run(agent_pod(), [first, second])
    assert out.injected == ("first",)
    assert out.skipped == ("second-executor-plugin",)
    assert "port 4355 is already used by container first" in out.warnings[0]


def test_native_sidecar_ports_count_plain_init_container_ports_do_not(run: Run) -> None:
    plugin = plugin_from_container(minimal_container("plug", 6000))
    pod = agent_pod()
    pod["spec"]["initContainers"].append(minimal_container("setup", 6000))
    assert run(pod, [plugin]).injected == ("plug",)
    pod["spec"]["initContainers"][-1]["restartPolicy"] = "Always"
    out = run(pod, [plugin])
    assert out.injected == () and "port 6000" in out.warnings[0]


def test_same_container_name_from_two_namespaces(run: Run) -> None:
    local = plugin_from_container(minimal_container("dup", 5001), namespace=NAMESPACE)
    global_ = plugin_from_container(minimal_container("dup", 5002))
    out = run(agent_pod(), [local, global_])
    assert out.injected == ("dup",)
    assert (
        "container name dup is already used by plugin argo/dup-executor-plugin" in (out.warnings[0])
    )


def test_plugin_that_mounts_var_run_argo_itself_is_skipped(run: Run) -> None:
    container = minimal_container(
        "mounter", 5001, volumeMounts=[{"name": "x", "mountPath": "/var/run/argo/"}]
    )
    out = run(agent_pod(), [plugin_from_container(container)])
    assert out.result is Result.NOTHING
    assert "/var/run/argo" in out.warnings[0]


def test_plugins_argo_would_refuse_are_skipped(run: Run) -> None:
    no_port = minimal_container("noport", 1)
    del no_port["ports"]
    no_sc = minimal_container("nosc", 5002)
    del no_sc["securityContext"]
    out = run(agent_pod(), [plugin_from_container(no_port), plugin_from_container(no_sc)])
    assert out.result is Result.NOTHING
    assert "at least one port is mandatory" in out.warnings[0]
    assert "security context is mandatory" in out.warnings[1]


# --------------------------------------------------------------------------- defaults


def test_hardened_defaults_come_from_the_policy_fixes(run: Run) -> None:
    plugin = plugin_from_container(minimal_container("bare", 5001))  # securityContext: {}
    out = run(agent_pod(), [plugin])
    sidecar = out.patch[-1]["value"]
    assert sidecar["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # No policies: no defaults (they are not hard-coded in the injector).
    bare = run(agent_pod(), [plugin], policies=None).patch[-1]["value"]
    assert bare["securityContext"] == {}


def test_policy_files_drive_the_defaults(run: Run, tmp_path: Path) -> None:
    source = REPO / "policies" / "plugin-security-context.yaml"
    text = source.read_text().replace(
        "  - {op: add, path: /securityContext/runAsNonRoot, value: true}\n",
        "  - {op: add, path: /securityContext/runAsNonRoot, value: true}\n"
        "  - {op: add, path: /securityContext/readOnlyRootFilesystem, value: true}\n",
    )
    (tmp_path / "plugin-security-context.yaml").write_text(text)
    policies = load_policies(tmp_path)
    plugin = plugin_from_container(minimal_container("bare", 5001))
    sidecar = run(agent_pod(), [plugin], policies=policies).patch[-1]["value"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert "seccompProfile" not in sidecar["securityContext"]  # that policy is not loaded


def test_defaults_never_overwrite_what_the_plugin_sets(run: Run) -> None:
    container = minimal_container(
        "mine",
        5001,
        securityContext={
            "capabilities": {"add": ["NET_BIND_SERVICE"]},
            "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
            "runAsUser": 1000,
        },
    )
    sidecar = run(agent_pod(), [plugin_from_container(container)]).patch[-1]["value"]
    assert sidecar["securityContext"] == {
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
        "runAsUser": 1000,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
    }


def test_plugin_still_denied_after_defaults_is_skipped(run: Run) -> None:
    root = minimal_container("rooty", 5001, securityContext={"runAsNonRoot": False})
    ok = minimal_container("fine", 5002)
    out = run(agent_pod(), [plugin_from_container(root), plugin_from_container(ok)])
    assert out.injected == ("fine",)
    assert out.skipped == ("rooty-executor-plugin",)
    assert "denied by policy plugin-security-context" in out.warnings[0]


def test_no_secret_or_token_ever_in_the_patch(run: Run, registry: list[ExecutorPlugin]) -> None:
    key = "AKIA" + "Q3EGRMRH7J6Z3DFE"  # an AWS access key id shape
    leaky = minimal_container(
        "leaky",
        5001,
        env=[{"name": "AWS_ACCESS_KEY_ID", "value": key}],
    )
    out = run(agent_pod(), [*registry, plugin_from_container(leaky)])
    assert out.skipped == ("leaky-executor-plugin",)
    assert "no-inline-secrets" in out.warnings[0]
    text = json.dumps(out.patch)
    assert key not in text and key not in json.dumps(out.warnings)
    # The tokens are made inside the pod by `argoexec agent init`: no token, no Secret
    # data, no token-looking env var reaches the pod spec.
    for op in out.patch:
        for var in op["value"].get("env", []) if isinstance(op["value"], dict) else []:
            assert "TOKEN" not in var["name"].upper() or "valueFrom" in var
    assert "service-account-token" not in text  # no automount plugin in this registry


# --------------------------------------------------------------------------- automount


def test_automount_plugin_gets_its_service_account_secret_as_argo_mounts_it(
    run: Run, plugin_corpus: Path
) -> None:
    hello = load_plugin(plugin_corpus / "_argo" / "hello-executor-plugin-configmap.yaml")
    massive = load_plugin(plugin_corpus / "_argo" / "massive-executor-plugin-configmap.yaml")
    assert hello.automount_service_account_token and not massive.automount_service_account_token
    pod = agent_pod()
    out = run(pod, [hello, massive])
    assert out.injected == ("hello-executor-plugin", "massive-executor-plugin")
    patched = apply(pod, out)
    volume_name = token_volume_name("hello-executor-plugin")
    assert volume_name.startswith("kube-api-access-") and len(volume_name) == 21
    volumes = patched["spec"]["volumes"]
    assert volumes[:2] == pod["spec"]["volumes"]
    assert volumes[2:] == [
        # Argo's rule 3 (spec 4.6): the Secret the e2e manifests create.
        {
            "name": volume_name,
            "secret": {"secretName": "hello-executor-plugin.service-account-token"},
        }
    ]
    containers = patched["spec"]["containers"]
    hello_mounts = by_name(containers, "hello-executor-plugin")["volumeMounts"]
    assert hello_mounts == [
        argo_mount("hello-executor-plugin"),
        {"name": volume_name, "mountPath": SA_PATH, "readOnly": True},
    ]
    # Only that sidecar sees it (spec e2e: hello 2 mounts, main 2 + its own).
    assert by_name(containers, "massive-executor-plugin")["volumeMounts"] == [
        argo_mount("massive-executor-plugin")
    ]
    assert (
        by_name(containers, "main")["volumeMounts"] == pod["spec"]["containers"][0]["volumeMounts"]
    )
    assert patched["spec"]["automountServiceAccountToken"] is False


# --------------------------------------------------------------------------- policies


def test_patched_pod_passes_pss_restricted_and_sidecars_pass_plugin_policies(
    run: Run, registry: list[ExecutorPlugin], policy_set: Any, plugin_corpus: Path
) -> None:
    extra = [
        plugin_from_container(minimal_container("bare", 5001)),
        load_plugin(plugin_corpus / "_argo" / "massive-executor-plugin-configmap.yaml"),
    ]
    pod = agent_pod()

    def pss(obj: dict[str, Any]) -> list[Any]:
        verdict = policy_set.evaluate(obj, EvaluationContext(namespace=NAMESPACE))
        return [v for v in verdict.violations if v.policy == "pod-security-restricted"]

    assert pss(pod) == []
    out = run(pod, [*registry, *extra])
    assert len(out.injected) == 5
    patched = apply(pod, out)
    assert pss(patched) == []
    # No Enforce violation of any kind on the patched pod.
    verdict = policy_set.evaluate(patched, EvaluationContext(namespace=NAMESPACE))
    assert [v for v in verdict.violations if v.action is Action.ENFORCE] == []
    # Every injected sidecar, as a plugin, passes the plugin policies.
    plugins = {p.container_name: p for p in [*registry, *extra]}
    for sidecar in patched["spec"]["containers"][:-1]:
        container = dict(sidecar)
        container["volumeMounts"] = [
            m for m in sidecar["volumeMounts"] if m["name"] != "var-run-argo"
        ]
        if not container["volumeMounts"]:
            del container["volumeMounts"]
        obj = plugin_object(plugins[sidecar["name"]], container)
        found = policy_set.evaluate(obj, EvaluationContext(namespace=NAMESPACE)).violations
        assert [v for v in found if v.action is Action.ENFORCE] == [], sidecar["name"]


def test_the_unpatched_bare_plugin_would_fail_pss(run: Run, policy_set: Any) -> None:
    """The PSS test above can fail: without the defaults the pod breaks restricted."""
    pod = agent_pod()
    out = run(pod, [plugin_from_container(minimal_container("bare", 5001))], policies=None)
    verdict = policy_set.evaluate(apply(pod, out), EvaluationContext(namespace=NAMESPACE))
    assert any(v.policy == "pod-security-restricted" for v in verdict.violations)


# --------------------------------------------------------------------------- odd pods


def test_env_vars_missing_are_added(run: Run) -> None:
    pod = agent_pod()
    for container in (pod["spec"]["initContainers"][0], pod["spec"]["containers"][0]):
        container["env"] = [v for v in container["env"] if not v["name"].startswith("ARGO_PLUGIN")]
    del pod["spec"]["initContainers"][0]["env"]
    plugin = plugin_from_container(minimal_container("p", 5001))
    patched = apply(pod, run(pod, [plugin]))
    for container in (patched["spec"]["initContainers"][0], patched["spec"]["containers"][-1]):
        assert env_value(container, "ARGO_PLUGIN_ADDRESSES") == ["http://localhost:5001"]
        assert env_value(container, "ARGO_PLUGIN_NAMES") == ["p"]


def test_pod_without_annotations(run: Run, registry: list[ExecutorPlugin]) -> None:
    pod = agent_pod()
    del pod["metadata"]["annotations"]
    patched = apply(pod, run(pod, registry))
    assert patched["metadata"]["annotations"][STATUS_ANNOTATION] == "injected"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda pod: pod["spec"]["initContainers"].clear(), "no 'init' init container"),
        (lambda pod: pod["spec"]["containers"][0].update(name="agent"), "no 'main' container"),
        (lambda pod: pod["spec"]["volumes"].pop(0), "no var-run-argo volume"),
        (
            lambda pod: pod["spec"]["containers"][0]["env"][3].update(
                value=None, valueFrom={"configMapKeyRef": {"name": "x", "key": "y"}}
            ),
            "uses valueFrom",
        ),
        (
            lambda pod: pod["spec"]["initContainers"][0]["env"][4].update(value="{"),
            "is not JSON",
        ),
        (
            lambda pod: pod["spec"]["initContainers"][0]["env"][4].update(value='{"a": 1}'),
            "is not a list",
        ),
    ],
)
def test_agent_pods_we_cannot_extend_are_left_alone_with_a_warning(
    run: Run, registry: list[ExecutorPlugin], change: Any, reason: str
) -> None:
    pod = agent_pod()
    change(pod)
    out = run(pod, registry)
    assert out.result is Result.UNSUPPORTED
    assert out.patch == ()
    (warning,) = out.warnings
    assert reason in warning


def test_bench_agent_pod_shape(run: Run, registry: list[ExecutorPlugin]) -> None:
    """The benchmark's agent pod: hello and slack attached, main first, no init container."""
    review = json.loads(BENCH_AGENT.read_text())
    pod = review["request"]["object"]
    assert run(pod, registry).result is Result.NOT_AGENT  # no component label
    pod["metadata"]["labels"].update(
        {"workflows.argoproj.io/component": "agent", INJECT_LABEL: "true"}
    )
    out = run(pod, registry)
    assert out.result is Result.UNSUPPORTED and "init" in out.warnings[0]
    init = copy.deepcopy(pod["spec"]["containers"][0])
    init.update(name="init", args=["agent", "init"])
    pod["spec"]["initContainers"] = [init]
    out = run(pod, registry)
    assert out.injected == ("python-executor-plugin",)  # hello and slack are there
    patched = apply(pod, out)
    assert [c["name"] for c in patched["spec"]["containers"]] == [
        "python-executor-plugin",
        "main",
        "hello-executor-plugin",
        "slack-executor-plugin",
    ]
    assert env_value(patched["spec"]["containers"][1], "ARGO_PLUGIN_ADDRESSES") == [
        "http://localhost:4355",
        "http://localhost:7522",
        "http://localhost:7984",
    ]
    assert run(patched, registry) == Injection(Result.ALREADY)


def test_a_registry_entry_that_is_not_a_plugin_is_ignored(run: Run) -> None:
    plugin = plugin_from_container(minimal_container("p", 5001))
    out = run(agent_pod(), [{"metadata": {"name": "x"}}, plugin])
    assert out.injected == ("p",)


def test_inject_is_pure_with_no_policies() -> None:
    plugin = plugin_from_container(minimal_container("p", 5001))
    out = inject(agent_pod(), [plugin], namespace=NAMESPACE)
    assert out.result is Result.INJECTED
