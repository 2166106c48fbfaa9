"""HTTP templates run against a real HTTP server on loopback: successCondition on the
real response (status, body, repeated headers), header values from Secrets (received
by the server, never in the node), and the failures Argo words."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from webhook.dispatch.executor import WorkflowMeta
from webhook.httptemplate import HTTPTemplateRunner
from webhook.kube import KubeApiError

WORKFLOW = WorkflowMeta("wf", "argo", "uid-1")
SECRET_VALUE = "s3cr3t-token-value-7f2a"


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Target:
    """Answers every request with `status`, `body` and `headers` (repeats allowed)."""

    status: int = 200
    body: bytes = b'{"status": "ok"}'
    headers: list[tuple[str, str]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"


@pytest.fixture
def target() -> Iterator[Target]:
    state = Target()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(
                Received(self.command, self.path, list(self.headers.items()), body)
            )
            self.send_response(state.status)
            for name, value in state.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_POST = do_PUT = do_DELETE = do_GET

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.server.daemon_threads = True
    thread = threading.Thread(
        target=state.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()


class Secrets:
    """The SecretReader the runner gets from webhook.kube, over a dict (the loopback
    fake API tests the real client path)."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        self.secrets = secrets
        self.reads: list[tuple[str, str]] = []
        self.fail_with: KubeApiError | None = None

    def get(self, name: str, *, namespace: str) -> dict[str, Any]:
        self.reads.append((namespace, name))
        if self.fail_with is not None:
            raise self.fail_with
        if (namespace, name) not in self.secrets:
            raise KubeApiError(404, "NotFound", f'secrets "{name}" not found')
        data = self.secrets[(namespace, name)]
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def http_task(target: Target, **spec: Any) -> dict[str, Any]:
    return {"name": "h", "http": {"url": target.url, **spec}}


def run(template: dict[str, Any], secrets: Secrets | None = None) -> dict[str, Any]:
    execution = HTTPTemplateRunner(secrets=secrets).execute(WORKFLOW, template)
    node = execution.node
    assert execution.requeue is None  # HTTP templates never requeue (spec 6.7)
    return {"phase": node.phase, "message": node.message, "outputs": node.outputs}


# ------------------------------------------------------------------ successCondition


def test_condition_on_status_code(target: Target) -> None:
    target.status = 201
    assert run(http_task(target, successCondition="response.statusCode == 201")) == {
        "phase": "Succeeded",
        "message": "",
        "outputs": {"result": '{"status": "ok"}'},
    }


def test_a_false_condition_is_failed_with_argos_message_and_the_body(target: Target) -> None:
    node = run(http_task(target, successCondition="response.statusCode == 201"))
    assert node == {
        "phase": "Failed",
        "message": "successCondition 'response.statusCode == 201' evaluated false",
        "outputs": {"result": '{"status": "ok"}'},
    }


def test_condition_accepts_a_non_2xx_status(target: Target) -> None:
    """With a condition, the 2xx default no longer applies (Argo: one or the other)."""
    target.status = 404
    node = run(http_task(target, successCondition="response.statusCode == 404"))
    assert node["phase"] == "Succeeded"


def test_default_without_condition_is_2xx(target: Target) -> None:
    target.status = 302
    target.headers = [("Location", "/elsewhere-that-is-not-followed")]
    target.status = 418
    node = run(http_task(target))
    assert node["phase"] == "Failed"
    assert node["message"] == "received non-2xx response code: 418"


def test_condition_sees_repeated_headers_as_a_list_with_canonical_names(target: Target) -> None:
    target.headers = [
        ("content-type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("x-served-by", "cloudflare"),
    ]
    condition = (
        'response.headers["Content-Type"][0] startsWith "application/json"'
        ' && response.headers["Set-Cookie"] == ["a=1", "b=2"]'
        ' && response.headers["X-Served-By"][0] == "cloudflare"'
        ' && len(response.headers["X-Missing"]) == 0'
    )
    assert run(http_task(target, successCondition=condition))["phase"] == "Succeeded"


def test_condition_on_a_json_body(target: Target) -> None:
    target.body = b'{"status": "ok", "items": [{"ready": true}, {"ready": true}]}'
    condition = (
        'fromJSON(response.body).status == "ok" && all(fromJSON(response.body).items, .ready)'
    )
    assert run(http_task(target, successCondition=condition))["phase"] == "Succeeded"


def test_condition_sees_the_request(target: Target) -> None:
    condition = (
        'request.method == "POST" && request.body == "hi" && request.url endsWith "/api"'
        ' && request.headers["X-Trace"] == ["1"]'
    )
    template = http_task(
        target,
        method="POST",
        body="hi",
        headers=[{"name": "X-Trace", "value": "1"}],
        successCondition=condition,
    )
    assert run(template)["phase"] == "Succeeded"


def test_an_evaluation_error_is_failed_with_the_error(target: Target) -> None:
    node = run(http_task(target, successCondition="response.body > 1"))
    assert node["phase"] == "Failed"
    assert node["message"] == (
        "unable to evaluate expression 'response.body > 1': invalid operation: string > int (1:15)"
    )
    assert node["outputs"] is None  # Argo returns the error, no outputs


def test_a_condition_that_does_not_compile_fails_before_the_request(target: Target) -> None:
    node = run(http_task(target, method="POST", successCondition='body contains "google"'))
    assert node == {
        "phase": "Failed",
        "message": "invalid successCondition 'body contains \"google\"': unknown name body (1:1)",
        "outputs": None,
    }
    assert target.received == []  # the POST was never sent


# ------------------------------------------------------------------ secretKeyRef headers


def secret_header(name: str = "token", key: str = "value") -> dict[str, Any]:
    return {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def test_header_value_from_a_secret_reaches_the_server_and_nothing_else(target: Target) -> None:
    target.body = b"accepted"
    secrets = Secrets({("argo", "token"): {"value": SECRET_VALUE}})
    template = http_task(
        target,
        headers=[{"name": "X-Plain", "value": "p"}, secret_header()],
        successCondition='len(request.headers) == 1 && request.headers["X-Plain"] == ["p"]',
    )
    node = run(template, secrets)
    assert node["phase"] == "Succeeded", node
    assert ("Authorization", SECRET_VALUE) in target.received[0].headers
    assert ("X-Plain", "p") in target.received[0].headers
    assert secrets.reads == [("argo", "token")]  # the workflow's namespace
    assert SECRET_VALUE not in repr(node)


def test_a_missing_secret_is_failed_naming_secret_and_namespace(target: Target) -> None:
    node = run(http_task(target, headers=[secret_header("nope")]), Secrets({}))
    assert node["phase"] == "Failed"
    assert node["message"] == (
        'http.headers[0] (Authorization): secret "nope" not found in namespace "argo"'
    )
    assert target.received == []


def test_a_missing_key_is_failed_with_argos_words(target: Target) -> None:
    secrets = Secrets({("argo", "token"): {"other": SECRET_VALUE}})
    node = run(http_task(target, headers=[secret_header(key="value")]), secrets)
    assert node["phase"] == "Failed"
    assert node["message"] == (
        "http.headers[0] (Authorization): secret 'token' does not have the key 'value'"
    )
    assert SECRET_VALUE not in node["message"]


def test_forbidden_says_which_rbac_rule_is_missing(target: Target) -> None:
    secrets = Secrets({})
    secrets.fail_with = KubeApiError(403, "Forbidden", 'secrets "token" is forbidden')
    node = run(http_task(target, headers=[secret_header()]), secrets)
    assert node["phase"] == "Failed"
    assert '"get" on secrets' in node["message"]
    assert 'secret "token" key "value" in namespace "argo"' in node["message"]


def test_a_value_with_a_trailing_newline_is_refused_without_showing_it(target: Target) -> None:
    secrets = Secrets({("argo", "token"): {"value": SECRET_VALUE + "\n"}})
    node = run(http_task(target, headers=[secret_header()]), secrets)
    assert node["phase"] == "Failed"
    assert "ends with a newline" in node["message"]
    assert SECRET_VALUE not in node["message"]
    assert target.received == []


def test_without_a_cluster_a_secret_header_fails_clearly(target: Target) -> None:
    node = run(http_task(target, headers=[secret_header()]), None)
    assert node["phase"] == "Failed"
    assert "no cluster connection" in node["message"]


def test_repeated_header_names_are_all_sent(target: Target) -> None:
    headers = [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]
    assert run(http_task(target, headers=headers))["phase"] == "Succeeded"
    values = [v for k, v in target.received[0].headers if k.lower() == "x-a"]
    assert values == ["1, 2"]


# ------------------------------------------------------------------ the policy at check time


def test_the_bundled_policy_warns_on_a_condition_that_does_not_compile(policy_set: Any) -> None:
    def workflow(condition: str) -> dict[str, Any]:
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "w", "namespace": "argo"},
            "spec": {
                "templates": [
                    {"name": "h", "http": {"url": "http://x", "successCondition": condition}}
                ]
            },
        }

    (violation,) = [
        v
        for v in policy_set.evaluate(workflow("response.statusCode ==")).violations
        if v.policy == "http-success-condition"
    ]
    assert violation.action.value == "Warn"
    assert violation.path == "spec.templates[0].http.successCondition"
    assert "unexpected end of expression (1:23)" in violation.message
    for fine in ("response.statusCode == 201", "now() > 0", "response.body == '{{x}}'"):
        verdict = policy_set.evaluate(workflow(fine))
        assert [v for v in verdict.violations if v.policy == "http-success-condition"] == []
