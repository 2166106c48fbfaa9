"""Check `httpSuccessCondition`: the `successCondition` of Argo HTTP templates compiles
as an expr-lang expression over `request` and `response` (what the agent evaluates,
`webhook.expression.success_condition`). Argo only finds a bad one when the request has been
sent; this says so at `kubectl apply` (or `check`) time.

A condition holding a `{{...}}` placeholder is skipped (its text is only known once
Argo substitutes it), and so is one using a function this evaluator leaves out
(`now()`, `date()`, ...: valid in Argo).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from webhook.expression import ExpressionSyntaxError
from webhook.expression.success_condition import check_condition
from webhook.paths import join_path
from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
from webhook.policy.registry import Parameters, register

_NOT_SUPPORTED = "is not supported by plugin-guard's expression evaluator"


def _templates(view: TargetView) -> tuple[str, list[Any]]:
    spec = view.value.get("spec") if isinstance(view.value, Mapping) else None
    base = "spec"
    if view.kind == "CronWorkflow" and isinstance(spec, dict):
        spec, base = spec.get("workflowSpec"), "spec.workflowSpec"
    templates = spec.get("templates") if isinstance(spec, dict) else None
    return base, templates if isinstance(templates, list) else []


@register(
    "httpSuccessCondition",
    targets=[Target.RESOURCE],
    description="The successCondition of HTTP templates is an expr-lang expression that compiles.",
)
def http_success_condition(
    view: TargetView, parameters: Parameters, context: EvaluationContext
) -> Iterator[Finding]:
    base, templates = _templates(view)
    for index, template in enumerate(templates):
        http = template.get("http") if isinstance(template, dict) else None
        condition = http.get("successCondition") if isinstance(http, dict) else None
        if not isinstance(condition, str) or not condition or "{{" in condition:
            continue
        try:
            check_condition(condition)
        except ExpressionSyntaxError as exc:
            if _NOT_SUPPORTED in str(exc):
                continue
            yield Finding(
                join_path(base, "templates", index, "http", "successCondition"),
                f"successCondition {condition!r} does not compile: {exc}; Argo fails the "
                "node after sending the request (names: request.*, response.statusCode, "
                "response.body, response.headers)",
                warning="fix the expr-lang expression",
            )
