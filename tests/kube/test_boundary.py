"""`webhook/kube/` is the only code that imports `kubernetes`, and loads it lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "webhook"


def _imports_kubernetes(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "kubernetes" or name.startswith("kubernetes.") for name in names):
            return True
    return False


def test_only_webhook_kube_imports_kubernetes() -> None:
    importers = {
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if _imports_kubernetes(p)
    }
    assert importers, "the scan found no importer at all: is it still looking at the package?"
    assert {path for path in importers if not path.startswith("kube/")} == set()


def test_importing_the_boundary_does_not_load_kubernetes() -> None:
    """`check` pays for the `kubernetes` package only when it parses a container."""
    code = (
        "import sys, webhook.kube, webhook.kube.models, webhook.executor_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
