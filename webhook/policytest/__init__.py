"""`plugin-guard test`: suites that prove policies against the objects they must pass
and fail, in CI, before anything reaches a cluster (as `kyverno test` and `gator verify`).

A suite is a file named `plugin-guard-test.yaml` (see `suite.py` for its format). It
names policy files or folders, resource files and, for each (policy, resource) and
optionally a field path, the expected result: `pass`, `fail`, `warn` or `skip`. The
runner evaluates with the same engine as the webhook and `check`.
"""

from webhook.policytest.runner import CaseResult, SuiteResult, run_suite
from webhook.policytest.suite import SUITE_FILE_NAME, Expectation, Suite, SuiteError, find_suites

__all__ = [
    "SUITE_FILE_NAME",
    "CaseResult",
    "Expectation",
    "Suite",
    "SuiteError",
    "SuiteResult",
    "find_suites",
    "run_suite",
]
