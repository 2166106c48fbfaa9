"""Conformance of the dispatcher with Argo's agent (spec sections 6 and 7), against
scripted plugin servers over real loopback sockets. Every test names the section it
checks. Retry sleeps are injected and recorded, never slept."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.dispatch import (
    NO_PLUGIN_MESSAGE,
    PluginCallError,
    PluginClient,
    PluginEndpoint,
    TemplateExecutor,
    WorkflowMeta,
)

WORKFLOW = WorkflowMeta(name="wf-abc", namespace="argo", uid="uid-123")
HELLO = {"name": "main", "plugin": {"hello": {}}, "inputs": {}}
RUNNING = {"node": {"phase": "Running", "message": "working"}}
SUCCEEDED = {"node": {"phase": "Succeeded", "message": "done", "outputs": {"result": "ok"}}}


def client(
    plugin: Any, sleep: Any, *, token: str = "tok", name: str = "", **kw: Any
) -> PluginClient:
    return PluginClient(
        PluginEndpoint(plugin.address, token, name), sleep=sleep, jitter=lambda: 0.0, **kw
    )


def run(clients: list[PluginClient], template: dict[str, Any] = HELLO, **kw: Any) -> Any:
    return TemplateExecutor(clients, **kw).execute(WORKFLOW, template)


# --------------------------------------------------------------- request (6.3, 7.1)


def test_request_is_post_with_bearer_token_and_execute_template_args(scripted, steps, no_sleep):
    """spec 6.3 Request, 7.1 ExecuteTemplateArgs."""
    plugin = scripted(steps.Reply(body=SUCCEEDED))
    result = run([client(plugin, no_sleep, token="s3cr3t-token")])
    assert result.node.phase == "Succeeded"
    (request,) = plugin.requests
    assert request.path == "/api/v1/template.execute"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer s3cr3t-token"
    assert request.body == {
        "workflow": {"metadata": {"name": "wf-abc", "namespace": "argo", "uid": "uid-123"}},
        "template": HELLO,
    }


def test_token_never_appears_in_repr(scripted, steps, no_sleep):
    """Never print a token: endpoints and clients show `***`."""
    plugin = scripted()
    assert "s3cr3t" not in repr(client(plugin, no_sleep, token="s3cr3t"))


# --------------------------------------------------------------- retries (6.3)


def test_503_is_retried_then_success(scripted, steps, no_sleep):
    """spec 6.3: 503 is transient; the next attempt follows a 1 s (+jitter) sleep."""
    plugin = scripted(steps.Reply(503, "warming up"), steps.Reply(body=SUCCEEDED))
    result = run([client(plugin, no_sleep)])
    assert result.node.phase == "Succeeded"
    assert plugin.calls == 2
    assert no_sleep.delays == [1.0]


def test_retry_schedule_is_1_2_4_8_seconds_plus_up_to_20_percent_jitter(scripted, steps, no_sleep):
    """spec 6.3: at most 5 attempts; sleeps 1, 2, 4, 8 s plus jitter in [0, 20%); the last
    transient error (the 503 body) becomes the Failed node's message."""
    plugin = scripted(steps.Reply(503, "still warming up"))
    c = PluginClient(PluginEndpoint(plugin.address), sleep=no_sleep, jitter=lambda: 0.999)
    result = run([c])
    assert plugin.calls == 5
    assert no_sleep.delays == pytest.approx([1.1998, 2.3996, 4.7992, 9.5984])
    assert (result.node.phase, result.node.message) == ("Failed", "still warming up")


def test_connection_refused_is_retried_until_the_plugin_comes_up(
    scripted, steps, make_sleep, unused_port
):
    """spec 6.3: "connection refused" is transient: a sidecar that starts late is
    reached on a later attempt."""
    late: list[Any] = []

    def start_after_two_sleeps(count: int) -> None:
        if count == 2:
            late.append(scripted(steps.Reply(body=SUCCEEDED), port=unused_port))

    sleep = make_sleep(start_after_two_sleeps)
    endpoint = PluginEndpoint(f"http://127.0.0.1:{unused_port}", "tok")
    result = run([PluginClient(endpoint, sleep=sleep, jitter=lambda: 0.0)])
    assert result.node.phase == "Succeeded"
    assert sleep.delays == [1.0, 2.0]
    assert late[0].calls == 1


def test_connection_refused_for_every_attempt_gives_gos_message(make_sleep, unused_port):
    """spec 6.3: after 5 attempts the last error, e.g. `... connect: connection refused`."""
    sleep = make_sleep()
    endpoint = PluginEndpoint(f"http://127.0.0.1:{unused_port}")
    result = run([PluginClient(endpoint, sleep=sleep)])
    assert result.node.phase == "Failed"
    assert result.node.message == (
        f'Post "http://127.0.0.1:{unused_port}/api/v1/template.execute": '
        f"dial tcp 127.0.0.1:{unused_port}: connect: connection refused"
    )
    assert len(sleep.delays) == 4


def test_timeout_is_transient_and_retried(scripted, steps, no_sleep):
    """spec 6.3, 7.3: a call that exceeds the client timeout (30 s in Argo; 0.2 s here)
    is retried like any transient error, 5 attempts in all."""
    plugin = scripted(steps.Hang(5.0))
    result = run([client(plugin, no_sleep, timeout=0.2)])
    assert plugin.calls == 5
    assert result.node.phase == "Failed"
    assert "Client.Timeout exceeded" in result.node.message


def test_connection_closed_without_reply_is_retried(scripted, steps, no_sleep):
    """spec 6.3: EOF / reset by peer are transient (a plugin whose handler crashed)."""
    plugin = scripted(steps.Drop(), steps.Reply(body=SUCCEEDED))
    result = run([client(plugin, no_sleep)])
    assert result.node.phase == "Succeeded"
    assert plugin.calls == 2


# --------------------------------------------------------------- status codes (6.3, 7.3)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, "boom", "500 Internal Server Error: boom"),
        (403, "", "403 Forbidden: "),
        (400, "bad template", "400 Bad Request: bad template"),
    ],
)
def test_other_status_is_fatal_with_status_and_body(
    scripted, steps, no_sleep, status, body, message
):
    """spec 6.3: any other status is `"<resp.Status>: <body>"`, not retried."""
    plugin = scripted(steps.Reply(status, body))
    result = run([client(plugin, no_sleep)])
    assert (result.node.phase, result.node.message) == ("Failed", message)
    assert plugin.calls == 1
    assert no_sleep.delays == []


def test_404_falls_through_and_the_plugin_is_never_called_again(scripted, steps, no_sleep):
    """spec 6.3: 404 marks the method invalid for that client for the rest of its life
    and counts as "not handled" (6.4: next plugin)."""
    unsupported = scripted(steps.Reply(404, "not found"))
    owner = scripted(steps.Reply(body=SUCCEEDED))
    clients = [client(unsupported, no_sleep), client(owner, no_sleep)]
    executor = TemplateExecutor(clients)
    for _ in range(3):
        assert executor.execute(WORKFLOW, HELLO).node.phase == "Succeeded"
    assert unsupported.calls == 1
    assert owner.calls == 3
    assert clients[0].is_unsupported("template.execute")


@pytest.mark.parametrize("body", ["{}", "null", " null\n", '{"unknown": 1}', '{"node": null}'])
def test_empty_object_and_null_mean_not_mine(scripted, steps, no_sleep, body):
    """spec 6.3 (200 row) and 6.4: `{}`, `null`, unknown fields leave the reply unset,
    so the next plugin is asked."""
    other = scripted(steps.Reply(body=body))
    owner = scripted(steps.Reply(body=SUCCEEDED))
    result = run([client(other, no_sleep), client(owner, no_sleep)])
    assert result.node.phase == "Succeeded"
    assert (other.calls, owner.calls) == (1, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "EOF"),
        ("<html>oops</html>", "invalid character '<' looking for beginning of value"),
        ('{"node": {"phase": "Succ', "unexpected EOF"),
    ],
)
def test_invalid_json_is_fatal_with_the_decode_error(scripted, steps, no_sleep, body, message):
    """spec 6.3 (200 row): decode errors are fatal; the node is Failed with the error."""
    plugin = scripted(steps.Reply(body=body))
    after = scripted(steps.Reply(body=SUCCEEDED))
    result = run([client(plugin, no_sleep), client(after, no_sleep)])
    assert (result.node.phase, result.node.message) == ("Failed", message)
    assert plugin.calls == 1
    assert after.calls == 0


def test_only_the_first_json_value_is_decoded(scripted, steps, no_sleep):
    """spec 6.3: `json.NewDecoder(body).Decode` reads one value; trailing bytes are ignored."""
    plugin = scripted(steps.Reply(body=b'{"node": {"phase": "Succeeded"}} trailing'))
    assert run([client(plugin, no_sleep)]).node.phase == "Succeeded"


# --------------------------------------------------------------- executor (6.4)


def test_fatal_error_from_the_first_plugin_stops_the_search(scripted, steps, no_sleep):
    """spec 6.4: an error stops the search; the remaining plugins are not tried."""
    broken = scripted(steps.Reply(403, ""))
    owner = scripted(steps.Reply(body=SUCCEEDED))
    result = run([client(broken, no_sleep), client(owner, no_sleep)])
    assert (result.node.phase, result.node.message) == ("Failed", "403 Forbidden: ")
    assert owner.calls == 0


def test_first_reply_with_a_node_wins(scripted, steps, no_sleep):
    """spec 6.4: the first reply with a node is the result; later plugins are not called."""
    first = scripted(steps.Reply(body=SUCCEEDED))
    second = scripted(steps.Reply(body=RUNNING))
    result = run([client(first, no_sleep), client(second, no_sleep)])
    assert result.node.message == "done"
    assert result.node.outputs == {"result": "ok"}
    assert second.calls == 0


def test_no_plugin_executed_the_template(scripted, steps, no_sleep):
    """spec 6.4 step 3: nobody answered with a node -> Failed, fixed message."""
    plugins = [scripted(steps.Reply(body="{}")), scripted(steps.Reply(404, ""))]
    result = run([client(p, no_sleep) for p in plugins])
    assert (result.node.phase, result.node.message) == ("Failed", NO_PLUGIN_MESSAGE)
    assert run([]).node.message == NO_PLUGIN_MESSAGE


def test_non_plugin_template_is_an_unknown_task_type(no_sleep):
    """spec 6.2: a template that is neither HTTP nor plugin -> Error."""
    result = run([], {"name": "c", "container": {"image": "alpine"}})
    assert result.node.phase == "Error"
    assert result.node.message == (
        "error processing task: agent cannot execute: unknown task type: Container"
    )


# --------------------------------------------------------------- requeue (6.4, 6.6)


@pytest.mark.parametrize(
    ("requeue", "seconds"), [("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0), ("1.5s", 1.5)]
)
def test_requeue_is_a_go_duration_string(scripted, steps, no_sleep, requeue, seconds):
    """spec 6.6: `requeue` is parsed with time.ParseDuration."""
    plugin = scripted(steps.Reply(body={**RUNNING, "requeue": requeue}))
    result = run([client(plugin, no_sleep)])
    assert (result.node.phase, result.requeue, result.requeue_seconds) == (
        "Running",
        requeue,
        seconds,
    )


@pytest.mark.parametrize(
    ("requeue", "message"),
    [
        (30, "json: cannot unmarshal number into Go value of type string"),
        ("30", 'time: missing unit in duration "30"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("soon", 'time: invalid duration "soon"'),
    ],
)
def test_requeue_that_is_not_a_duration_string_fails_the_node(
    scripted, steps, no_sleep, requeue, message
):
    """spec 6.6: a JSON number fails to decode; decode errors are fatal (Failed)."""
    plugin = scripted(steps.Reply(body={**RUNNING, "requeue": requeue}))
    result = run([client(plugin, no_sleep)])
    assert (result.node.phase, result.node.message, result.requeue) == ("Failed", message, None)


def test_succeeded_ignores_requeue(scripted, steps, no_sleep):
    """spec 6.4 (v3.4.7, TestAgentPluginExecuteTaskSet): Succeeded -> requeue 0."""
    plugin = scripted(steps.Reply(body={**SUCCEEDED, "requeue": "1h"}))
    result = run([client(plugin, no_sleep)])
    assert (result.node.phase, result.requeue, result.requeue_seconds) == ("Succeeded", None, 0.0)


def test_failed_keeps_its_requeue(scripted, steps, no_sleep):
    """spec 6.4, 6.6 edge case: only Succeeded suppresses a requeue."""
    plugin = scripted(steps.Reply(body={"node": {"phase": "Failed"}, "requeue": "10s"}))
    assert run([client(plugin, no_sleep)]).requeue == "10s"


def test_requeue_from_a_plugin_without_node_carries_over(scripted, steps, no_sleep):
    """spec 6.4 step 4 (quirk): one reply value is reused across plugins."""
    first = scripted(steps.Reply(body={"requeue": "5s"}))
    second = scripted(steps.Reply(body=RUNNING))
    result = run([client(first, no_sleep), client(second, no_sleep)])
    assert (result.node.phase, result.requeue) == ("Running", "5s")


# --------------------------------------------------------------- route by key (6.4 item 5, #10304)


def test_default_order_calls_every_plugin_in_sidecar_order(scripted, steps, no_sleep):
    """spec 6.4 item 5: no routing on the plugin key by default."""
    other = scripted(steps.Reply(body="{}"))
    hello = scripted(steps.Reply(body=SUCCEEDED))
    result = run(
        [
            client(other, no_sleep, name="slack-executor-plugin"),
            client(hello, no_sleep, name="hello-executor-plugin"),
        ]
    )
    assert result.node.phase == "Succeeded"
    assert (other.calls, hello.calls) == (1, 1)


def test_route_by_key_calls_the_named_plugin_only(scripted, steps, no_sleep):
    """Opt-in (#10304, PR #12705): the plugin named by the key, container name compared
    without the `-executor-plugin` suffix, is asked first; others are skipped if it answers."""
    other = scripted(steps.Reply(403, ""))  # would break the template in Argo's order
    hello = scripted(steps.Reply(body=SUCCEEDED))
    clients = [
        client(other, no_sleep, name="slack-executor-plugin"),
        client(hello, no_sleep, name="hello-executor-plugin"),
    ]
    result = run(clients, route_by_key=True)
    assert result.node.phase == "Succeeded"
    assert (other.calls, hello.calls) == (0, 1)


def test_route_by_key_falls_back_to_all_plugins(scripted, steps, no_sleep):
    """Opt-in routing: when the named plugin does not take it, every other plugin is
    tried in order (the named one is not asked twice)."""
    first = scripted(steps.Reply(body=SUCCEEDED))
    named = scripted(steps.Reply(body="{}"))
    clients = [client(first, no_sleep, name="a"), client(named, no_sleep, name="hello")]
    result = run(clients, route_by_key=True)
    assert result.node.phase == "Succeeded"
    assert (named.calls, first.calls) == (1, 1)


def test_a_fatal_reply_is_a_plugin_call_error_carrying_the_node_message(scripted, steps, no_sleep):
    """The public error of `PluginClient.call`: its text is what the node's message says."""
    plugin = scripted(steps.Reply(500, "boom"))
    with pytest.raises(PluginCallError, match=r"^500 Internal Server Error: boom$"):
        client(plugin, no_sleep).call("template.execute", {"workflow": {}, "template": HELLO})
    assert plugin.calls == 1
