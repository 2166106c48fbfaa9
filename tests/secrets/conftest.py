"""Fixtures for the inline-secret tests (helpers live in tests/support/secrets_testkit.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.secrets_testkit import load_corpus


@pytest.fixture(scope="session")
def corpus() -> list[dict[str, Any]]:
    return load_corpus()
