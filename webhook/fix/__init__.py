"""`plugin-guard fix`: plugins rewritten so that the policies with a safe mechanical fix
pass (as `polaris fix` does for workloads), with a minimal diff.

`fixers.py` holds what may be changed, one fixer per policy id; `roundtrip.py` keeps
everything else of the file as written; `rewrite.py` evaluates, fixes and evaluates
again; `commands.py` is the CLI.
"""

from webhook.fix.fixers import FIXERS, NO_SAFE_FIX, FixSettings, fixer
from webhook.fix.rewrite import FileFix, FixError, Left, fix_text

__all__ = [
    "FIXERS",
    "NO_SAFE_FIX",
    "FileFix",
    "FixError",
    "FixSettings",
    "Left",
    "fix_text",
    "fixer",
]
