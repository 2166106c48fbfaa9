"""Checks on an ExecutorPlugin as a whole: can Argo read it, its name, its service
account, its port beside the other plugins.

Each check cites the part of `shared/research/argo-plugins-spec.md` it encodes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from webhook.executor_plugin import (
    CONFIGMAP_TYPE_LABEL,
    EXECUTOR_PLUGIN_KIND,
    FORM_CONFIGMAP,
    FORM_WORKFLOW,
    NAME_SUFFIX,
    ExecutorPlugin,
)
from webhook.paths import join_path
from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
from webhook.policy.registry import register

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_LABEL_PATH = join_path("metadata", "labels", CONFIGMAP_TYPE_LABEL)


@register(
    "pluginFormat",
    targets=[Target.PLUGIN],
    description="The plugin can be read by Argo at all: container YAML, strict fields, kind.",
)
def plugin_format(
    view: TargetView, parameters: Mapping[str, Any], context: EvaluationContext
) -> Iterator[Finding]:
    plugin: ExecutorPlugin = view.value
    # Problems found while reading (spec 1.1 and 2: FromConfigMap parses strictly).
    for problem in plugin.problems:
        yield Finding(problem.path, _with_subject(problem.path, problem.message))
    metadata_path = join_path(plugin.base_path, "metadata")
    configmap_name = (
        plugin.resource_name if plugin.form == FORM_CONFIGMAP else plugin.name + NAME_SUFFIX
    )
    if plugin.form == FORM_WORKFLOW and not plugin.name:
        # spec 1.2, WorkflowSpec.AsExecutorPluginSpec, as workflow validation words it.
        yield Finding(
            join_path(metadata_path, "name"),
            "spec.executorPlugins: executor plugin metadata name is mandatory",
        )
    elif plugin.form != FORM_WORKFLOW and not _DNS1123_SUBDOMAIN.match(configmap_name):
        yield Finding(
            join_path(metadata_path, "name"),
            f"the ConfigMap name {configmap_name!r} is not a valid Kubernetes name "
            "(lower-case letters, digits, '-' and '.'): the API server would refuse it",
            warning="use lower-case letters, digits, '-' and '.' (the API server refuses this name)",
        )
    for key, value in plugin.labels.items():
        if not _LABEL_VALUE.match(value):
            # The API server refuses the object; `check` says so before `kubectl apply`.
            yield Finding(
                join_path(metadata_path, "labels", key),
                f"label {key!r} has a value that is not a valid label value (at most 63 "
                "letters, digits, '-', '_' or '.', starting and ending alphanumeric); "
                "move free text such as versions to an annotation",
                warning="not a valid label value: move free text to an annotation",
            )
    if plugin.kind != EXECUTOR_PLUGIN_KIND:
        # spec 3.2: the controller only accepts this exact value and ignores the rest.
        where = (
            _LABEL_PATH if plugin.form == FORM_CONFIGMAP else join_path(plugin.base_path, "kind")
        )
        shown = repr(plugin.kind) if plugin.kind else "missing"
        yield Finding(
            where,
            f"the {'configmap-type label' if plugin.form == FORM_CONFIGMAP else 'kind'} must be "
            f"exactly {EXECUTOR_PLUGIN_KIND!r} (it is {shown}): Argo silently "
            "ignores any other value, so this plugin would never be loaded",
            warning=f"set exactly {EXECUTOR_PLUGIN_KIND!r} (Argo ignores other values)",
        )


def _with_subject(path: str, message: str) -> str:
    """'must be a list' -> 'ports must be a list': the message reads on its own."""
    if message.startswith(("must ", "is ")):
        return f"{_leaf(path)} {message}"
    return message


def _leaf(path: str) -> str:
    if path.endswith("]"):
        return path[path.rindex("[") + 1 : -1]
    return path.rsplit(".", 1)[-1]


@register(
    "uniquePluginPorts",
    targets=[Target.PLUGIN],
    description="No two plugins that can share an agent pod listen on the same port.",
)
def unique_plugin_ports(
    view: TargetView, parameters: Mapping[str, Any], context: EvaluationContext
) -> Iterator[Finding]:
    # spec 3.3 / 4.3: every plugin of the workflow's namespace (and of the controller's
    # namespace) becomes a sidecar of the same agent pod; two on one port means the
    # second cannot bind, and every workflow using plugins breaks.
    plugin: ExecutorPlugin = view.value
    port = plugin.port
    if port is None:
        return
    reported: set[tuple[str, str | None]] = set()
    for other in context.plugins_on_port(port):
        if not isinstance(other, ExecutorPlugin):
            continue
        if _same_plugin(plugin, other) or not _can_share_agent_pod(plugin, other):
            continue
        if (other.name, other.namespace) in reported:  # plugin.yaml and its ConfigMap
            continue
        reported.add((other.name, other.namespace))
        where = f" in namespace {other.namespace}" if other.namespace else ""
        yield Finding(
            join_path(plugin.container_path, "ports", 0, "containerPort"),
            f"port {port} is already used by plugin {other.name!r}{where}: plugins share "
            "the agent pod's network, so the second one cannot bind; pick another port",
            warning=f"pick another port: plugin {other.name!r}{where} has {port}",
        )


def _same_plugin(a: ExecutorPlugin, b: ExecutorPlugin) -> bool:
    # plugin.yaml `hello` and ConfigMap `hello-executor-plugin` are the same plugin.
    return a.name == b.name and _can_share_agent_pod(a, b)


def _can_share_agent_pod(a: ExecutorPlugin, b: ExecutorPlugin) -> bool:
    # Unknown namespaces (offline checks) are assumed to be the same one.
    return not a.namespace or not b.namespace or a.namespace == b.namespace


@register(
    "pluginConfigMapName",
    targets=[Target.PLUGIN],
    description="A plugin ConfigMap is named <plugin>-executor-plugin.",
)
def plugin_configmap_name(
    view: TargetView, parameters: Mapping[str, Any], context: EvaluationContext
) -> Iterator[Finding]:
    plugin: ExecutorPlugin = view.value
    if plugin.form == FORM_CONFIGMAP and not plugin.resource_name.endswith(NAME_SUFFIX):
        # spec 2 (FromConfigMap): without the suffix the name is kept as is, and the
        # automount service account becomes "<configmap-name>-executor-plugin".
        yield Finding(
            "metadata.name",
            f"ConfigMap {plugin.resource_name!r} does not end in {NAME_SUFFIX!r} "
            "(`argo executor-plugin build` names it so); Argo then uses the whole name as "
            f"the plugin name, and its service account becomes "
            f"{plugin.resource_name + NAME_SUFFIX!r}",
            warning=f"name it {plugin.resource_name + NAME_SUFFIX!r}, as `argo executor-plugin build` does",
        )


@register(
    "pluginServiceAccount",
    targets=[Target.PLUGIN],
    description="Explain what automountServiceAccountToken: true requires.",
)
def plugin_service_account(
    view: TargetView, parameters: Mapping[str, Any], context: EvaluationContext
) -> Iterator[Finding]:
    plugin: ExecutorPlugin = view.value
    if not plugin.automount_service_account_token:
        return
    # spec 4.6 and argo issue 12708: the account is looked up in the *workflow's*
    # namespace, even for a plugin installed in the controller's namespace.
    path = (
        join_path("data", "sidecar.automountServiceAccountToken")
        if plugin.form == FORM_CONFIGMAP
        else join_path(
            plugin.container_path.rsplit(".container", 1)[0], "automountServiceAccountToken"
        )
    )
    yield Finding(
        path,
        f"automountServiceAccountToken is true: the service account "
        f"{plugin.service_account_name!r} (and on Kubernetes >= 1.24 its token Secret "
        f"'{plugin.service_account_name}.service-account-token') must exist in every "
        "namespace that runs workflows, or the agent pod is not created",
        warning=f"create service account {plugin.service_account_name!r} and its token "
        "Secret in every workflow namespace",
    )
