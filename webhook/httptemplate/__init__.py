"""HTTP templates (`template.http`, spec 6.7): the request, header values from Secrets,
and the expr-lang `successCondition`, as Argo's agent runs them.

    runner = HTTPTemplateRunner(secrets=cluster.resource(kinds.SECRET))
    runner.execute(WorkflowMeta("wf", "argo", uid), template)   # -> Execution (a node)
"""

from webhook.expression.success_condition import CONDITION_NAMES, check_condition, condition_holds
from webhook.httptemplate.headers import HeaderError, SecretReader, resolve_headers
from webhook.httptemplate.runner import HTTPTemplateRunner

__all__ = [
    "CONDITION_NAMES",
    "HTTPTemplateRunner",
    "HeaderError",
    "SecretReader",
    "check_condition",
    "condition_holds",
    "resolve_headers",
]
