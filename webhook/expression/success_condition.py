"""The environment Argo gives an HTTP template's `successCondition`
(`workflow/executor/agent.go`, `executeHTTPTemplate`), and its evaluation.

    request.method      string   `http.method` as written ("" when not set)
    request.url         string
    request.body        string   `http.body`
    request.bodyBytes   []byte   `http.bodyFrom.bytes` (nil when not set)
    request.headers     map[string][]string: the headers with a `value`, by the name as
                        written (`HTTPHeaders.ToHeader`: those from `valueFrom` are left
                        out, so a secret never reaches the expression)
    response.statusCode int
    response.body       string
    response.headers    map[string][]string (Go's http.Header: canonical names such as
                        `Content-Type`, every value of a repeated header; a missing name
                        reads as an empty list)

(Argo's docs name `response.url` and `response.method`; its code puts them under
`request`, and so does this.) No condition means success is a 2xx status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from webhook.expression import (
    NIL_STRINGS,
    ExpressionError,
    ExpressionSyntaxError,
    GoMap,
    Program,
    StringList,
    compile_expression,
    evaluate_bool,
)

CONDITION_NAMES = ("request", "response")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def canonical_header(name: str) -> str:
    """Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` -> `Content-Type`; a name
    with characters outside an HTTP token is left as it is."""
    if not _TOKEN.fullmatch(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def header_map(pairs: Iterable[tuple[str, str]], *, canonical: bool) -> GoMap:
    headers: dict[str, StringList] = {}
    for name, value in pairs:
        key = canonical_header(name) if canonical else name
        headers.setdefault(key, StringList()).append(value)
    return GoMap(headers, NIL_STRINGS)


def request_scope(spec: Mapping[str, Any], body_bytes: bytes | None) -> dict[str, Any]:
    headers: dict[str, StringList] = {}
    for header in spec.get("headers") or []:
        if isinstance(header, Mapping) and header.get("name") and not header.get("valueFrom"):
            # ToHeader: one value per name, the last one written wins
            headers[str(header["name"])] = StringList([str(header.get("value") or "")])
    return {
        "method": str(spec.get("method") or ""),
        "url": str(spec.get("url") or ""),
        "body": str(spec.get("body") or ""),
        "bodyBytes": body_bytes,
        "headers": GoMap(headers, NIL_STRINGS),
    }


def check_condition(source: str) -> Program:
    """Compile a successCondition (names `request` and `response`); raises
    ExpressionSyntaxError with a one-line message. Used before the request is sent,
    and by the policy that checks Workflows."""
    return compile_expression(source, CONDITION_NAMES)


def condition_holds(
    source: str,
    request: Mapping[str, Any],
    status: int,
    body: str,
    response_headers: GoMap,
) -> tuple[bool, str]:
    """(success, message) as Argo words them: false -> "successCondition '<expr>'
    evaluated false"; an error -> its message."""
    env = {
        "request": request,
        "response": {"statusCode": status, "body": body, "headers": response_headers},
    }
    try:
        if evaluate_bool(source, env):
            return True, ""
    except ExpressionError as exc:
        return False, str(exc)
    return False, f"successCondition '{source}' evaluated false"


__all__ = [
    "CONDITION_NAMES",
    "ExpressionSyntaxError",
    "canonical_header",
    "check_condition",
    "condition_holds",
    "header_map",
    "request_scope",
]
