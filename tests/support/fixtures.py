"""The suite-wide pytest plugin (loaded by tests/conftest.py through `pytest_plugins`):
where the real corpora live, what happens without them, and the bundled policy set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# CI runs a fresh clone with `shared/` beside it; so does every developer checkout.
SHARED = REPO_ROOT.parent / "shared"
CORPORA = SHARED / "corpora"
PLUGIN_CORPUS = CORPORA / "argo-plugins"


SHARED_MISSING = not SHARED.is_dir()
_MISSING_LINE = (
    f"shared/ is missing: expected at {SHARED} (the folder beside the repository that holds "
    "the corpora and the bench payloads); the tests that read it are skipped"
)


def pytest_configure(config: pytest.Config) -> None:
    # CI must prove everything: there a missing shared/ fails the run at once.
    if SHARED_MISSING and os.environ.get("CI"):
        raise pytest.UsageError(f"{_MISSING_LINE.split(';')[0]}; CI needs it")


def pytest_sessionstart(session: pytest.Session) -> None:
    # Said once, at the start (also under -q and xdist), outside CI: what is missing
    # and where it must be.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if SHARED_MISSING and reporter is not None and not hasattr(session.config, "workerinput"):
        reporter.write_line(f"NOTE: {_MISSING_LINE}", yellow=True, bold=True)


def _skip_what_needs_shared() -> Iterator[None]:
    """Outside CI, a test (or its fixture) that opens a file under the missing shared/
    is skipped, with the reason, rather than failed: the rest of the suite still runs."""
    try:
        return (yield)
    except FileNotFoundError as exc:
        if SHARED_MISSING and str(exc.filename or "").startswith(str(SHARED)):
            pytest.skip(f"needs {exc.filename} (shared/ is missing)")
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _skip_what_needs_shared())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _skip_what_needs_shared())


def _require(path: Path) -> Path:
    if not path.exists():
        if SHARED_MISSING:
            pytest.skip(f"needs {path} (shared/ is missing)")
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
