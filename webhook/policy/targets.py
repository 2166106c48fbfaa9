"""Cut a resource into the views policies look at (see `Target`).

A Pod gives a `pod` view and one `container` view per container; a Deployment the same
for its pod template; an Argo Workflow one `container` view per template container and
one `plugin` + `pluginSidecar` view per `spec.executorPlugins` entry; a plugin ConfigMap
or plugin.yaml a `plugin` view and (if its container parsed) a `pluginSidecar` view.
Every object also has a `resource` view of itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from webhook.executor_plugin import ExecutorPlugin, read_plugin, workflow_level_plugins
from webhook.kinds import ARGO_WORKFLOW_KINDS, POD_CONTAINER_LISTS, POD_TEMPLATE_PATHS
from webhook.manifests import object_name, object_namespace
from webhook.paths import join_path
from webhook.policy.model import EvaluationContext, Target, TargetView

# Argo template fields that hold a container, or a list of them.
TEMPLATE_CONTAINER_FIELDS = ("container", "script")
TEMPLATE_CONTAINER_LISTS = ("initContainers", "sidecars")


class ResourceViews:
    """The views of one resource, computed on first use (most policies need only one
    or two kinds of view, and a plugin ConfigMap has no pods)."""

    __slots__ = ("_cache", "context", "kind", "name", "namespace", "obj")

    def __init__(self, obj: Mapping[str, Any], context: EvaluationContext) -> None:
        self.obj = obj
        self.context = context
        kind = obj.get("kind")
        self.kind = kind if isinstance(kind, str) else ""
        self.name = object_name(dict(obj)) if isinstance(obj, dict) else ""
        self.namespace = object_namespace(dict(obj)) if isinstance(obj, dict) else None
        if self.namespace is None:
            self.namespace = context.namespace
        self._cache: dict[Target, list[TargetView]] = {}

    def get(self, target: Target) -> list[TargetView]:
        views = self._cache.get(target)
        if views is None:
            views = self._cache[target] = list(self._build(target))
        return views

    @property
    def plugins(self) -> list[ExecutorPlugin]:
        return [view.plugin for view in self.get(Target.PLUGIN)]

    def _view(self, target: Target, value: Any, path: str, **extra: Any) -> TargetView:
        return TargetView(
            target=target,
            value=value,
            path=path,
            resource=self.obj,
            kind=self.kind,
            namespace=self.namespace,
            name=self.name,
            **extra,
        )

    def _build(self, target: Target) -> Iterator[TargetView]:
        if target is Target.RESOURCE:
            plugins = self.get(Target.PLUGIN)
            yield self._view(target, self.obj, "", plugin=plugins[0].plugin if plugins else None)
        elif target is Target.PLUGIN:
            for plugin in self._read_plugins():
                yield self._view(target, plugin, "", plugin=plugin)
        elif target is Target.PLUGIN_SIDECAR:
            for plugin in self.plugins:
                if plugin.container is not None:
                    yield self._view(
                        target,
                        plugin.container,
                        plugin.container_path,
                        plugin=plugin,
                        container_name=plugin.container_name,
                    )
        elif target is Target.POD:
            for pod, path in self._pods():
                yield self._view(target, pod, path)
        elif target is Target.CONTAINER:
            yield from self._containers()

    def _read_plugins(self) -> list[ExecutorPlugin]:
        if self.kind in ARGO_WORKFLOW_KINDS:
            return workflow_level_plugins(self.obj)
        plugin = read_plugin(self.obj)
        return [plugin] if plugin is not None else []

    def _pods(self) -> Iterator[tuple[Mapping[str, Any], str]]:
        if self.kind == "Pod":
            yield self.obj, ""
            return
        parts = POD_TEMPLATE_PATHS.get(self.kind)
        if parts is None:
            return
        node: Any = self.obj
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            yield node, join_path("", *parts)

    def _containers(self) -> Iterator[TargetView]:
        for pod, pod_path in self._pods():
            spec = pod.get("spec")
            if not isinstance(spec, dict):
                continue
            for list_name in POD_CONTAINER_LISTS:
                yield from self._container_list(
                    spec.get(list_name), join_path(pod_path, "spec", list_name)
                )
        if self.kind in ARGO_WORKFLOW_KINDS:
            yield from self._workflow_containers()

    def _container_list(self, containers: Any, path: str) -> Iterator[TargetView]:
        if not isinstance(containers, list):
            return
        for index, container in enumerate(containers):
            if isinstance(container, dict):
                name = container.get("name")
                yield self._view(
                    Target.CONTAINER,
                    container,
                    join_path(path, index),
                    container_name=name if isinstance(name, str) else None,
                )

    def _workflow_containers(self) -> Iterator[TargetView]:
        spec = self.obj.get("spec")
        base = "spec"
        if self.kind == "CronWorkflow" and isinstance(spec, dict):
            spec, base = spec.get("workflowSpec"), "spec.workflowSpec"
        if not isinstance(spec, dict) or not isinstance(spec.get("templates"), list):
            return
        for index, template in enumerate(spec["templates"]):
            if not isinstance(template, dict):
                continue
            template_path = join_path(base, "templates", index)
            for field in TEMPLATE_CONTAINER_FIELDS:
                container = template.get(field)
                if isinstance(container, dict):
                    name = container.get("name") or template.get("name")
                    yield self._view(
                        Target.CONTAINER,
                        container,
                        join_path(template_path, field),
                        container_name=name if isinstance(name, str) else None,
                    )
            container_set = template.get("containerSet")
            if isinstance(container_set, dict):
                yield from self._container_list(
                    container_set.get("containers"),
                    join_path(template_path, "containerSet", "containers"),
                )
            for list_name in TEMPLATE_CONTAINER_LISTS:
                yield from self._container_list(
                    template.get(list_name), join_path(template_path, list_name)
                )
