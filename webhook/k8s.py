"""The only module that imports the `kubernetes` package.

Today it hands out the generated API model classes (pure data, used to parse plugin
containers as strictly as Argo does); code that talks to a cluster lives here too.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def api_models() -> Any:
    """The `kubernetes.client` module, whose `V1...` classes describe the API types.

    Imported lazily: it takes ~0.3 s, which a `check` of one file should not pay
    unless it parses a container.
    """
    from kubernetes import client

    return client
