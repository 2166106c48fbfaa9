"""The built-in checks. Importing this package registers every one of them in
`webhook.policy.registry.default_registry`; the import below is the whole list.

To add a check, write a module here whose function is decorated with
`webhook.policy.registry.register` (see that module's docstring) and add it to the
import. A check adapts a library (`webhook.secrets`, `webhook.policy.pss`) to the engine;
the library itself never imports the policy package.
"""

from webhook.policy.checks import (
    argo_templates,
    http_templates,
    injection,
    inline_secrets,
    plugin,
    pod_security,
    resources,
)

__all__ = [
    "argo_templates",
    "http_templates",
    "injection",
    "inline_secrets",
    "plugin",
    "pod_security",
    "resources",
]
