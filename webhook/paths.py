"""JSON paths as people read them: `spec.containers[0].securityContext.runAsNonRoot`.

Keys that are not plain identifiers are written in brackets, as kubectl does for labels:
`data[sidecar.container]`, `metadata.labels[workflows.argoproj.io/configmap-type]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")

PathPart = str | int


def join_path(prefix: str, *parts: PathPart) -> str:
    """Append keys (str) and list indexes (int) to a path."""
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out = f"{out}.{part}" if out else part
        else:
            out += f"[{part}]"
    return out


def format_path(parts: Iterable[PathPart]) -> str:
    return join_path("", *parts)
