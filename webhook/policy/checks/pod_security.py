"""Built-in check `podSecurityStandard`: the Kubernetes Pod Security Standards on a pod.

Policy usage (see `policies/pod-security-restricted.yaml`):

    rules:
      - check: podSecurityStandard
        parameters: {level: restricted}   # or baseline

The view is a `pod` target: `{"metadata", "spec"}` of a Pod or of a workload's pod
template. The standard itself lives in `webhook.policy.pss`; this module only adapts it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, cast

from webhook.policy.model import EvaluationContext, Finding, Target, TargetView
from webhook.policy.pss import LEVELS, Level, pod_security_findings
from webhook.policy.registry import Parameters, register

PARAMETERS_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {"level": {"enum": list(LEVELS)}},
    "required": ["level"],
    "additionalProperties": False,
}


def prepare_level(parameters: Parameters) -> Level:
    level = parameters.get("level")
    if level not in LEVELS:  # the loader validates parameters; this guards direct calls
        raise ValueError(f"podSecurityStandard: level must be one of {list(LEVELS)}, not {level!r}")
    return cast(Level, level)


@register(
    "podSecurityStandard",
    targets=[Target.POD],
    prepare=prepare_level,
    parameters_schema=PARAMETERS_SCHEMA,
    description=(
        "Kubernetes Pod Security Standards (v1.37) at the given level: baseline, or "
        "restricted (which includes baseline)."
    ),
)
def pod_security_standard(
    view: TargetView, level: Level, context: EvaluationContext
) -> Iterator[Finding]:
    """Every way the pod breaks the Pod Security Standard at `level`."""
    pod = view.value
    if not isinstance(pod, Mapping):
        return
    for path, message in pod_security_findings(pod, level):
        yield Finding(path, message)
