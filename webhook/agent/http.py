"""HTTP templates, the agent's other task type (spec section 6.7).

- The request: `http.method` (default GET), `url`, `body` (or `bodyFrom.bytes`,
  base64 in JSON as Go marshals `[]byte`), `headers[]` with a `value`; a header named
  `Host` (any case) sets the request's host.
- `timeoutSeconds` bounds the whole call; `insecureSkipVerify` turns TLS checks off.
- Success is a 2xx status, else Failed "received non-2xx response code: <code>"; a
  transport error is Failed with its text. No retries, never a requeue.
- `outputs.result` is the response body.

Not done, each reported as an Error node with a clear message instead of a guess:
`successCondition` (an expr-lang expression Argo evaluates in Go) and header values
from `valueFrom.secretKeyRef` (they need `get secrets` in the workflow namespace).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import requests

from webhook.dispatch.executor import Execution, WorkflowMeta
from webhook.dispatch.rpc import NodeResult

UNSUPPORTED = "error processing task: plugin-guard agent does not support "


def _error(message: str) -> Execution:
    return Execution(NodeResult(phase="Error", message=message))


def _failed(message: str) -> Execution:
    return Execution(NodeResult(phase="Failed", message=message))


class HTTPTemplateRunner:
    """Runs `template.http` (spec 6.7) with `requests`."""

    def __init__(self, session: requests.Session | None = None) -> None:
        self._session = session or requests.Session()

    def execute(self, workflow: WorkflowMeta, template: Mapping[str, Any]) -> Execution:
        spec = template.get("http")
        if not isinstance(spec, Mapping):
            return _error("error processing task: http: expected an object")
        if spec.get("successCondition"):
            return _error(UNSUPPORTED + "http.successCondition (an expr-lang expression)")
        url = spec.get("url")
        if not isinstance(url, str) or not url:
            return _error("error processing task: http.url is required")
        headers: dict[str, str] = {}
        for header in spec.get("headers") or []:
            if not isinstance(header, Mapping) or not header.get("name"):
                continue
            if header.get("valueFrom"):
                return _error(UNSUPPORTED + "http.headers[].valueFrom (secretKeyRef)")
            headers[str(header["name"])] = str(header.get("value") or "")
        body: bytes | None = None
        if spec.get("body"):
            body = str(spec["body"]).encode()
        else:
            raw = (spec.get("bodyFrom") or {}).get("bytes")
            if raw:
                try:
                    body = base64.b64decode(str(raw), validate=True)
                except (binascii.Error, ValueError):
                    return _error("error processing task: http.bodyFrom.bytes is not base64")
        timeout = spec.get("timeoutSeconds")
        try:
            response = self._session.request(
                str(spec.get("method") or "GET"),
                url,
                headers=headers,
                data=body,
                timeout=float(timeout) if timeout else None,
                verify=not spec.get("insecureSkipVerify"),
            )
        except requests.RequestException as exc:
            return _failed(str(exc))
        text = response.text
        outputs = {"result": text}
        if not 200 <= response.status_code < 300:
            return Execution(
                NodeResult(
                    phase="Failed",
                    message=f"received non-2xx response code: {response.status_code}",
                    outputs=outputs,
                )
            )
        return Execution(NodeResult(phase="Succeeded", outputs=outputs))
