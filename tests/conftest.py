"""Shared test fixtures: where the real corpora live, and the bundled policy set."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# CI runs a fresh clone with `shared/` beside it; so does every developer checkout.
SHARED = REPO_ROOT.parent / "shared"
CORPORA = SHARED / "corpora"
PLUGIN_CORPUS = CORPORA / "argo-plugins"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test corpus missing: {path} (expected shared/ beside the repository)")
    return path


@pytest.fixture(scope="session")
def corpora() -> Path:
    return _require(CORPORA)


@pytest.fixture(scope="session")
def plugin_corpus() -> Path:
    return _require(PLUGIN_CORPUS)


@pytest.fixture(scope="session")
def policy_set():  # type: ignore[no-untyped-def]
    from webhook.policy import load_policies

    return load_policies()
