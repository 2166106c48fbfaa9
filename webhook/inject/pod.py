"""Attach registry plugins to an Argo agent pod, exactly as Argo's controller does.

`inject(pod, plugins, policies=..., namespace=...)` is pure: it reads its arguments and
returns an `Injection` (JSON Patch operations, warnings, what was injected or skipped).
References are to `shared/research/argo-plugins-spec.md`, section 4:

- only agent pods (label `workflows.argoproj.io/component: agent`) that opted in with
  the label `argo-plugin-guard/inject: "true"` (set by a workflow through
  `spec.podMetadata.labels`, or for every workflow through the controller's
  `workflowDefaults`); a pod already carrying `argo-plugin-guard/inject-status:
  injected` is left alone, so a second call changes nothing;
- every registry plugin whose namespace is the pod's (or that has none) becomes a
  sidecar inserted before `main` (4.3), with the hardened defaults of the policy files
  (`hardening`), the `var-run-argo` volume mounted read-only at /var/run/argo with
  `subPath: <container name>` (4.5), and its address and container name appended to
  `ARGO_PLUGIN_ADDRESSES` / `ARGO_PLUGIN_NAMES` of the `init` and `main` containers
  (4.4). Argo's own `argoexec agent init` then writes the token file inside the pod and
  `agent main` sends it: no token is ever in the pod spec or in the patch;
- a plugin with `automountServiceAccountToken: true` gets the token Secret of its
  service account `<name>-executor-plugin` mounted read-only at
  /var/run/secrets/kubernetes.io/serviceaccount (4.6). The webhook cannot read the
  ServiceAccount, so the Secret is named by Argo's rule 3,
  `<name>-executor-plugin.service-account-token` (the Kubernetes >= 1.24 convention,
  and what Argo's e2e manifests create);
- plugins already in the pod (same container name) are kept as they are; a plugin
  whose port is already used in the pod, that Argo would refuse, or that still breaks
  an Enforce policy after the defaults is skipped with a warning. Injection problems
  never deny a pod: the validating webhook is where denials happen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from webhook.executor_plugin import ExecutorPlugin, argo_validate
from webhook.inject.hardening import SidecarPolicies, harden

INJECT_LABEL = "argo-plugin-guard/inject"
STATUS_ANNOTATION = "argo-plugin-guard/inject-status"
PLUGINS_ANNOTATION = "argo-plugin-guard/injected-plugins"
STATUS_INJECTED = "injected"
COMPONENT_LABEL = "workflows.argoproj.io/component"
AGENT_COMPONENT = "agent"

INIT_CONTAINER = "init"
MAIN_CONTAINER = "main"
VAR_RUN_ARGO = "var-run-argo"
VAR_RUN_ARGO_PATH = "/var/run/argo"
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ADDRESSES_ENV = "ARGO_PLUGIN_ADDRESSES"
NAMES_ENV = "ARGO_PLUGIN_NAMES"
TOKEN_SECRET_SUFFIX = ".service-account-token"
# Argo names token volumes `kube-api-access-<5 random chars>`; ours are derived from the
# container name instead (a random name would make every call's patch different).
TOKEN_VOLUME_PREFIX = "kube-api-access-"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.String's alphabet


class Result(StrEnum):
    """What injection did with one pod (the `result` label of the metric)."""

    INJECTED = "injected"
    NOTHING = "nothing-to-inject"  # opted in, but every plugin is present or skipped
    ALREADY = "already-injected"
    NOT_OPTED_IN = "not-opted-in"
    NOT_AGENT = "not-agent"
    UNSUPPORTED = "unsupported-pod"  # an agent pod we cannot extend safely
    ERROR = "error"  # injection raised: the pod is admitted unchanged


@dataclass(frozen=True, slots=True)
class Injection:
    result: Result
    patch: tuple[dict[str, Any], ...] = ()
    injected: tuple[str, ...] = ()  # container names, in the order they were added
    skipped: tuple[str, ...] = ()  # plugins skipped with a warning
    warnings: tuple[str, ...] = ()

    @property
    def agent_pod(self) -> bool:
        return self.result is not Result.NOT_AGENT


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer from raw parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def token_volume_name(container_name: str) -> str:
    digest = hashlib.sha256(container_name.encode()).digest()
    return TOKEN_VOLUME_PREFIX + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:5])


def token_secret_name(plugin: ExecutorPlugin) -> str:
    return plugin.service_account_name + TOKEN_SECRET_SUFFIX


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _find(containers: list[Any], name: str) -> int | None:
    for index, container in enumerate(containers):
        if isinstance(container, dict) and container.get("name") == name:
            return index
    return None


def _ports(container: Mapping[str, Any]) -> list[int]:
    out = []
    for port in _list(container.get("ports")):
        value = _dict(port).get("containerPort")
        if isinstance(value, int) and not isinstance(value, bool):
            out.append(value)
    return out


class _Unsupported(Exception):
    """The pod is an opted-in agent pod, but not one we can extend safely."""


@dataclass(slots=True)
class _EnvList:
    """One `ARGO_PLUGIN_*` variable of one container: where it is and its list."""

    base: str  # pointer of the container
    index: int | None  # index in env, or None when absent
    has_env: bool
    values: list[str]
    added: list[str] = field(default_factory=list)


def _read_env(container: Mapping[str, Any], base: str, name: str) -> _EnvList:
    env = container.get("env")
    if env is not None and not isinstance(env, list):
        raise _Unsupported(f"{base}: env is not a list")
    for index, var in enumerate(env or []):
        if not isinstance(var, dict) or var.get("name") != name:
            continue
        if var.get("valueFrom") is not None:
            raise _Unsupported(f"{name} of the {container.get('name')} container uses valueFrom")
        text = var.get("value")
        try:
            values = json.loads(text) if isinstance(text, str) and text else None
        except ValueError:
            raise _Unsupported(
                f"{name} of the {container.get('name')} container is not JSON"
            ) from None
        if values is None:  # Argo writes `null` when there are no plugins
            values = []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _Unsupported(f"{name} of the {container.get('name')} container is not a list")
        return _EnvList(base, index, True, values)
    return _EnvList(base, None, env is not None, [])


def _env_ops(entry: _EnvList, name: str, ops: list[dict[str, Any]], created: set[str]) -> None:
    """The op that sets one variable; `created` holds the containers whose env list an
    earlier op created (the second variable is then appended to it)."""
    if not entry.added:
        return
    value = json.dumps(entry.values + entry.added, separators=(",", ":"))
    if not entry.has_env and entry.base not in created:
        ops.append(
            {"op": "add", "path": entry.base + "/env", "value": [{"name": name, "value": value}]}
        )
        created.add(entry.base)
    elif entry.index is None:
        ops.append(
            {"op": "add", "path": entry.base + "/env/-", "value": {"name": name, "value": value}}
        )
    else:
        ops.append({"op": "add", "path": f"{entry.base}/env/{entry.index}/value", "value": value})


def _applies_to(plugin: ExecutorPlugin, namespace: str) -> bool:
    return not plugin.namespace or plugin.namespace == namespace


def _label(plugin: ExecutorPlugin) -> str:
    name = plugin.resource_name or plugin.name or "?"
    return f"{plugin.namespace}/{name}" if plugin.namespace else name


def _warning(text: str) -> str:
    text = f"[inject] {text}"
    return text if len(text) <= 200 else text[:199] + "…"


def inject(
    pod: Mapping[str, Any],
    plugins: Sequence[Any],
    *,
    policies: SidecarPolicies | None = None,
    namespace: str = "",
) -> Injection:
    """The JSON Patch that attaches `plugins` to an opted-in agent `pod` (see module doc).

    `namespace` is the request's namespace (a pod created with generateName may not
    carry one in its metadata yet); `policies` is the loaded PolicySet (None: no
    defaults and no policy check).
    """
    metadata = _dict(pod.get("metadata"))
    labels = _dict(metadata.get("labels"))
    if labels.get(COMPONENT_LABEL) != AGENT_COMPONENT:
        return Injection(Result.NOT_AGENT)
    if labels.get(INJECT_LABEL) != "true":
        return Injection(Result.NOT_OPTED_IN)
    annotations = metadata.get("annotations")
    if _dict(annotations).get(STATUS_ANNOTATION) == STATUS_INJECTED:
        return Injection(Result.ALREADY)
    namespace = metadata.get("namespace") or namespace or ""
    try:
        return _inject(pod, annotations, plugins, policies, namespace)
    except _Unsupported as exc:
        return Injection(
            Result.UNSUPPORTED,
            warnings=(_warning(f"plugins not injected: {exc}"),),
        )


@dataclass(slots=True)
class _AgentPod:
    """The parts of an Argo agent pod that injection reads and extends."""

    containers: list[Any]
    main_index: int
    volume_names: set[Any]
    # The four ARGO_PLUGIN_* lists: (container, variable) -> where it is and its values.
    plugin_env: dict[tuple[str, str], _EnvList]
    # Every container name and port of the pod (all containers share one network), and
    # who holds it: "pod" for the pod's own containers, else the injected plugin's label.
    taken_names: dict[str, str]
    taken_ports: dict[int, str]


def _read_agent_pod(pod: Mapping[str, Any]) -> _AgentPod:
    """The agent pod's containers, env lists, names and ports; _Unsupported when the pod
    is not one we can extend safely."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        raise _Unsupported("the pod has no spec")
    containers = spec.get("containers")
    if not isinstance(containers, list):
        raise _Unsupported("spec.containers is not a list")
    init_containers = _list(spec.get("initContainers"))
    init_index = _find(init_containers, INIT_CONTAINER)
    main_index = _find(containers, MAIN_CONTAINER)
    if main_index is None:
        raise _Unsupported("no 'main' container: not an Argo agent pod")
    if init_index is None:
        # Argo before v3.3.1 had no init container and so no plugin tokens.
        raise _Unsupported("no 'init' init container (Argo >= v3.3.1 creates plugin tokens)")
    volumes = spec.get("volumes")
    if volumes is not None and not isinstance(volumes, list):
        raise _Unsupported("spec.volumes is not a list")
    volume_names = {v.get("name") for v in volumes or [] if isinstance(v, dict)}
    if VAR_RUN_ARGO not in volume_names:
        raise _Unsupported(f"no {VAR_RUN_ARGO} volume: Argo's token files cannot be shared")

    init = init_containers[init_index]
    main = containers[main_index]
    init_base = pointer("spec", "initContainers", init_index)
    main_base = pointer("spec", "containers", main_index)
    plugin_env = {
        (INIT_CONTAINER, ADDRESSES_ENV): _read_env(init, init_base, ADDRESSES_ENV),
        (INIT_CONTAINER, NAMES_ENV): _read_env(init, init_base, NAMES_ENV),
        (MAIN_CONTAINER, ADDRESSES_ENV): _read_env(main, main_base, ADDRESSES_ENV),
        (MAIN_CONTAINER, NAMES_ENV): _read_env(main, main_base, NAMES_ENV),
    }
    taken_names: dict[str, str] = {}
    taken_ports: dict[int, str] = {}
    for is_init, group in ((False, containers), (True, init_containers)):
        for container in group:
            if not isinstance(container, dict):
                continue
            name = container.get("name")
            if isinstance(name, str):
                taken_names[name] = "pod"
            # Init containers have exited before the plugins start, native sidecars not.
            if not is_init or container.get("restartPolicy") == "Always":
                for used in _ports(container):
                    taken_ports.setdefault(used, str(name))
    return _AgentPod(containers, main_index, volume_names, plugin_env, taken_names, taken_ports)


def _already_attached(plugin: ExecutorPlugin, agent: _AgentPod) -> bool:
    """Attached by Argo's controller, or by us earlier."""
    name = plugin.container_name
    return bool(name) and agent.taken_names.get(name) == "pod"


def _why_not_injectable(plugin: ExecutorPlugin, agent: _AgentPod) -> str | None:
    """Why the plugin's sidecar cannot join this pod (None: it can, policies aside)."""
    if plugin.container is None or plugin.problems:
        return "its container does not parse as Argo requires (plugin-guard check)"
    invalid = argo_validate(plugin.container)
    if invalid:
        return f"sidecar is invalid: {invalid}"
    name = plugin.container_name
    if not name:
        return "its container has no name"
    if name in agent.taken_names:
        return f"container name {name} is already used by plugin {agent.taken_names[name]}"
    if plugin.port is None:
        return "ports[0].containerPort is not a number"
    clash = next((p for p in _ports(plugin.container) if p in agent.taken_ports), None)
    if clash is not None:
        return f"port {clash} is already used by container {agent.taken_ports[clash]}"
    own_mount = _reserved_mount(plugin)
    if own_mount is not None:
        return f"it mounts {own_mount} itself, where the agent pod mounts its own volume"
    token_volume = token_volume_name(name)
    if plugin.automount_service_account_token and token_volume in agent.volume_names:
        return f"volume {token_volume} already exists in the pod"
    return None


def _reserved_mount(plugin: ExecutorPlugin) -> str | None:
    """A mount path of the plugin's own where the agent pod mounts a volume of its own."""
    reserved = {VAR_RUN_ARGO_PATH}
    if plugin.automount_service_account_token:
        reserved.add(SERVICE_ACCOUNT_PATH)
    for mount in _list(_dict(plugin.container).get("volumeMounts")):
        if isinstance(mount, dict) and (
            mount.get("name") == VAR_RUN_ARGO
            or str(mount.get("mountPath", "")).rstrip("/") in reserved
        ):
            return str(mount.get("mountPath"))
    return None


def _sidecar(
    plugin: ExecutorPlugin, container: dict[str, Any], new_volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The hardened container with Argo's mounts: its token file from `var-run-argo`
    (subPath = its name), and the service account token when it asks for one."""
    name = container["name"]
    container["volumeMounts"] = [
        *_list(_dict(plugin.container).get("volumeMounts")),
        {"name": VAR_RUN_ARGO, "mountPath": VAR_RUN_ARGO_PATH, "readOnly": True, "subPath": name},
    ]
    if plugin.automount_service_account_token:
        token_volume = token_volume_name(name)
        container["volumeMounts"].append(
            {"name": token_volume, "mountPath": SERVICE_ACCOUNT_PATH, "readOnly": True}
        )
        new_volumes.append(
            {"name": token_volume, "secret": {"secretName": token_secret_name(plugin)}}
        )
    return container


def _inject(
    pod: Mapping[str, Any],
    annotations: Any,
    plugins: Sequence[Any],
    policies: SidecarPolicies | None,
    namespace: str,
) -> Injection:
    agent = _read_agent_pod(pod)
    warnings: list[str] = []
    skipped: list[str] = []
    sidecars: list[dict[str, Any]] = []
    new_volumes: list[dict[str, Any]] = []

    def skip(plugin: ExecutorPlugin, why: str) -> None:
        skipped.append(_label(plugin))
        warnings.append(_warning(f"plugin {_label(plugin)} not injected: {why}"))

    for plugin in plugins:
        if not isinstance(plugin, ExecutorPlugin) or not _applies_to(plugin, namespace):
            continue
        if _already_attached(plugin, agent):
            continue
        why_not = _why_not_injectable(plugin, agent)
        if why_not is not None:
            skip(plugin, why_not)
            continue
        hardened = harden(plugin, policies, namespace or None)
        if hardened.denied_by:
            skip(plugin, "denied by policy " + ", ".join(hardened.denied_by))
            continue
        sidecar = _sidecar(plugin, hardened.container, new_volumes)
        _take(agent, plugin, sidecar["name"])
        sidecars.append(sidecar)

    if not sidecars:
        return Injection(Result.NOTHING, skipped=tuple(skipped), warnings=tuple(warnings))
    injected = tuple(c["name"] for c in sidecars)
    return Injection(
        Result.INJECTED,
        patch=tuple(_patch(agent, annotations, sidecars, new_volumes)),
        injected=injected,
        skipped=tuple(skipped),
        warnings=tuple(warnings),
    )


def _take(agent: _AgentPod, plugin: ExecutorPlugin, name: str) -> None:
    """The sidecar's name and ports are now used, and Argo's plugin lists name it."""
    if plugin.automount_service_account_token:
        agent.volume_names.add(token_volume_name(name))
    agent.taken_names[name] = _label(plugin)
    for port in _ports(_dict(plugin.container)):
        agent.taken_ports.setdefault(port, name)
    address = f"http://localhost:{plugin.port}"
    for (_, variable), entry in agent.plugin_env.items():
        entry.added.append(address if variable == ADDRESSES_ENV else name)


def _patch(
    agent: _AgentPod,
    annotations: Any,
    sidecars: list[dict[str, Any]],
    new_volumes: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The JSON Patch: status annotations, token volumes, the ARGO_PLUGIN_* lists, and
    the sidecars before `main`."""
    ops: list[dict[str, Any]] = []
    status = {
        STATUS_ANNOTATION: STATUS_INJECTED,
        PLUGINS_ANNOTATION: ",".join(c["name"] for c in sidecars),
    }
    if not isinstance(annotations, dict):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": status})
    else:
        for key, value in status.items():
            ops.append(
                {"op": "add", "path": pointer("metadata", "annotations", key), "value": value}
            )
    for volume in new_volumes:
        ops.append({"op": "add", "path": "/spec/volumes/-", "value": volume})
    created: set[str] = set()
    for (_, variable), entry in agent.plugin_env.items():
        _env_ops(entry, variable, ops, created)
    # Last: inserting before `main` shifts its index (the env ops above use the old one).
    for offset, container in enumerate(sidecars):
        ops.append(
            {
                "op": "add",
                "path": pointer("spec", "containers", agent.main_index + offset),
                "value": container,
            }
        )
    return ops
