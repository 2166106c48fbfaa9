"""Check `argoPluginTemplates`: the `plugin:` templates of Argo workflows, as Argo reads them.

Cites `shared/research/argo-plugins-spec.md` section 1.3.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from webhook.paths import join_path
from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
from webhook.policy.registry import register


@register(
    "argoPluginTemplates",
    targets=[Target.RESOURCE],
    description="The `plugin:` templates of Argo workflows are valid as Argo defines them.",
)
def argo_plugin_templates(
    view: TargetView, parameters: Mapping[str, Any], context: EvaluationContext
) -> Iterator[Finding]:
    # spec 1.3: Template.plugin is a JSON object with exactly one key (UnmarshalJSON),
    # and plugin templates may not set podResources or resourceClaims (validate.go).
    spec = view.value.get("spec")
    base = "spec"
    if view.kind == "CronWorkflow" and isinstance(spec, dict):
        spec, base = spec.get("workflowSpec"), "spec.workflowSpec"
    templates = spec.get("templates") if isinstance(spec, dict) else None
    if not isinstance(templates, list):
        return
    for index, template in enumerate(templates):
        if not isinstance(template, dict) or "plugin" not in template:
            continue
        path = join_path(base, "templates", index)
        plugin = template["plugin"]
        if not isinstance(plugin, dict):
            go_type = {bool: "bool", str: "string", list: "array"}.get(type(plugin), "number")
            yield Finding(
                join_path(path, "plugin"),
                f"json: cannot unmarshal {go_type} into Go value of type "
                "map[string]interface {}: `plugin` must be a mapping with one key, the plugin's name",
            )
        elif len(plugin) != 1:
            yield Finding(
                join_path(path, "plugin"),
                f"expected exactly one key, got {len(plugin)}: write `plugin: {{<name>: ...}}`",
            )
        name = template.get("name", index)
        for field in ("podResources", "resourceClaims"):
            if field in template:
                yield Finding(
                    join_path(path, field),
                    f"templates.{name}.{field} is not supported for Plugin templates",
                )
