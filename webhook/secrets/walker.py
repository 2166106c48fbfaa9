"""Walk a Kubernetes or Argo manifest and hand each string to the detector, with its
JSON path and the name it sits under.

Where it looks: annotations (object and pod templates); ConfigMap `data` and text
`binaryData`; every container (`initContainers`, `containers`, `ephemeralContainers`) of
Pods and of workload pod templates: env `value` (with env `name`), `args`/`command`
(with the preceding `--flag` as name), probe and lifecycle `exec` commands and HTTP
headers; Argo templates (container, script `source`, containerSet, init containers,
sidecars, `http` url/headers/body, `plugin` inputs, parameters); the ExecutorPlugin
container (`data["sidecar.container"]` or `spec.sidecar.container`).

Never: `kind: Secret`, `valueFrom`, `envFrom`, `secretKeyRef` (the good path), labels.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from webhook.executor_plugin import CONFIGMAP_TYPE_LABEL, CONTAINER_KEY
from webhook.kinds import ARGO_WORKFLOW_KINDS, POD_CONTAINER_LISTS, POD_TEMPLATE_PATHS
from webhook.paths import join_path
from webhook.secrets.detector import Detector, Hit
from webhook.secrets.limits import Budget

Emit = Callable[[str, str, Hit, str], None]

# Where a string sits: a path, or (where, key-or-index, ...) joined only when a hit needs
# it. Most strings have no hit, and a path string per string (built again at every
# level of a deep tree) cost more than scanning them.
Where = str | tuple[Any, ...]


def path_of(where: Where) -> str:
    """The JSON path a `Where` stands for."""
    groups: list[tuple[Any, ...]] = []
    node: Any = where
    while isinstance(node, tuple):
        groups.append(node[1:])
        node = node[0]
    out: str = node
    for parts in reversed(groups):
        out = join_path(out, *parts)
    return out


# Values shorter than this are remembered for the rest of the walk: the same short
# value under the same name (`true`, a port, an image tag in every template) is common
# in large objects, and judging it again would find the same thing.
_MEMO_MAX_LENGTH = 512
_SCALARS = (int, float, bool, type(None))


class Walker:
    """One walk over one object; calls `emit(path, name, hit, value)` for every hit.

    `budget` bounds the judgements of the whole walk (`limits.py`); `first_not_judged`
    is the path of the first value it left unjudged."""

    __slots__ = (
        "_budget",
        "_detector",
        "_emit",
        "_exempt",
        "_memo",
        "_skip_annotations",
        "first_not_judged",
    )

    def __init__(
        self,
        detector: Detector,
        emit: Emit,
        *,
        skip_annotations: frozenset[str],
        exempt_name: Callable[[str], bool],
        budget: Budget | None = None,
    ) -> None:
        self._detector = detector
        self._emit = emit
        self._skip_annotations = skip_annotations
        self._exempt = exempt_name
        self._budget = budget
        self._memo: dict[tuple[str, str | None], list[Hit]] = {}
        self.first_not_judged: str | None = None

    def full_path(self, path: str) -> str:
        """`path` as the object's root sees it (a `List` item's walker prefixes it)."""
        return path

    # ------------------------------------------------------------------ strings

    def string(self, value: Any, path: Where, name: str | None) -> None:
        if not isinstance(value, str) or len(value) < 6:
            return
        if name is not None and self._exempt(name):
            return
        short = len(value) < _MEMO_MAX_LENGTH
        if short:
            hits = self._memo.get((value, name))
            if hits is None:
                hits = self._judge(value, path, name)
                self._memo[(value, name)] = hits
        else:
            hits = self._judge(value, path, name)
        if hits:
            where = path_of(path)
            for hit in hits:
                self._emit(where, name or "", hit, value)

    def _judge(self, value: str, path: Where, name: str | None) -> list[Hit]:
        budget = self._budget
        if budget is None:
            return self._detector.scan_string(value, name)
        skipped = budget.skipped
        hits = self._detector.scan_string(value, name, budget)
        if budget.skipped != skipped and self.first_not_judged is None:
            self.first_not_judged = self.full_path(path_of(path))
        return hits

    def anything(self, node: Any, path: Where, name: str | None) -> None:
        """Every string below `node`, named by its nearest mapping key."""
        kind = type(node)
        if kind is str:
            self.string(node, path, name)
        elif kind is dict:  # the decoded JSON of a review: no isinstance chain per node
            for key, child in node.items():
                if type(child) in _SCALARS:
                    continue
                if key not in ("valueFrom", "secretKeyRef", "envFrom") and isinstance(key, str):
                    self.anything(child, (path, key), key)
        elif kind is list:
            for index, child in enumerate(node):
                if type(child) not in _SCALARS:
                    self.anything(child, (path, index), name)
        elif isinstance(node, str):
            self.string(node, path, name)
        elif isinstance(node, Mapping):
            for key, child in node.items():
                if isinstance(key, str) and key not in ("valueFrom", "secretKeyRef", "envFrom"):
                    self.anything(child, (path, key), key)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                self.anything(child, (path, index), name)

    # ---------------------------------------------------------------- resources

    def resource(
        self,
        obj: Mapping[str, Any],
        container_override: Mapping[str, Any] | None = None,
        container_path: Where | None = None,
    ) -> None:
        kind = obj.get("kind")
        if kind == "Secret":
            return
        if kind == "List" and isinstance(obj.get("items"), list):
            for index, item in enumerate(obj["items"]):
                if isinstance(item, Mapping):
                    sub = _Prefixed(self, join_path("items", index))
                    sub.resource(item)
            return
        self.metadata(obj.get("metadata"), "metadata")
        spec = obj.get("spec")
        if kind == "ConfigMap":
            self.configmap(obj, container_override, container_path)
        elif kind == "Pod":
            self.pod_spec(spec, "spec")
        elif isinstance(kind, str) and kind in POD_TEMPLATE_PATHS:
            node: Any = obj
            parts = POD_TEMPLATE_PATHS[kind]
            for part in parts:
                node = node.get(part) if isinstance(node, Mapping) else None
            if isinstance(node, Mapping):
                base = ("", *parts)
                self.metadata(node.get("metadata"), (base, "metadata"))
                self.pod_spec(node.get("spec"), (base, "spec"))
        elif isinstance(kind, str) and kind in ARGO_WORKFLOW_KINDS:
            if kind == "CronWorkflow" and isinstance(spec, Mapping):
                self.workflow_spec(spec.get("workflowSpec"), "spec.workflowSpec")
            else:
                self.workflow_spec(spec, "spec")
        elif kind == "ExecutorPlugin" and isinstance(spec, Mapping):
            self.plugin_manifest(spec, "spec", container_override, container_path)

    def metadata(self, metadata: Any, path: Where) -> None:
        if not isinstance(metadata, Mapping):
            return
        annotations = metadata.get("annotations")
        if isinstance(annotations, Mapping):
            for key, value in annotations.items():
                if isinstance(key, str) and key not in self._skip_annotations:
                    self.string(value, (path, "annotations", key), key)

    def configmap(
        self,
        obj: Mapping[str, Any],
        container_override: Mapping[str, Any] | None,
        container_path: Where | None,
    ) -> None:
        data = obj.get("data")
        is_plugin = _is_plugin_configmap(obj)
        if isinstance(data, Mapping):
            for key, value in data.items():
                if not isinstance(key, str):
                    continue
                path = ("data", key)
                if is_plugin and key == CONTAINER_KEY:
                    container = container_override
                    if container is None and isinstance(value, str):
                        container = _parse_container(value)
                    if container is not None:
                        self.container(container, container_path or path)
                    else:
                        self.string(value, path, None)  # unparseable: scan it as text
                else:
                    self.string(value, path, key)
        binary = obj.get("binaryData")
        if isinstance(binary, Mapping):
            for key, value in binary.items():
                if isinstance(key, str) and isinstance(value, str):
                    text = _decode_text(value)
                    if text is not None:
                        self.string(text, ("binaryData", key), key)

    def plugin_manifest(
        self,
        spec: Mapping[str, Any],
        path: Where,
        container_override: Mapping[str, Any] | None,
        container_path: Where | None,
    ) -> None:
        sidecar = spec.get("sidecar")
        if not isinstance(sidecar, Mapping):
            return
        container = container_override
        if container is None:
            raw = sidecar.get("container")
            container = raw if isinstance(raw, Mapping) else None
        if container is not None:
            self.container(container, container_path or (path, "sidecar", "container"))

    # ------------------------------------------------------------ pods, containers

    def pod_spec(self, spec: Any, path: Where) -> None:
        if not isinstance(spec, Mapping):
            return
        for list_name in POD_CONTAINER_LISTS:
            containers = spec.get(list_name)
            if isinstance(containers, list):
                list_path = (path, list_name)
                for index, container in enumerate(containers):
                    if isinstance(container, Mapping):
                        self.container(container, (list_path, index))

    def container(self, container: Mapping[str, Any], path: Where) -> None:
        env = container.get("env")
        if isinstance(env, list):
            for index, var in enumerate(env):
                if isinstance(var, Mapping) and "value" in var:
                    name = var.get("name")
                    self.string(
                        var["value"],
                        (path, "env", index, "value"),
                        name if isinstance(name, str) else None,
                    )
        for field in ("command", "args"):
            self.argv(container.get(field), (path, field))
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            self.handler(container.get(probe), (path, probe))
        lifecycle = container.get("lifecycle")
        if isinstance(lifecycle, Mapping):
            for hook in ("postStart", "preStop"):
                self.handler(lifecycle.get(hook), (path, "lifecycle", hook))
        source = container.get("source")  # Argo script templates
        if isinstance(source, str):
            self.string(source, (path, "source"), None)

    def argv(self, argv: Any, path: Where) -> None:
        if not isinstance(argv, list):
            return
        previous_flag: str | None = None
        for index, arg in enumerate(argv):
            if not isinstance(arg, str):
                previous_flag = None
                continue
            self.string(arg, (path, index), previous_flag)
            stripped = arg.strip()
            is_flag = stripped.startswith("-") and "=" not in stripped and " " not in stripped
            previous_flag = stripped.lstrip("-") if is_flag and len(stripped) > 1 else None

    def handler(self, handler: Any, path: Where) -> None:
        if not isinstance(handler, Mapping):
            return
        exec_ = handler.get("exec")
        if isinstance(exec_, Mapping):
            self.argv(exec_.get("command"), (path, "exec", "command"))
        http = handler.get("httpGet")
        if isinstance(http, Mapping):
            self.headers(http.get("httpHeaders"), (path, "httpGet", "httpHeaders"))

    def headers(self, headers: Any, path: Where) -> None:
        if not isinstance(headers, list):
            return
        for index, header in enumerate(headers):
            if isinstance(header, Mapping) and "value" in header:
                name = header.get("name")
                value = header["value"]
                if isinstance(name, str) and isinstance(value, str):
                    self.string(value, (path, index, "value"), name)

    # ------------------------------------------------------------------ Argo

    def workflow_spec(self, spec: Any, path: Where) -> None:
        if not isinstance(spec, Mapping):
            return
        # The plugins first: their findings are the ones enforced, and a scan limit
        # reached in a long list of templates must not leave them unread.
        plugins = spec.get("executorPlugins")
        if isinstance(plugins, list):
            for index, plugin in enumerate(plugins):
                if isinstance(plugin, Mapping) and isinstance(plugin.get("spec"), Mapping):
                    self.plugin_manifest(
                        plugin["spec"],
                        (path, "executorPlugins", index, "spec"),
                        None,
                        None,
                    )
        self.parameters(spec.get("arguments"), (path, "arguments"))
        templates = spec.get("templates")
        if isinstance(templates, list):
            for index, template in enumerate(templates):
                if isinstance(template, Mapping):
                    self.template(template, (path, "templates", index))

    def template(self, template: Mapping[str, Any], path: Where) -> None:
        self.metadata(template.get("metadata"), (path, "metadata"))
        for field in ("container", "script"):
            node = template.get(field)
            if isinstance(node, Mapping):
                self.container(node, (path, field))
        for field in ("initContainers", "sidecars"):
            nodes = template.get(field)
            if isinstance(nodes, list):
                for index, node in enumerate(nodes):
                    if isinstance(node, Mapping):
                        self.container(node, (path, field, index))
        container_set = template.get("containerSet")
        if isinstance(container_set, Mapping):
            self.pod_spec(container_set, (path, "containerSet"))
        http = template.get("http")
        if isinstance(http, Mapping):
            http_path = (path, "http")
            self.string(http.get("url"), (http_path, "url"), None)
            self.headers(http.get("headers"), (http_path, "headers"))
            self.string(http.get("body"), (http_path, "body"), None)
        plugin = template.get("plugin")
        if isinstance(plugin, Mapping):
            self.anything(plugin, (path, "plugin"), None)
        self.parameters(template.get("inputs"), (path, "inputs"))
        self.parameters(template.get("arguments"), (path, "arguments"))
        steps = template.get("steps")
        if isinstance(steps, list):
            for i, group in enumerate(steps):
                if isinstance(group, list):
                    for j, step in enumerate(group):
                        if isinstance(step, Mapping):
                            self.parameters(
                                step.get("arguments"), (path, "steps", i, j, "arguments")
                            )
        dag = template.get("dag")
        if isinstance(dag, Mapping) and isinstance(dag.get("tasks"), list):
            for i, task in enumerate(dag["tasks"]):
                if isinstance(task, Mapping):
                    self.parameters(task.get("arguments"), (path, "dag", "tasks", i, "arguments"))

    def parameters(self, holder: Any, path: Where) -> None:
        if not isinstance(holder, Mapping):
            return
        params = holder.get("parameters")
        if not isinstance(params, list):
            return
        for index, param in enumerate(params):
            if not isinstance(param, Mapping):
                continue
            name = param.get("name")
            for field in ("value", "default"):
                self.string(
                    param.get(field),
                    (path, "parameters", index, field),
                    name if isinstance(name, str) else None,
                )


class _Prefixed(Walker):
    """A walker for `List` items: reports paths under `items[i]`."""

    __slots__ = ("_parent", "_prefix")

    def __init__(self, parent: Walker, prefix: str) -> None:
        outer = parent._emit

        def emit(path: str, name: str, hit: Hit, value: str) -> None:
            outer(
                f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path,
                name,
                hit,
                value,
            )

        super().__init__(
            parent._detector,
            emit,
            skip_annotations=parent._skip_annotations,
            exempt_name=parent._exempt,
            budget=parent._budget,
        )
        self._parent = parent
        self._prefix = prefix

    def full_path(self, path: str) -> str:
        prefix = self._prefix
        joined = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        return self._parent.full_path(joined)

    def resource(
        self,
        obj: Mapping[str, Any],
        container_override: Mapping[str, Any] | None = None,
        container_path: Where | None = None,
    ) -> None:
        super().resource(obj, container_override, container_path)
        if self._parent.first_not_judged is None:
            self._parent.first_not_judged = self.first_not_judged


def _is_plugin_configmap(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if isinstance(labels, Mapping) and labels.get(CONFIGMAP_TYPE_LABEL) == "ExecutorPlugin":
        return True
    data = obj.get("data")
    return isinstance(data, Mapping) and CONTAINER_KEY in data


def _parse_container(raw: str) -> Mapping[str, Any] | None:
    try:
        parsed = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, Mapping) else None


def _decode_text(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if any(not (c.isprintable() or c in "\n\r\t") for c in text[:4096]):
        return None
    return text
