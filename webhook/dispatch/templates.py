"""Find the plugin templates in a file and prepare them as the controller would.

A file may hold a Workflow, a WorkflowTemplate, a ClusterWorkflowTemplate, a
CronWorkflow, or a bare template (a mapping with `name` and `plugin`), in YAML (several
documents) or JSON. In a cluster the controller hands the agent the *processed* template
(spec 7.1: global and input parameters already substituted), so a small part of that
processing is done here: `{{workflow.name|namespace|uid}}`, `{{workflow.parameters.X}}`
and `{{inputs.parameters.X}}`, with input values taken from `--parameter`, then from the
single place in the file that calls the template with arguments, then from `value` or
`default`. Anything else (`{{tasks...}}`, `{{steps...}}`) is left as written.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.dispatch.executor import WorkflowMeta
from webhook.errors import GuardError

WORKFLOW_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
DEFAULT_NAMESPACE = "default"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


class TemplateFileError(GuardError):
    """The template file cannot be used (CLI exit code 2)."""


@dataclass(frozen=True, slots=True)
class PluginTask:
    """A plugin template ready to send, and the workflow it belongs to."""

    node_id: str
    workflow: WorkflowMeta
    template: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.template.get("name", ""))


def load_documents(path: str) -> list[Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TemplateFileError(f"{path}: cannot read: {reason}") from None
    return parse_documents(text, path)


def parse_documents(text: str, source: str) -> list[Any]:
    if source.endswith(".json"):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise TemplateFileError(f"{source}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise TemplateFileError(f"{where}: invalid YAML: {problem}") from None


def plugin_tasks(
    documents: list[Any],
    source: str,
    *,
    parameters: Mapping[str, str] | None = None,
    namespace: str | None = None,
) -> list[PluginTask]:
    """Every plugin template in the documents, substituted and validated (spec 1.3)."""
    overrides = dict(parameters or {})
    tasks: list[PluginTask] = []
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise TemplateFileError(f"{source}: document {index} is not a mapping")
        if doc.get("kind") in WORKFLOW_KINDS:
            tasks.extend(_workflow_tasks(doc, index, source, overrides, namespace))
        elif "plugin" in doc:
            workflow = _workflow_meta({}, namespace)
            template = _prepare(doc, {}, workflow, {}, overrides, source)
            tasks.append(PluginTask(_node_id(workflow, index, template), workflow, template))
    if not tasks:
        raise TemplateFileError(
            f"{source}: no plugin template found (expected a Workflow, WorkflowTemplate or "
            "bare template with a `plugin:` key)"
        )
    return tasks


def _workflow_tasks(
    doc: dict[str, Any],
    index: int,
    source: str,
    overrides: dict[str, str],
    namespace: str | None,
) -> Iterator[PluginTask]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    templates = spec.get("templates") or []
    if not isinstance(templates, list):
        raise TemplateFileError(f"{source}: spec.templates must be a list")
    workflow = _workflow_meta(doc, namespace)
    global_params = _named_values((spec.get("arguments") or {}).get("parameters"))
    call_sites = _call_site_arguments(templates)
    for template in templates:
        if isinstance(template, dict) and "plugin" in template:
            name = str(template.get("name", ""))
            prepared = _prepare(
                template, global_params, workflow, call_sites.get(name, {}), overrides, source
            )
            yield PluginTask(_node_id(workflow, index, prepared), workflow, prepared)


def _workflow_meta(doc: Mapping[str, Any], namespace: str | None) -> WorkflowMeta:
    metadata = doc.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        # What the API server does with generateName: a random 5-character suffix.
        name = f"{metadata.get('generateName') or 'plugin-guard-'}{uuid.uuid4().hex[:5]}"
    return WorkflowMeta(
        name=str(name),
        namespace=namespace or str(metadata.get("namespace") or DEFAULT_NAMESPACE),
        uid=str(uuid.uuid4()),
    )


def _node_id(workflow: WorkflowMeta, index: int, template: Mapping[str, Any]) -> str:
    return f"{workflow.name}/{index}/{template.get('name', '')}"


def _named_values(items: Any) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items or []:
        if isinstance(item, dict) and "name" in item:
            value = item.get("value", item.get("default"))
            if value is not None:
                values[str(item["name"])] = _as_string(value)
    return values


def _call_site_arguments(templates: list[Any]) -> dict[str, dict[str, str]]:
    """Arguments passed to each template by DAG tasks and steps, when it is called from
    exactly one place (more than one call site is ambiguous: use `--parameter`)."""
    seen: dict[str, list[dict[str, str]]] = {}
    for template in templates:
        if not isinstance(template, dict):
            continue
        calls: list[Any] = list((template.get("dag") or {}).get("tasks") or [])
        for group in template.get("steps") or []:
            calls.extend(group if isinstance(group, list) else [group])
        for call in calls:
            if isinstance(call, dict) and isinstance(call.get("template"), str):
                args = _named_values((call.get("arguments") or {}).get("parameters"))
                seen.setdefault(call["template"], []).append(args)
    return {name: sites[0] for name, sites in seen.items() if len(sites) == 1}


def _prepare(
    template: dict[str, Any],
    global_params: dict[str, str],
    workflow: WorkflowMeta,
    call_args: dict[str, str],
    overrides: dict[str, str],
    source: str,
) -> dict[str, Any]:
    name = template.get("name")
    label = f"template {name!r}" if name else "template"
    plugin = template.get("plugin")
    # spec 1.3: `plugin` must be an object with exactly one key
    if not isinstance(plugin, dict):
        raise TemplateFileError(
            f"{source}: {label}: plugin: json: cannot unmarshal {type(plugin).__name__} "
            "into Go value of type map[string]interface {}"
        )
    if len(plugin) != 1:
        raise TemplateFileError(
            f"{source}: {label}: plugin: expected exactly one key, got {len(plugin)}"
        )
    scope = {
        "workflow.name": workflow.name,
        "workflow.namespace": workflow.namespace,
        "workflow.uid": workflow.uid,
    }
    scope.update({f"workflow.parameters.{k}": v for k, v in global_params.items()})
    prepared = copy.deepcopy(template)
    inputs = prepared.get("inputs")
    for param in (inputs or {}).get("parameters") or []:
        if not isinstance(param, dict) or "name" not in param:
            continue
        pname = str(param["name"])
        if pname in overrides:
            value: Any = overrides[pname]
        elif pname in call_args:
            value = _substitute(call_args[pname], scope)
        elif "value" in param:
            value = _substitute(param["value"], scope)
        elif "default" in param:
            value = _substitute(param["default"], scope)
        else:
            raise TemplateFileError(
                f"{source}: {label}: input parameter {pname!r} has no value; "
                f"pass --parameter {pname}=VALUE"
            )
        param["value"] = _as_string(value)
        scope[f"inputs.parameters.{pname}"] = param["value"]
    return {key: _substitute(value, scope) for key, value in prepared.items()}


def _substitute(value: Any, scope: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: scope.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, scope) for key, item in value.items()}
    return value


def _as_string(value: Any) -> str:
    """Parameter values are strings in Argo (`AnyString`); YAML may have typed them."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))
