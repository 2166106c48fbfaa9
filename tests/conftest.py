"""The suite-wide fixtures and hooks live in the `tests.support` package; loaded here."""

pytest_plugins = ["tests.support.fixtures"]
