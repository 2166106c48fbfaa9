"""The policy engine shared by the webhook and the CLI."""

from webhook.policy.engine import Policy, PolicySet, load_policies, load_policy_file
from webhook.policy.loader import bundled_policies_dir
from webhook.policy.model import Action, EvaluationContext, Target, Verdict, Violation

__all__ = [
    "Action",
    "EvaluationContext",
    "Policy",
    "PolicySet",
    "Target",
    "Verdict",
    "Violation",
    "bundled_policies_dir",
    "load_policies",
    "load_policy_file",
]
