"""What `plugin-guard test` prints: a table, JSON, or JUnit XML for CI pages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree

from webhook.policytest.runner import CaseResult, SuiteResult
from webhook.policytest.suite import SuiteError

Outcome = SuiteResult | SuiteError


def _got(case: CaseResult) -> str:
    return case.got if case.got is not None else "error"


def _why(case: CaseResult) -> str:
    if case.error is not None:
        return case.error
    if case.ok:
        return ""
    shown = [f"{v.action.value} {v.path}: {v.message}" for v in case.violations[:3]]
    more = len(case.violations) - len(shown)
    return "; ".join(shown) + (f"; ... and {more} more" if more > 0 else "")


def counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    cases = [c for o in outcomes if isinstance(o, SuiteResult) for c in o.cases]
    return {
        "suites": len(outcomes),
        "cases": len(cases),
        "passed": sum(1 for c in cases if c.ok),
        "failed": sum(1 for c in cases if not c.ok),
        "suiteErrors": sum(1 for o in outcomes if isinstance(o, SuiteError)),
    }


def format_table(outcomes: Sequence[Outcome], verbose: bool = False) -> str:
    lines: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, SuiteError):
            lines.append(f"{outcome}")
            lines.append("")
            continue
        lines.append(f"{outcome.suite.source} ({outcome.suite.name})")
        rows = [("", "POLICY", "RESOURCE", "PATH", "EXPECTED", "GOT")]
        for case in outcome.cases:
            if case.ok and not verbose:
                continue
            e = case.expectation
            resource = "/".join(p for p in (e.kind, e.namespace, e.resource) if p)
            mark = "ok" if case.ok else "FAIL"
            rows.append((mark, e.policy, resource, e.path or "-", e.result, _got(case)))
        if len(rows) > 1:
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                lines.append(
                    "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                )
            for case in outcome.cases:
                if not case.ok:
                    lines.append(
                        f"  line {case.expectation.line}: {case.expectation.label}: {_why(case)}"
                    )
        passed = sum(1 for c in outcome.cases if c.ok)
        lines.append(f"  {passed}/{len(outcome.cases)} as expected")
        lines.append("")
    total = counts(outcomes)
    summary = f"{total['suites']} suites, {total['cases']} cases: {total['passed']} as expected, {total['failed']} not"
    if total["suiteErrors"]:
        summary += f", {total['suiteErrors']} suites could not run"
    lines.append(summary)
    return "\n".join(lines)


def as_json(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    suites: list[dict[str, Any]] = []
    for outcome in outcomes:
        if isinstance(outcome, SuiteError):
            suites.append({"file": outcome.source, "line": outcome.line, "error": outcome.detail})
            continue
        suites.append(
            {
                "file": str(outcome.suite.source),
                "name": outcome.suite.name,
                "cases": [
                    {
                        "policy": c.expectation.policy,
                        "resource": c.expectation.resource,
                        "kind": c.expectation.kind,
                        "namespace": c.expectation.namespace,
                        "path": c.expectation.path,
                        "line": c.expectation.line,
                        "expected": c.expectation.result,
                        "got": c.got,
                        "ok": c.ok,
                        "error": c.error,
                        "violations": [v.as_dict() for v in c.violations],
                    }
                    for c in outcome.cases
                ],
            }
        )
    return {"summary": counts(outcomes), "suites": suites}


def format_json(outcomes: Sequence[Outcome]) -> str:
    return json.dumps(as_json(outcomes), indent=2)


def format_junit(outcomes: Sequence[Outcome]) -> str:
    """JUnit XML as CI systems read it: a testsuite per suite file, a testcase per case."""
    total = counts(outcomes)
    root = ElementTree.Element(
        "testsuites",
        name="plugin-guard test",
        tests=str(total["cases"] + total["suiteErrors"]),
        failures=str(total["failed"]),
        errors=str(total["suiteErrors"]),
    )
    for outcome in outcomes:
        if isinstance(outcome, SuiteError):
            suite = ElementTree.SubElement(
                root, "testsuite", name=outcome.source, tests="1", failures="0", errors="1"
            )
            case = ElementTree.SubElement(suite, "testcase", classname=outcome.source, name="load")
            ElementTree.SubElement(case, "error", message=str(outcome))
            continue
        failures = sum(1 for c in outcome.cases if not c.ok)
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=outcome.suite.name,
            file=str(outcome.suite.source),
            tests=str(len(outcome.cases)),
            failures=str(failures),
            errors="0",
        )
        for c in outcome.cases:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=outcome.suite.name,
                name=f"{c.expectation.label} is {c.expectation.result}",
                file=str(outcome.suite.source),
                line=str(c.expectation.line),
            )
            if not c.ok:
                failure = ElementTree.SubElement(
                    case, "failure", message=f"expected {c.expectation.result}, got {_got(c)}"
                )
                failure.text = _why(c)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="unicode"
    )
