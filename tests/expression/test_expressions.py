"""expr-lang expressions as Argo evaluates them in HTTP `successCondition`s.

The environment is the one Argo builds (workflow/executor/agent.go): `request` and
`response` maps, headers as Go's `map[string][]string`. Where an expression comes from
is given next to it:

- argo-examples: argo-workflows examples/http-success-condition.yaml
- argo-e2e:      argo-workflows test/e2e/agent_test.go (TestStatusCondition)
- argo-docs:     argo-workflows docs/http-template.md and docs/variables.md
- expr-docs:     expr-lang docs/language-definition.md (the language Argo links to)
- written:       the shapes people write for HTTP checks (status ranges, JSON bodies,
                 content types), exercising the same operators.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from webhook.expression import (
    NIL_STRINGS,
    ExpressionRuntimeError,
    ExpressionSyntaxError,
    GoMap,
    StringList,
    compile_expression,
    evaluate_bool,
)
from webhook.expression.parser import MAX_DEPTH, MAX_SOURCE


def env(
    status: int = 201,
    body: str = '{"status": "ok", "items": [1, 2, 3], "user": {"name": "John"}}',
    headers: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    response_headers = headers or {
        "Server": ["cloudflare"],
        "Content-Type": ["application/json; charset=utf-8"],
        "Set-Cookie": ["a=1", "b=2"],
    }
    return {
        "request": {
            "method": "POST",
            "url": "https://example.com/api",
            "body": "test body",
            "bodyBytes": None,
            "headers": GoMap({"x-header-name": StringList(["test-value"])}, NIL_STRINGS),
        },
        "response": {
            "statusCode": status,
            "body": body,
            "headers": GoMap({k: StringList(v) for k, v in response_headers.items()}, NIL_STRINGS),
        },
    }


TRUE = [
    ("argo-examples", "response.statusCode == 201"),
    ("argo-examples", 'response.headers["Server"][0] == "cloudflare"'),
    ("argo-e2e", "response.statusCode == 201"),
    ("argo-docs", 'response.body contains "ok"'),
    ("argo-docs", 'request.body == "test body" && request.method == "POST"'),
    ("argo-docs", 'request.headers["x-header-name"][0] == "test-value"'),
    ("argo-docs", 'request.url startsWith "https://"'),
    ("expr-docs", '"John" in ["John", "Jane"]'),
    ("expr-docs", '"name" in {"name": "John", "age": 30}'),
    ("expr-docs", "[1, 2, 3][-1] == 3"),
    ("expr-docs", "[1, 2, 3, 4, 5][1:4] == [2, 3, 4]"),
    ("expr-docs", "[1, 2, 3, 4, 5][:3] == [1, 2, 3]"),
    ("expr-docs", "1..3 == [1, 2, 3]"),
    ("expr-docs", '(fromJSON(response.body).user?.name ?? "Anonymous") == "John"'),
    ("expr-docs", '(fromJSON(response.body).nobody?.name ?? "Anonymous") == "Anonymous"'),
    ("expr-docs", 'trim("  Hello  ") == "Hello"'),
    ("expr-docs", 'trim("__Hello__", "_") == "Hello"'),
    ("expr-docs", 'split("apple,orange,grape", ",") == ["apple", "orange", "grape"]'),
    ("expr-docs", 'split("apple,orange,grape", ",", 2) == ["apple", "orange,grape"]'),
    ("expr-docs", 'indexOf("apple pie", "pie") == 6'),
    ("expr-docs", 'replace("Hello World", "World", "Universe") == "Hello Universe"'),
    ("expr-docs", 'upper("hello") == "HELLO" and lower("HELLO") == "hello"'),
    ("expr-docs", 'hasPrefix("HelloWorld", "Hello") && hasSuffix("HelloWorld", "World")'),
    ("expr-docs", "max(5, 7) == 7 && min(5, 7) == 5 && abs(-5) == 5"),
    ("expr-docs", "ceil(1.5) == 2.0 && floor(1.5) == 1.0 && round(1.5) == 2.0"),
    ("expr-docs", "len([1, 2, 3]) == 3"),
    ("expr-docs", 'len({"name": "John", "age": 30}) == 2'),
    ("expr-docs", 'len("Hello") == 5'),
    ("expr-docs", "get([1, 2, 3], 1) == 2 && get([1, 2, 3], 7) == nil"),
    ("expr-docs", 'int("123") == 123 && float("123.45") == 123.45 && string(123) == "123"'),
    ("expr-docs", 'toBase64("Hello World") == "SGVsbG8gV29ybGQ="'),
    ("expr-docs", 'fromBase64("SGVsbG8gV29ybGQ=") == "Hello World"'),
    ("expr-docs", "first([1, 2, 3]) == 1 && last([1, 2, 3]) == 3"),
    ("expr-docs", "uniq([1, 2, 3, 2, 1]) == [1, 2, 3]"),
    ("expr-docs", 'join(["apple", "orange", "grape"], ",") == "apple,orange,grape"'),
    ("expr-docs", "count([true, false, true]) == 2"),
    ("expr-docs", "filter(0..9, {# % 2 == 0}) == [0, 2, 4, 6, 8]"),
    ("expr-docs", "find([1, 2, 3, 4], # > 2) == 3 && findIndex([1, 2, 3, 4], # > 2) == 2"),
    ("expr-docs", "findLast([1, 2, 3, 4], # > 2) == 4 && findLastIndex([1, 2, 3, 4], # > 2) == 3"),
    ("expr-docs", "let x = 42; x * 2 == 84"),
    ("expr-docs", 'type(42) == "int" && type("hello") == "string"'),
    ("expr-docs", "0x2A == 42 && 0o52 == 42 && 0b101010 == 42 && 1_000 == 1000"),
    ("expr-docs", ".5 == 0.5 && 1e3 == 1000"),
    (
        "expr-docs",
        "concat([1, 2], [3, 4]) == [1, 2, 3, 4] && flatten([1, 2, [3, 4]]) == [1, 2, 3, 4]",
    ),
    ("expr-docs", 'sort([3, 1, 4]) == [1, 3, 4] && sort([3, 1, 4], "desc") == [4, 3, 1]'),
    ("expr-docs", "reverse([3, 1, 4]) == [4, 1, 3]"),
    ("expr-docs", "sum([1, 2, 3]) == 6 && mean([1, 2, 3]) == 2.0 && median([1, 2, 3]) == 2.0"),
    ("expr-docs", 'response.body | lower() | hasPrefix("{")'),
    ("expr-docs", "if response.statusCode == 201 { true } else { false }"),
    ("written", "response.statusCode >= 200 && response.statusCode < 300"),
    ("written", "200 <= response.statusCode < 300"),
    ("written", "response.statusCode in [200, 201, 202]"),
    ("written", "response.statusCode not in [500, 502, 503]"),
    ("written", "not (response.statusCode >= 500) and response.statusCode != 404"),
    ("written", "!(response.statusCode == 500) || false"),
    ("written", "response.statusCode / 100 == 2.01 && response.statusCode % 100 == 1"),
    ("written", "response.statusCode == 201.0"),
    ("written", 'response.headers["Content-Type"][0] startsWith "application/json"'),
    ("written", 'response.headers["Content-Type"][0] not startsWith "text/"'),
    ("written", 'response.headers["Content-Type"][0] endsWith "utf-8"'),
    ("written", 'any(response.headers["Set-Cookie"], # startsWith "b=")'),
    ("written", '"a=1" in response.headers["Set-Cookie"]'),
    ("written", 'len(response.headers["Set-Cookie"]) == 2'),
    ("written", 'len(response.headers["X-Missing"]) == 0'),
    ("written", '"Server" in response.headers && !("X-Missing" in response.headers)'),
    ("written", 'fromJSON(response.body).status == "ok"'),
    ("written", "len(fromJSON(response.body).items) == 3"),
    ("written", "all(fromJSON(response.body).items, # > 0)"),
    ("written", 'response.body matches "\\"status\\":\\\\s*\\"ok\\""'),
    ("written", "response.body not matches '^<html'"),
    ("written", "response.body != '' && response.statusCode == 201 ? true : false"),
    ("written", 'response.headers?.["Server"]?.[0] == "cloudflare"'),
    ("written", "request.bodyBytes == nil"),
    ("written", "/* a comment */ response.statusCode == 201 // another"),
    ("written", "true == true && nil == nil && 1 != nil && !(response.statusCode == true)"),
    ("written", "-2 ** 2 == -4 && 2 ** 3 == 8.0 && 7 / 2 == 3.5 && -7 % 3 == -1"),
]


@pytest.mark.parametrize(("source", "expression"), TRUE, ids=[e for _, e in TRUE])
def test_expression_is_true(source: str, expression: str) -> None:
    assert evaluate_bool(expression, env()) is True


FALSE = [
    ("argo-examples", "response.statusCode == 200"),
    ("argo-examples", 'response.body contains "google"'),
    ("written", "response.statusCode in [200, 202]"),
    ("written", "response.body == 201"),  # different types: unequal, no error (expr's Equal)
    ("written", "[1, 2] == [2, 1]"),
    ("written", 'response.headers["X-Missing"] != nil'),  # a missing header is a nil []string
    ("written", "fromJSON(response.body).missing == 'x'"),
    ("written", "false && (1 / 0 > 1)"),  # short-circuit
]


@pytest.mark.parametrize(("source", "expression"), FALSE, ids=[e for _, e in FALSE])
def test_expression_is_false(source: str, expression: str) -> None:
    assert evaluate_bool(expression, env()) is False


COMPILE_ERRORS = [
    # argo-docs v3.2 wrote `body contains "google"`; since v3.3 the names are
    # request/response, so Argo's expr.Compile refuses it
    ('body contains "google"', "unknown name body (1:1)"),
    ("statusCode == 200", "unknown name statusCode (1:1)"),
    ("response.statusCode ==", "unexpected end of expression (1:23)"),
    ("response.statusCode === 201", 'unexpected token Operator("=") (1:23)'),
    ("(response.statusCode == 201", "unexpected end of expression (1:28)"),
    ('response.body contains "x', "literal not terminated (1:24)"),
    ("response.statusCode == 201 &", "unrecognized character: U+0026 '&' (1:28)"),
    ("nosuchfunc(response.body)", "unknown name nosuchfunc (1:1)"),
    ("len(1, 2) == 1", "invalid number of arguments for len (expected 1, got 2) (1:1)"),
    ("now() > 0", "function now is not supported"),
    ('response.body matches "("', "error parsing regexp: missing ): ("),
    ("a ?? b || c", "unknown name a (1:1)"),
    ('response.body ?? "" || true', "Operator (||) and coalesce expressions (??) cannot be mixed"),
    ("", "empty expression"),
    ("   ", "empty expression"),
    ("1 2", 'unexpected token Number("2") (1:3)'),
]


@pytest.mark.parametrize(("expression", "message"), COMPILE_ERRORS)
def test_bad_expressions_fail_to_compile_with_a_position(expression: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        evaluate_bool(expression, env())
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


RUNTIME_ERRORS = [
    ("response.statusCode", "unable to cast expression result '201' to bool"),
    ("response.body", "unable to cast expression result '{"),
    ("nil", "unable to cast expression result '<nil>' to bool"),
    ("true && 5", "unable to cast expression result '5' to bool"),  # expr yields the right side
    ('response.statusCode + "x" == 1', "invalid operation: int + string (1:21)"),
    ("response.nope > 1", "invalid operation: <nil> > int (1:15)"),
    ("!response.statusCode == 201", "! on int (expected bool)"),  # `!` binds tighter than ==
    ("len(response.statusCode) > 0", "invalid argument for len (type int)"),
    ('response.headers["X-Missing"][0] == "a"', "index out of range: 0 (array length is 0)"),
    ("response.statusCode.code == 1", "cannot fetch code from int"),
    ('response.statusCode contains "2"', "contains on int (expected string)"),
    ('"a" in "abc"', 'operator "in" not defined on string'),
    ("response.statusCode % 0 == 0", "integer divide by zero"),
    # Go's encoding/json makes every number a float64, and `%` takes ints only
    ("filter(fromJSON(response.body).items, # % 2 == 1) == [1, 3]", "float64 % int"),
    ('int("12a") == 12', 'strconv.Atoi: parsing "12a": invalid syntax'),
    ("fromJSON(response.body + '}') == nil", "fromJSON:"),
    ('response.statusCode > 1 || "x"', "unable to cast"),  # fine: left is true
]


@pytest.mark.parametrize(("expression", "message"), RUNTIME_ERRORS)
def test_runtime_errors_say_what_went_wrong(expression: str, message: str) -> None:
    if expression == 'response.statusCode > 1 || "x"':
        assert evaluate_bool(expression, env()) is True  # short-circuit: "x" never evaluated
        return
    with pytest.raises(ExpressionRuntimeError) as caught:
        evaluate_bool(expression, env())
    assert message in str(caught.value)


def test_evaluation_errors_quote_the_expression_as_argo_does() -> None:
    with pytest.raises(ExpressionRuntimeError) as caught:
        evaluate_bool("response.nope > 1", env())
    assert str(caught.value).startswith("unable to evaluate expression 'response.nope > 1': ")


def test_int_and_float_mix_as_in_go() -> None:
    program = compile_expression("[1 + 1.5, 7 / 2, 2 * 3, 9223372036854775807 + 1]", [])
    assert program.evaluate({}) == [2.5, 3.5, 6, -9223372036854775808]  # int64 wraps


def test_string_length_and_indexing_count_bytes_as_go() -> None:
    assert evaluate_bool('len("é") == 2 && "abc"[0] == 97', {}) is True


def test_a_compiled_program_is_reused_across_environments() -> None:
    program = compile_expression("response.statusCode == 201", ["request", "response"])
    assert program.evaluate(env(201)) is True
    assert program.evaluate(env(500)) is False


# ----------------------------------------------------------------- hostile input


def test_deep_nesting_is_refused_not_a_stack_overflow() -> None:
    depth = 5_000
    with pytest.raises(ExpressionSyntaxError, match="nested deeper than"):
        evaluate_bool("(" * depth + "true" + ")" * depth, {})
    with pytest.raises(ExpressionSyntaxError, match="nested deeper than"):
        evaluate_bool("!" * depth + "true", {})
    with pytest.raises(ExpressionSyntaxError, match="nested deeper than"):
        evaluate_bool("[" * depth + "]" * depth, {})
    # a long flat chain builds a deep tree too
    with pytest.raises(ExpressionSyntaxError, match="nested deeper than"):
        evaluate_bool(" || ".join(["false"] * 1_000) + " || true", {})


def test_nesting_within_the_limit_works() -> None:
    depth = MAX_DEPTH // 4
    assert evaluate_bool("(" * depth + "true" + ")" * depth, {}) is True


def test_very_long_input_is_refused_before_it_is_parsed() -> None:
    started = time.perf_counter()
    with pytest.raises(ExpressionSyntaxError, match="longer than"):
        evaluate_bool('"' + "a" * 10_000_000 + '" == ""', {})
    assert MAX_SOURCE < 10_000_000
    assert time.perf_counter() - started < 5


def test_expensive_evaluation_stops_at_the_step_budget() -> None:
    with pytest.raises(ExpressionRuntimeError, match="step budget"):
        evaluate_bool("len(map(1..100000, map(1..100000, #))) > 0", {})
    with pytest.raises(ExpressionRuntimeError, match="longer than"):
        evaluate_bool("len(1..100000000) > 0", {})
    with pytest.raises(ExpressionRuntimeError, match="longer than"):
        evaluate_bool('len(repeat("ab", 100000000)) > 0', {})


def test_catastrophic_regex_is_linear_with_re2() -> None:
    # (a+)+$ backtracks exponentially in Python's re; RE2 (Go's engine) does not
    body = "a" * 50_000 + "!"
    assert evaluate_bool('response.body matches "(a+)+$"', env(body=body)) is False


def test_python_is_never_reached() -> None:
    for attempt in ('__import__("os").system("true")', "response.__class__", "().__class__"):
        with pytest.raises((ExpressionSyntaxError, ExpressionRuntimeError)):
            evaluate_bool(attempt, env())
