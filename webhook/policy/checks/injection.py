"""Built-in check `agentPodInjected`: the validating pair of the mutating webhook.

Policy usage (see `policies/agent-pod-injected.yaml`):

    match: {targets: [pod], kinds: [Pod]}
    rules:
      - check: agentPodInjected

An Argo agent pod that opted in to injection (`argo-plugin-guard/inject: "true"`) but
reaches validation without the plugins the mutation gives it, or with them removed or
changed since, is reported with what is missing and what to do
(`webhook.inject.verify`). The registry is the context's plugins (the webhook's
registry, or the plugins of one `check` run), the policies the set being evaluated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from webhook.inject.verify import injection_problems
from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
from webhook.policy.registry import Parameters, register


@register(
    "agentPodInjected",
    targets=[Target.POD],
    description=(
        "An Argo agent pod that opted in to plugin injection carries the injected plugin "
        "sidecars: the mutating webhook was not skipped and its work was not undone."
    ),
)
def agent_pod_injected(
    view: TargetView, parameters: Parameters, context: EvaluationContext
) -> Iterator[Finding]:
    pod = view.value
    if not isinstance(pod, Mapping):
        return
    namespace = view.namespace or context.namespace or ""
    for problem in injection_problems(
        pod, context.plugins, policies=context.policies, namespace=namespace
    ):
        yield Finding(problem.path, problem.message, warning=problem.warning)
