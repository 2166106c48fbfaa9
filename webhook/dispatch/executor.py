"""The plugin template executor: Argo's `executePluginTemplate` (spec section 6.4), plus
an opt-in route-by-key mode (argo issue #10304, unmerged PR #12705).

Argo tries every plugin in order for every plugin task. The first reply with a `node`
wins; `{}`, `null` and 404 fall through to the next plugin; any error stops the search
and fails the node, so one plugin that answers 403 to templates it does not own breaks
every plugin after it. That is reproduced as is, because plugin authors need to see it
here before they see it in a cluster. Route-by-key (off by default) first calls only the
plugin named by the template's `plugin:` key, then falls back to the others in order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.dispatch.rpc import (
    ExecuteTemplateReply,
    NodeResult,
    PluginCallError,
    PluginClient,
)

log = logging.getLogger(__name__)

NO_PLUGIN_MESSAGE = "no plugin executed the template"  # spec 6.4 step 3
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
PHASE_ERROR = "Error"
FINAL_PHASES = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})

# The template fields Argo's `Template.GetType()` recognises, in its order, for the
# "unknown task type" error (spec 6.2).
_TEMPLATE_TYPES = (
    ("container", "Container"),
    ("containerSet", "ContainerSet"),
    ("steps", "Steps"),
    ("dag", "DAG"),
    ("script", "Script"),
    ("resource", "Resource"),
    ("data", "Data"),
    ("suspend", "Suspend"),
    ("http", "HTTP"),
)


@dataclass(frozen=True, slots=True)
class WorkflowMeta:
    """`ExecuteTemplateArgs.workflow.metadata` (spec 7.1): exactly these three keys."""

    name: str
    namespace: str = ""
    uid: str = ""

    def as_args(self) -> dict[str, Any]:
        return {"metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid}}


@dataclass(frozen=True, slots=True)
class Execution:
    """What one execution of a task produced.

    `requeue` is the plugin's duration string and `requeue_seconds` its value, both only
    when the effective requeue is > 0 (a Succeeded reply ignores it, spec 6.4).
    """

    node: NodeResult
    requeue: str | None = None
    requeue_seconds: float = 0.0

    @property
    def final(self) -> bool:
        """No further change is coming: a final phase and no requeue."""
        return self.node.phase in FINAL_PHASES and not self.requeue


def plugin_key(template: Mapping[str, Any]) -> str | None:
    """The single key of `template.plugin` (spec 1.3), or None if it is not exactly one."""
    plugin = template.get("plugin")
    if isinstance(plugin, Mapping) and len(plugin) == 1:
        return str(next(iter(plugin)))
    return None


class TemplateExecutor:
    """Run plugin templates against an ordered list of plugin clients (spec 6.4)."""

    def __init__(self, clients: Sequence[PluginClient], *, route_by_key: bool = False) -> None:
        self.clients = list(clients)
        self.route_by_key = route_by_key

    def execute(self, workflow: WorkflowMeta, template: Mapping[str, Any]) -> Execution:
        """Argo's `processTask` for one task: never raises; errors become the node."""
        if template.get("plugin") is None:
            kind = next((name for key, name in _TEMPLATE_TYPES if key in template), "Unknown")
            if kind == "HTTP":
                message = "error processing task: this dispatcher runs plugin templates only"
            else:
                message = f"error processing task: agent cannot execute: unknown task type: {kind}"
            return Execution(NodeResult(phase=PHASE_ERROR, message=message))
        try:
            return self._execute_plugin_template(workflow, template)
        except PluginCallError as exc:  # spec 6.2: executor error -> Failed, message = error
            return Execution(NodeResult(phase=PHASE_FAILED, message=str(exc)))

    def call_order(self, template: Mapping[str, Any]) -> list[PluginClient]:
        """Plugins in the order they will be asked. Argo: sidecar order. Route-by-key:
        the plugins whose name is the `plugin:` key first (compared without the
        conventional `-executor-plugin` suffix), then every other plugin in order."""
        if not self.route_by_key:
            return list(self.clients)
        key = plugin_key(template)
        owners = [c for c in self.clients if key is not None and _owns(c, key)]
        return owners + [c for c in self.clients if c not in owners]

    def _execute_plugin_template(
        self, workflow: WorkflowMeta, template: Mapping[str, Any]
    ) -> Execution:
        args = {"workflow": workflow.as_args(), "template": template}
        reply = ExecuteTemplateReply()  # one reply for all plugins (spec 6.4 steps 1 and 4)
        for client in self.call_order(template):
            client.execute_template(args, reply)  # an error stops the search (spec 6.4)
            if reply.node is None:
                continue  # `{}`, `null`, 404 or remembered 404: next plugin
            node = reply.node
            if node.phase == PHASE_SUCCEEDED or reply.requeue_ns <= 0:
                return Execution(node)  # Succeeded ignores requeue (spec 6.4, v3.4.7)
            return Execution(node, reply.requeue, reply.requeue_ns / 1e9)
        raise PluginCallError(NO_PLUGIN_MESSAGE)


def _owns(client: PluginClient, key: str) -> bool:
    endpoint = client.endpoint
    return bool(endpoint.name) and key in (endpoint.name, endpoint.plugin_name)
