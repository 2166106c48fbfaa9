"""The ExecutorPlugin model, in both of its forms, converted exactly as Argo does.

Argo reads an executor plugin from `plugin.yaml` (`kind: ExecutorPlugin`, the input of
`argo executor-plugin build`) and from the ConfigMap that command writes (labelled
`workflows.argoproj.io/configmap-type: ExecutorPlugin`, container as a YAML *string* in
`data["sidecar.container"]`). Spec references are to
`shared/research/argo-plugins-spec.md`: section 1 (types, validation) and 2 (build,
ToConfigMap / FromConfigMap).

Two ways in:
- `read_plugin(obj)` is lenient: it never raises, and records every problem
  (unparseable container, unknown fields) for the policies to report with paths.
- `from_configmap`, `from_manifest` and `to_configmap` behave like Argo's Go functions,
  raising `PluginError` with Argo's exact messages.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from webhook.errors import ManifestError, PluginError
from webhook.kube.models import ModelError, as_go_strings, strict_errors
from webhook.manifests import parse_yaml
from webhook.paths import join_path

CONFIGMAP_TYPE_LABEL = "workflows.argoproj.io/configmap-type"
EXECUTOR_PLUGIN_KIND = "ExecutorPlugin"
CONTAINER_KEY = "sidecar.container"
AUTOMOUNT_KEY = "sidecar.automountServiceAccountToken"
NAME_SUFFIX = "-executor-plugin"
DESCRIPTION_ANNOTATION = "workflows.argoproj.io/description"
VERSION_ANNOTATION = "workflows.argoproj.io/version"
GENERATED_HEADER = "# This is an auto-generated file. DO NOT EDIT"

# The three forms a plugin is written in (where its container sits differs).
FORM_CONFIGMAP = "ConfigMap"
FORM_MANIFEST = "ExecutorPlugin"  # plugin.yaml
FORM_WORKFLOW = "Workflow"  # spec.executorPlugins[i] of a Workflow (Argo v4.1+)

# plugin.yaml is parsed strictly too: these are the only keys (spec section 1.1).
_MANIFEST_TOP_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec"})
_MANIFEST_SPEC_KEYS = frozenset({"sidecar"})
_SIDECAR_KEYS = frozenset({"container", "automountServiceAccountToken"})


@dataclass(slots=True)
class ExecutorPlugin:
    """An executor plugin as Argo's controller sees it (`spec.Plugin`).

    `container` is None when it is missing or could not be parsed; `problems` then
    says why, each with the path inside the submitted object.
    """

    name: str
    kind: str
    container: dict[str, Any] | None
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    automount_service_account_token: bool = False
    form: str = FORM_MANIFEST
    resource_name: str = ""  # the ConfigMap's own name (or plugin.yaml's metadata.name)
    container_path: str = "spec.sidecar.container"  # where the container sits in the object
    base_path: str = ""  # where the plugin itself sits (spec.executorPlugins[i] in a Workflow)
    problems: list[ModelError] = field(default_factory=list)

    @property
    def port(self) -> int | None:
        """The plugin's address port: only `ports[0].containerPort` is used (spec 1.2)."""
        if not self.container:
            return None
        ports = self.container.get("ports")
        if isinstance(ports, list) and ports and isinstance(ports[0], dict):
            port = ports[0].get("containerPort")
            if isinstance(port, int) and not isinstance(port, bool):
                return port
        return None

    @property
    def container_name(self) -> str:
        name = (self.container or {}).get("name")
        return name if isinstance(name, str) else ""

    @property
    def service_account_name(self) -> str:
        """The service account Argo mounts when automount is on (spec 4.6)."""
        return f"{self.name}{NAME_SUFFIX}"


# --------------------------------------------------------------------------- reading


def is_plugin_configmap(obj: Mapping[str, Any]) -> bool:
    """A ConfigMap meant as an executor plugin: the type label is present (with any
    value: a wrong value is something to report, not a reason to look away) or it has
    a `sidecar.container` key."""
    if obj.get("kind") != "ConfigMap":
        return False
    labels = _metadata(obj).get("labels")
    if isinstance(labels, dict) and CONFIGMAP_TYPE_LABEL in labels:
        value = labels.get(CONFIGMAP_TYPE_LABEL)
        # Memoization caches and parameter ConfigMaps share the label (spec 3.2).
        if not isinstance(value, str) or value.replace("-", "").lower() in {
            "executorplugin",
            "executorplugins",
            "plugin",
        }:
            return True
    data = obj.get("data")
    return isinstance(data, dict) and CONTAINER_KEY in data


def read_plugin(obj: Mapping[str, Any]) -> ExecutorPlugin | None:
    """The plugin carried by a ConfigMap or plugin.yaml document, or None if it is neither."""
    if obj.get("kind") == EXECUTOR_PLUGIN_KIND or _looks_like_manifest(obj):
        return _read_manifest(obj)
    if is_plugin_configmap(obj):
        return _read_configmap(obj)
    return None


def workflow_level_plugins(obj: Mapping[str, Any]) -> list[ExecutorPlugin]:
    """`spec.executorPlugins` of Workflows and templates (Argo v4.1+, spec 3.5)."""
    spec = obj.get("spec")
    base = "spec"
    if obj.get("kind") == "CronWorkflow" and isinstance(spec, dict):
        spec, base = spec.get("workflowSpec"), "spec.workflowSpec"
    if not isinstance(spec, dict) or not isinstance(spec.get("executorPlugins"), list):
        return []
    plugins = []
    for index, entry in enumerate(spec["executorPlugins"]):
        path = join_path(base, "executorPlugins", index)
        plugin = _read_manifest(entry if isinstance(entry, dict) else {}, base_path=path)
        plugin.form = FORM_WORKFLOW
        plugin.base_path = path
        plugin.kind = EXECUTOR_PLUGIN_KIND
        plugin.namespace = plugin.namespace or _str(_metadata(obj).get("namespace")) or None
        plugins.append(plugin)
    return plugins


def _looks_like_manifest(obj: Mapping[str, Any]) -> bool:
    spec = obj.get("spec")
    return (
        _str(obj.get("kind")) not in {"ConfigMap", "Workflow", "WorkflowTemplate"}
        and isinstance(spec, dict)
        and isinstance(spec.get("sidecar"), dict)
    )


def _read_configmap(obj: Mapping[str, Any]) -> ExecutorPlugin:
    metadata = _metadata(obj)
    resource_name = _str(metadata.get("name"))
    labels = {str(k): _str(v) for k, v in (_dict(metadata.get("labels"))).items()}
    kind = labels.pop(CONFIGMAP_TYPE_LABEL, "")
    data = _dict(obj.get("data"))
    container_path = join_path("data", CONTAINER_KEY)
    plugin = ExecutorPlugin(
        name=resource_name.removesuffix(NAME_SUFFIX),
        kind=kind,
        container=None,
        namespace=_str(metadata.get("namespace")) or None,
        labels=labels,
        annotations={str(k): _str(v) for k, v in _dict(metadata.get("annotations")).items()},
        automount_service_account_token=data.get(AUTOMOUNT_KEY) == "true",
        form=FORM_CONFIGMAP,
        resource_name=resource_name,
        container_path=container_path,
    )
    raw = data.get(CONTAINER_KEY)
    if raw is None:
        plugin.problems.append(
            ModelError(container_path, f"the ConfigMap has no data[{CONTAINER_KEY}]")
        )
    elif not isinstance(raw, str):
        plugin.problems.append(
            ModelError(container_path, f"{CONTAINER_KEY} must be a string holding YAML")
        )
    else:
        container, problems = parse_container(raw, container_path)
        plugin.container = container
        plugin.problems.extend(problems)
    return plugin


def _read_manifest(obj: Mapping[str, Any], base_path: str = "") -> ExecutorPlugin:
    metadata = _metadata(obj)
    name = _str(metadata.get("name"))
    problems: list[ModelError] = []
    if not base_path:  # a Workflow's spec.executorPlugins[i] is checked by Argo's CRD
        problems.extend(
            _unknown_keys(
                obj,
                _MANIFEST_TOP_KEYS,
                "",
                "an ExecutorPlugin has only apiVersion, kind, metadata and spec",
            )
        )
    spec = obj.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    spec_path = join_path(base_path, "spec")
    problems.extend(_unknown_keys(spec, _MANIFEST_SPEC_KEYS, spec_path, "spec has only 'sidecar'"))
    sidecar = spec.get("sidecar")
    sidecar = sidecar if isinstance(sidecar, dict) else {}
    sidecar_path = join_path(spec_path, "sidecar")
    problems.extend(
        _unknown_keys(
            sidecar,
            _SIDECAR_KEYS,
            sidecar_path,
            "sidecar has only 'container' and 'automountServiceAccountToken'",
        )
    )
    container_path = join_path(sidecar_path, "container")
    container = sidecar.get("container")
    if container is None:
        problems.append(ModelError(container_path, "the plugin has no sidecar container"))
    elif not isinstance(container, dict):
        problems.append(ModelError(container_path, "must be a mapping (a Kubernetes container)"))
        container = None
    else:
        problems.extend(strict_errors(container, path=container_path))
    automount = sidecar.get("automountServiceAccountToken", False)
    return ExecutorPlugin(
        name=name,
        kind=_str(obj.get("kind")),
        container=container,
        namespace=_str(metadata.get("namespace")) or None,
        labels={str(k): _str(v) for k, v in _dict(metadata.get("labels")).items()},
        annotations={str(k): _str(v) for k, v in _dict(metadata.get("annotations")).items()},
        automount_service_account_token=automount is True,
        form=FORM_MANIFEST,
        resource_name=name,
        container_path=container_path,
        problems=problems,
    )


def _unknown_keys(
    mapping: Mapping[Any, Any], known: frozenset[str], path: str, explanation: str
) -> list[ModelError]:
    """UnmarshalStrict: every key outside `known` is an error."""
    return [
        ModelError(join_path(path, str(key)), f"unknown field {key!r}: {explanation}")
        for key in mapping
        if key not in known
    ]


def parse_container(raw: str, path: str) -> tuple[dict[str, Any] | None, list[ModelError]]:
    """Parse `data["sidecar.container"]` as Argo does (UnmarshalStrict), with problems
    reported at paths under `path`. Cached: the same plugin is applied again and again
    (GitOps syncs, API-server retries), and parsing is the costliest step."""
    container, problems = _parse_container_cached(raw)
    if path == join_path("data", CONTAINER_KEY):
        return container, list(problems)
    # Re-root the cached problems (cached with the ConfigMap path).
    root = join_path("data", CONTAINER_KEY)
    return container, [ModelError(path + p.path[len(root) :], p.message) for p in problems]


@lru_cache(maxsize=512)
def _parse_container_cached(raw: str) -> tuple[dict[str, Any] | None, tuple[ModelError, ...]]:
    path = join_path("data", CONTAINER_KEY)
    try:
        value = parse_yaml(raw)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1} of the container YAML)" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        return None, (
            ModelError(
                path,
                f"{CONTAINER_KEY} is not valid YAML: {problem}{where}; Argo would refuse this plugin",
            ),
        )
    except yaml.YAMLError as exc:
        return None, (
            ModelError(
                path, f"{CONTAINER_KEY} is not valid YAML: {exc}; Argo would refuse this plugin"
            ),
        )
    if value is None:
        return {}, ()
    if not isinstance(value, dict):
        return None, (
            ModelError(
                path,
                f"{CONTAINER_KEY} must be a YAML mapping (a Kubernetes container); Argo would refuse this plugin",
            ),
        )
    # The cached dict is shared between requests: callers treat it as read-only.
    return value, tuple(strict_errors(value, path=path))


# --------------------------------------------------------------------------- Argo's checks


def argo_validate(container: Mapping[str, Any] | None) -> str | None:
    """Argo's `Sidecar.Validate()`: the first failing nil check's message, or None.

    Only nil is tested: `requests: {}` and `securityContext: {}` pass (spec 1.2).
    """
    container = container or {}
    ports = container.get("ports")
    if not isinstance(ports, list) or len(ports) < 1:
        return "at least one port is mandatory"
    resources = container.get("resources")
    resources = resources if isinstance(resources, dict) else {}
    if resources.get("requests") is None:
        return "resources requests are mandatory"
    if resources.get("limits") is None:
        return "resources limits are mandatory"
    if container.get("securityContext") is None:
        return "security context is mandatory"
    return None


def from_configmap(cm: Mapping[str, Any]) -> ExecutorPlugin:
    """Argo's `FromConfigMap` (spec 2): strict parse, then `Validate()`."""
    plugin = _read_configmap(cm)
    if plugin.problems:
        raise PluginError(plugin.problems[0].message)
    _raise_if_invalid(plugin.container)
    return plugin


def from_manifest(obj: Mapping[str, Any]) -> ExecutorPlugin:
    """Parse plugin.yaml strictly (spec 1.1) and validate it."""
    plugin = _read_manifest(obj)
    problems = [p for p in plugin.problems if "has no sidecar container" not in p.message]
    if problems:
        raise PluginError(f"{problems[0].path}: {problems[0].message}")
    _raise_if_invalid(plugin.container)
    return plugin


def _raise_if_invalid(container: Mapping[str, Any] | None) -> None:
    message = argo_validate(container)
    if message:
        raise PluginError(f"sidecar is invalid: {message}")


def to_configmap(plugin: ExecutorPlugin) -> dict[str, Any]:
    """Argo's `ToConfigMap` (spec 2, step 4): validate, then build the ConfigMap."""
    _raise_if_invalid(plugin.container)
    labels = {CONFIGMAP_TYPE_LABEL: plugin.kind}
    labels.update(plugin.labels)  # user labels are copied after, so they win (as in Argo)
    metadata: dict[str, Any] = {"name": f"{plugin.name}{NAME_SUFFIX}", "labels": labels}
    if plugin.namespace:
        metadata["namespace"] = plugin.namespace
    if plugin.annotations:
        metadata["annotations"] = dict(plugin.annotations)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {
            AUTOMOUNT_KEY: "true" if plugin.automount_service_account_token else "false",
            CONTAINER_KEY: container_yaml(plugin.container or {}),
        },
    }


# --------------------------------------------------------------------------- sigs.k8s.io/yaml


def container_yaml(container: Mapping[str, Any]) -> str:
    """A container as Go's `sigs.k8s.io/yaml.Marshal(corev1.Container)` writes it:
    JSON field names, keys sorted, empty fields omitted except `name` (always written)
    and `resources` (a struct, so never omitted: `resources: {}`), numbers in string
    fields written as strings (`"8080"`)."""
    normalised = _omit_empty(as_go_strings(dict(container))) or {}
    normalised.setdefault("name", container.get("name") or "")
    normalised.setdefault("resources", {})
    return go_yaml(normalised)


def _omit_empty(value: Any) -> Any:
    """Go's `omitempty`: drop nulls and empty lists and maps (but keep a present,
    empty `securityContext`, which is a non-nil pointer in Go)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            cleaned = _omit_empty(item)
            if cleaned is None or (cleaned in ({}, []) and key not in _POINTER_FIELDS):
                continue
            out[key] = cleaned
        return out
    if isinstance(value, list):
        return [_omit_empty(item) for item in value]
    return value


# Container fields that are pointers to structs: `{}` is kept, only null is dropped.
_POINTER_FIELDS = frozenset(
    {"securityContext", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"}
)


class _GoStyleDumper(yaml.SafeDumper):
    """PyYAML tuned to write what go-yaml v2 (behind sigs.k8s.io/yaml) writes: a string
    that would read back as another type (`"false"`, `"8080"`) is double-quoted, one
    that merely cannot be plain (`'>= v3.3'`) is single-quoted, and multi-line strings
    are literal blocks."""

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        event = self.event
        reads_as_other_type = isinstance(event, yaml.ScalarEvent) and not event.implicit[0]
        return '"' if style == "'" and reads_as_other_type else style


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoStyleDumper.add_representer(str, _represent_str)


def go_yaml(value: Any) -> str:
    return yaml.dump(
        value,
        Dumper=_GoStyleDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=80,
    )


# --------------------------------------------------------------------------- build


@dataclass(frozen=True, slots=True)
class BuildOutput:
    plugin: ExecutorPlugin
    configmap: dict[str, Any]
    configmap_path: Path
    configmap_text: str
    readme_path: Path
    readme_text: str


def load_plugin_dir(directory: str | os.PathLike[str]) -> ExecutorPlugin:
    """`plugin.yaml` of DIR, with `server.*` substituted into args (spec 2, steps 1-2)."""
    return load_plugin_manifest(directory)[0]


def load_plugin_manifest(
    directory: str | os.PathLike[str],
) -> tuple[ExecutorPlugin, dict[str, Any]]:
    """`load_plugin_dir`, plus plugin.yaml as written but holding the container the
    build will ship (the `server.*` script in args): what policies judge, so that
    paths point at what the author edits."""
    root = Path(directory)
    manifest_path = root / "plugin.yaml"
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(str(manifest_path), "no plugin.yaml in this directory") from None
    except OSError as exc:
        raise ManifestError(str(manifest_path), exc.strerror or str(exc)) from None
    try:
        obj = parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ManifestError(str(manifest_path), f"invalid YAML: {exc.problem}", line) from None
    except yaml.YAMLError as exc:
        raise ManifestError(str(manifest_path), f"invalid YAML: {exc}") from None
    if not isinstance(obj, dict):
        raise ManifestError(str(manifest_path), "not a mapping (an ExecutorPlugin manifest)")
    plugin = _read_manifest(obj)
    servers = sorted(glob.glob(glob.escape(str(root)) + "/server.*"))
    if len(servers) > 1:
        raise PluginError(f"plugin {plugin.name} has more than one server.* file")
    if servers and plugin.container is not None:
        script = Path(servers[0]).read_text(encoding="utf-8")
        plugin.container = {**plugin.container, "args": [script]}
        sidecar = obj["spec"]["sidecar"]  # present: the container was read from it
        sidecar["container"] = plugin.container
    return plugin, obj


def render_build(directory: str | os.PathLike[str], plugin: ExecutorPlugin) -> BuildOutput:
    """The two files `argo executor-plugin build DIR` writes, byte for byte (spec 2)."""
    root = Path(directory)
    configmap = to_configmap(plugin)
    configmap_path = root / f"{plugin.name}{NAME_SUFFIX}-configmap.yaml"
    configmap_text = f"{GENERATED_HEADER}\n{go_yaml(configmap)}"
    readme_text = _readme(plugin)
    return BuildOutput(
        plugin, configmap, configmap_path, configmap_text, root / "README.md", readme_text
    )


def _readme(plugin: ExecutorPlugin) -> str:
    image = (plugin.container or {}).get("image", "")
    return (
        "<!-- This is an auto-generated file. DO NOT EDIT -->\n"
        f"# {plugin.name}\n"
        "\n"
        f"* Needs: {plugin.annotations.get(VERSION_ANNOTATION, '')}\n"
        f"* Image: {image}\n"
        "\n"
        f"{plugin.annotations.get(DESCRIPTION_ANNOTATION, '')}\n"
        "\n"
        "Install:\n"
        "\n"
        f"    kubectl apply -f {plugin.name}{NAME_SUFFIX}-configmap.yaml\n"
        "\n"
        "Uninstall:\n"
        "\t\n"
        f"    kubectl delete cm {plugin.name}{NAME_SUFFIX} \n"
    )


# --------------------------------------------------------------------------- helpers


def _metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
