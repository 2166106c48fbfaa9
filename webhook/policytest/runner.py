"""Run a suite: evaluate its resources with its policies and compare each expectation.

Results, per (policy, resource[, path]):
- `fail`: a violation whose action is Enforce or Audit (what the webhook denies, or
  what the audit reports);
- `warn`: violations, all of them Warn (what `kubectl apply` shows as warnings);
- `pass`: the policy applies to the resource and finds nothing;
- `skip`: the policy does not apply (its match or targets select nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from webhook.check import plugins_in
from webhook.errors import GuardError, ManifestError
from webhook.manifests import Document, expand_paths, parse_documents, read_source
from webhook.policy import (
    Action,
    EvaluationContext,
    Policy,
    PolicySet,
    Violation,
    load_policies,
    load_policy_file,
)
from webhook.policy.targets import ResourceViews
from webhook.policytest.suite import Expectation, Suite, SuiteError, load_suite


@dataclass(frozen=True, slots=True)
class CaseResult:
    expectation: Expectation
    got: str | None  # None when the case could not be evaluated (see `error`)
    error: str | None = None
    violations: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.got == self.expectation.result


@dataclass(frozen=True, slots=True)
class SuiteResult:
    suite: Suite
    cases: tuple[CaseResult, ...]

    @property
    def failed(self) -> int:
        return sum(1 for case in self.cases if not case.ok)


def load_policy_paths(paths: Sequence[Path], source: str) -> PolicySet:
    """The policies of the files and folders given (the bundled set when none)."""
    if not paths:
        return load_policies()
    policies: dict[str, Policy] = {}
    for path in paths:
        if path.is_dir():
            loaded = list(load_policies(path).policies)
        elif path.is_file():
            loaded = [load_policy_file(path)]
        else:
            raise SuiteError(source, f"policies: no such file or folder: {path}")
        for policy in loaded:
            if policy.id in policies:
                raise SuiteError(source, f"policy {policy.id!r} is given twice ({path})")
            policies[policy.id] = policy
    return PolicySet(list(policies.values()), ", ".join(str(p) for p in paths))


def _documents(paths: Sequence[Path], source: str) -> list[Document]:
    documents: list[Document] = []
    for path in paths:
        if not path.exists():
            raise SuiteError(source, f"resources: no such file or folder: {path}")
        for name in expand_paths([str(path)]):
            try:
                objects = parse_documents(read_source(name), name)
            except ManifestError as exc:
                raise SuiteError(source, f"resources: {exc}") from exc
            documents.extend(Document(name, i, obj) for i, obj in enumerate(objects))
    return documents


def _select(documents: Sequence[Document], expectation: Expectation) -> list[Document]:
    return [
        doc
        for doc in documents
        if doc.name == expectation.resource
        and (expectation.kind is None or doc.kind == expectation.kind)
        and (expectation.namespace is None or doc.namespace == expectation.namespace)
    ]


def _at_path(violation: Violation, path: str | None) -> bool:
    if path is None or violation.path == path:
        return True
    return violation.path.startswith((path + ".", path + "["))


def result_of(violations: Sequence[Violation], applies: bool) -> str:
    if any(v.action is not Action.WARN for v in violations):
        return "fail"
    if violations:
        return "warn"
    return "pass" if applies else "skip"


def run_suite(suite: Suite) -> SuiteResult:
    source = str(suite.source)
    policy_set = load_policy_paths(suite.policies, source)
    documents = _documents(suite.resources, source)
    installed = _documents(suite.plugins, source)
    context = EvaluationContext(
        plugins=plugins_in([*installed, *documents]), namespace=suite.namespace
    )
    verdicts = {id(doc): policy_set.evaluate(doc.obj, context) for doc in documents}
    cases = []
    for expectation in suite.expectations:
        policy = policy_set.get(expectation.policy)
        selected = _select(documents, expectation)
        error = None
        if policy is None:
            error = f"no policy {expectation.policy!r} in {policy_set.source or 'the set'}"
        elif not selected:
            error = f"no resource {expectation.label.split(' ', 1)[1]!r} in the suite's resources"
        elif len(selected) > 1:
            error = f"{len(selected)} resources are named {expectation.resource!r}: add kind or namespace"
        if error is not None or policy is None:
            cases.append(CaseResult(expectation, None, error))
            continue
        document = selected[0]
        found = tuple(
            v
            for v in verdicts[id(document)].violations
            if v.policy == policy.id and _at_path(v, expectation.path)
        )
        applies = policy.applies(ResourceViews(document.obj, context))
        cases.append(CaseResult(expectation, result_of(found, applies), None, found))
    return SuiteResult(suite, tuple(cases))


def run_paths(paths: Sequence[str]) -> list[SuiteResult | SuiteError]:
    """Every suite under `paths`; a suite that cannot run is an error, the others run."""
    from webhook.policytest.suite import find_suites

    results: list[SuiteResult | SuiteError] = []
    for source in find_suites(paths):
        try:
            results.append(run_suite(load_suite(source)))
        except SuiteError as exc:
            results.append(exc)
        except GuardError as exc:  # a broken policy file named by the suite
            results.append(SuiteError(str(source), str(exc)))
    return results
