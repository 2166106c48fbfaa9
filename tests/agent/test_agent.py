"""The in-cluster agent against a fake API server (real `kubernetes` client, real
loopback HTTP) and scripted plugin servers: spec sections 5 and 6 as the issue."""

from __future__ import annotations

import time
from typing import Any

from webhook.agent import PATCH_FAILED_MESSAGE
from webhook.dispatch import ManualScheduler

HELLO_TASK = {"name": "hello", "inputs": {}, "outputs": {}, "plugin": {"hello": {}}}
HELLO_NODE = {
    "phase": "Succeeded",
    "message": "Hello template!",
    "outputs": {"parameters": [{"name": "foo", "value": "bar"}]},
}


def test_hello_task_is_patched_on_the_status_subresource_as_a_merge_patch(
    kube, run_agent, plugin_server, hello_reply, until
):
    """Spec 6.5: `{"status": {"nodes": {...}}}`, merge patch, `/status`; spec 7.1: the
    workflow metadata is the TaskSet's name/namespace and the Workflow uid."""
    plugin = plugin_server((200, hello_reply))
    created = kube.create("wf-hello", {"wf-hello-1": HELLO_TASK}, workflow_uid="0b5e-wf-uid")
    run_agent(plugin)
    until(lambda: kube.nodes("wf-hello"))
    assert kube.nodes("wf-hello") == {"wf-hello-1": HELLO_NODE}
    [patch] = kube.requests_matching("PATCH")
    assert (
        patch.path == "/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtasksets/wf-hello/status"
    )
    assert patch.headers["content-type"] == "application/merge-patch+json"
    # the version of the object the result belongs to: a precondition (409 if it changed)
    assert patch.body == {
        "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
        "status": {"nodes": {"wf-hello-1": HELLO_NODE}},
    }
    [call] = plugin.calls
    assert call.body == {
        "workflow": {"metadata": {"name": "wf-hello", "namespace": "argo", "uid": "0b5e-wf-uid"}},
        "template": HELLO_TASK,
    }
    assert call.headers["Authorization"] == "Bearer tok"


def test_results_of_one_tick_go_in_one_patch_per_taskset(kube, run_agent, plugin_server, until):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    tasks = {f"n{i}": HELLO_TASK for i in range(5)}
    kube.create("wf-a", tasks)
    kube.create("wf-b", {"m": HELLO_TASK}, workflow_uid="wf-uid-2")
    run_agent(plugin, patch_interval=0.5)
    until(lambda: len(kube.nodes("wf-a")) == 5 and kube.nodes("wf-b"))
    patches = kube.requests_matching("PATCH")
    assert sorted(p.path.split("/")[-2] for p in patches) == ["wf-a", "wf-b"]
    assert len(next(p for p in patches if "/wf-a/" in p.path).body["status"]["nodes"]) == 5


def test_tasks_added_later_run_once_and_repeated_events_run_nothing_twice(
    kube, run_agent, plugin_server, until
):
    """Spec 6.2: each task runs once, however many watch events repeat it."""
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    kube.create("wf", {"a": HELLO_TASK})
    agent = run_agent(plugin)
    until(lambda: "a" in kube.nodes("wf"))
    kube.update("wf", {"spec": {"tasks": {"b": {**HELLO_TASK, "name": "b"}}}})  # MODIFIED
    until(lambda: "b" in kube.nodes("wf"))
    for i in range(5):  # unrelated changes: every event carries both tasks again
        kube.update("wf", {"metadata": {"annotations": {"touch": str(i)}}})
    kube.update("wf", {"status": {"nodes": {"a": None, "b": None}}})  # not final any more
    until(lambda: agent.pool.skipped >= 2)
    agent.shutdown()
    names = [call.body["template"]["name"] for call in plugin.calls]
    assert sorted(names) == ["b", "hello"]


def test_a_node_already_final_in_status_is_not_run(kube, run_agent, plugin_server, until):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    kube.create(
        "wf",
        {"done": HELLO_TASK, "todo": HELLO_TASK},
        status={"nodes": {"done": {"phase": "Failed", "message": "earlier agent"}}},
    )
    run_agent(plugin)
    until(lambda: kube.nodes("wf").get("todo"))
    assert plugin.count == 1
    assert kube.nodes("wf")["done"] == {"phase": "Failed", "message": "earlier agent"}


def test_requeue_runs_the_same_task_again_until_it_succeeds(kube, run_agent, plugin_server, until):
    """Spec 6.6: Running + requeue is patched, then the same snapshot is sent again."""
    plugin = plugin_server(
        (200, {"node": {"phase": "Running", "message": "working"}, "requeue": "30s"}),
        (200, {"node": {"phase": "Succeeded", "message": "done"}}),
    )
    scheduler = ManualScheduler()
    kube.create("wf", {"n": HELLO_TASK})
    run_agent(plugin, scheduler=scheduler)
    until(lambda: kube.nodes("wf").get("n", {}).get("phase") == "Running")
    assert kube.nodes("wf")["n"] == {"phase": "Running", "message": "working"}
    kube.update("wf", {"metadata": {"annotations": {"again": "1"}}})  # considered: skipped
    until(lambda: scheduler.pending == 1)
    assert plugin.count == 1
    scheduler.advance(30)
    until(lambda: kube.nodes("wf")["n"]["phase"] == "Succeeded")
    assert plugin.count == 2
    assert plugin.calls[0].body == plugin.calls[1].body
    assert scheduler.delays == [30.0]


def test_completed_label_stops_serving_the_taskset(kube, run_agent, plugin_server, until):
    plugin = plugin_server((200, {"node": {"phase": "Running"}, "requeue": "5s"}))
    scheduler = ManualScheduler()
    kube.create("wf", {"n": HELLO_TASK})
    kube.create("wf-done", {"x": HELLO_TASK}, labels={"workflows.argoproj.io/completed": "true"})
    agent = run_agent(plugin, scheduler=scheduler)
    until(lambda: kube.nodes("wf").get("n"))
    kube.update(
        "wf",
        {
            "metadata": {"labels": {"workflows.argoproj.io/completed": "true"}},
            "spec": {"tasks": {"late": HELLO_TASK}},
        },
    )
    until(lambda: not agent.pool.remembered())
    scheduler.advance(60)  # the requeue fires, finds the TaskSet no longer served
    agent.shutdown()
    assert plugin.count == 1
    assert [c.body["workflow"]["metadata"]["name"] for c in plugin.calls] == ["wf"]


def test_a_deleted_taskset_is_forgotten(kube, run_agent, plugin_server, until):
    """Bounded memory: nothing of a deleted TaskSet stays in the agent."""
    plugin = plugin_server((200, {"node": {"phase": "Running"}, "requeue": "5s"}))
    scheduler = ManualScheduler()
    kube.create("wf", {"a": HELLO_TASK, "b": HELLO_TASK})
    agent = run_agent(plugin, scheduler=scheduler, patch_interval=3600)
    until(lambda: plugin.count == 2 and len(agent.patcher.pending().get("argo/wf", {})) == 2)
    assert agent.served() and agent.pool.remembered()
    kube.delete("wf")
    until(lambda: not agent.served())
    assert agent.pool.remembered() == 0
    assert agent.patcher.pending() == {}
    scheduler.advance(10)
    agent.shutdown()
    assert plugin.count == 2
    assert kube.requests_matching("PATCH") == []


def test_a_closed_watch_is_reopened_from_the_last_resource_version(
    kube, run_agent, plugin_server, until
):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    kube.create("wf", {"a": HELLO_TASK})
    agent = run_agent(plugin)
    until(lambda: kube.nodes("wf").get("a"))
    version = kube.get("wf")["metadata"]["resourceVersion"]  # after the agent's patch
    until(lambda: version in kube.sent_versions)
    kube.close_watches()
    until(lambda: len(_watches(kube)) == 2)
    kube.update("wf", {"spec": {"tasks": {"b": HELLO_TASK}}})
    until(lambda: kube.nodes("wf").get("b"))
    assert agent.lists == 1
    assert _watches(kube)[-1].query["resourceVersion"] == version


def test_410_gone_lists_again_and_forgets_what_vanished_meanwhile(
    kube, run_agent, plugin_server, until, agent_logs
):
    """Spec 6.1 + Kubernetes: an expired resourceVersion means list again, at once (other
    failures wait for the relist backoff, here far longer than the test)."""
    plugin = plugin_server((200, {"node": {"phase": "Running"}, "requeue": "5s"}))
    kube.create("gone", {"a": HELLO_TASK})
    agent = run_agent(plugin, scheduler=ManualScheduler(), relist_backoff=(60.0, 60.0))
    until(lambda: kube.nodes("gone").get("a"))
    kube.compact()  # history lost: the deletion below is never seen as an event
    kube.delete("gone", watched=False)
    kube.create("new", {"b": HELLO_TASK}, workflow_uid="wf-uid-2")
    kube.compact()
    kube.close_watches()
    until(lambda: kube.nodes("new").get("b"))
    assert agent.lists == 2
    assert list(agent.served().values()) == ["argo/new"]
    assert "watch expired (410 Gone); listing again" in agent_logs.messages


def test_a_failing_list_is_retried_with_a_backoff(kube, run_agent, plugin_server, until):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    kube.fail(
        "GET", "/namespaces/argo/workflowtasksets", 500, "etcdserver: leader changed", times=2
    )
    kube.create("wf", {"n": HELLO_TASK})
    agent = run_agent(plugin)
    until(lambda: kube.nodes("wf").get("n"))
    assert agent.lists == 1
    assert len([r for r in kube.requests_matching("GET") if "watch" not in r.query]) == 3


def test_patch_500_is_retried_with_argos_backoff(kube, run_agent, plugin_server, sleeps, until):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded", "message": "ok"}}))
    kube.fail("PATCH", "/status", 500, "etcdserver: leader changed", times=2)
    kube.create("wf", {"n": HELLO_TASK})
    run_agent(plugin, sleeps=sleeps)
    until(lambda: kube.nodes("wf").get("n"))
    assert kube.nodes("wf") == {"n": {"phase": "Succeeded", "message": "ok"}}
    assert len(kube.requests_matching("PATCH")) == 3
    assert sleeps.delays == [1.0, 2.0]  # wait.Backoff{1s, x2}, jitter injected as 0


def test_a_non_transient_patch_failure_becomes_error_nodes(
    kube, run_agent, plugin_server, sleeps, hello_reply, until
):
    """Spec 6.5: every pending result -> Error with Argo's message, sent next tick."""
    plugin = plugin_server((200, hello_reply))
    kube.fail("PATCH", "/status", 500, "etcdserver: request is too large")
    kube.create("wf", {"a": HELLO_TASK, "b": HELLO_TASK})
    run_agent(plugin, sleeps=sleeps, patch_interval=0.3)
    until(lambda: len(kube.nodes("wf")) == 2)
    message = PATCH_FAILED_MESSAGE + "etcdserver: request is too large"
    assert message.startswith("HTTP request completed successfully but an error occurred")
    assert kube.nodes("wf") == {
        "a": {"phase": "Error", "message": message},
        "b": {"phase": "Error", "message": message},
    }
    assert sleeps.delays == []  # not retried within the tick


def test_a_forbidden_patch_is_not_retried_within_the_tick(
    kube, run_agent, plugin_server, sleeps, until
):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    kube.fail("PATCH", "/status", 403, 'cannot patch resource "workflowtasksets/status"')
    kube.create("wf", {"a": HELLO_TASK})
    run_agent(plugin, sleeps=sleeps)
    until(lambda: kube.nodes("wf").get("a"))
    assert kube.nodes("wf")["a"]["phase"] == "Error"
    assert 'cannot patch resource "workflowtasksets/status"' in kube.nodes("wf")["a"]["message"]
    assert sleeps.delays == []


def test_only_the_given_namespaces_are_served(kube, run_agent, plugin_server, until):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    for namespace in ("team-a", "team-b", "other"):
        kube.create("wf", {"n": HELLO_TASK}, namespace=namespace)
    agent = run_agent(plugin, namespaces=("team-a", "team-b"))
    until(lambda: kube.nodes("wf", namespace="team-a") and kube.nodes("wf", namespace="team-b"))
    agent.shutdown()
    assert kube.nodes("wf", namespace="other") == {}
    assert sorted(c.body["workflow"]["metadata"]["namespace"] for c in plugin.calls) == [
        "team-a",
        "team-b",
    ]


def test_all_namespaces(kube, run_agent, plugin_server, until):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    kube.create("wf", {"n": HELLO_TASK}, namespace="x")
    run_agent(plugin, namespaces=())
    kube.create("wf", {"n": HELLO_TASK}, namespace="y")
    until(lambda: kube.nodes("wf", namespace="x") and kube.nodes("wf", namespace="y"))
    assert {r.path for r in _watches(kube)} == {"/apis/argoproj.io/v1alpha1/workflowtasksets"}


def test_unknown_and_unsupported_task_types_become_error_nodes(
    kube, run_agent, plugin_server, until
):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    tasks = {
        "c": {"name": "c", "container": {"image": "alpine"}},
    }
    kube.create("wf", tasks)
    run_agent(plugin)
    until(lambda: len(kube.nodes("wf")) == 1)
    nodes = kube.nodes("wf")
    assert nodes["c"] == {
        "phase": "Error",
        "message": "error processing task: agent cannot execute: unknown task type: Container",
    }
    assert plugin.count == 0


def test_http_templates_are_run(kube, run_agent, plugin_server, until):
    """Spec 6.7: 2xx Succeeded with outputs.result; otherwise Failed with Argo's text."""
    target = plugin_server((200, b"pong"), (418, b"teapot"))
    tasks = {
        "ok": {
            "name": "ok",
            "http": {"url": f"{target.address}/ping", "method": "POST", "body": "hi"},
        },
    }
    kube.create("wf", tasks)
    run_agent()
    until(lambda: kube.nodes("wf").get("ok"))
    assert kube.nodes("wf")["ok"] == {"phase": "Succeeded", "outputs": {"result": "pong"}}
    kube.update(
        "wf", {"spec": {"tasks": {"bad": {"name": "bad", "http": {"url": target.address}}}}}
    )
    until(lambda: kube.nodes("wf").get("bad"))
    assert kube.nodes("wf")["bad"] == {
        "phase": "Failed",
        "message": "received non-2xx response code: 418",
        "outputs": {"result": "teapot"},
    }
    assert target.calls[0].body == "hi"


def test_shutdown_finishes_calls_in_flight_and_flushes(kube, run_agent, plugin_server, until):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded", "message": "slow"}}, 0.5))
    kube.create("wf", {"n": HELLO_TASK})
    agent = run_agent(plugin, patch_interval=3600)
    until(lambda: plugin.count == 1)
    agent.shutdown()  # the call is still in flight here
    assert kube.nodes("wf") == {"n": {"phase": "Succeeded", "message": "slow"}}


def _watches(kube: Any) -> list[Any]:
    return [r for r in kube.requests_matching("GET") if r.query.get("watch") == "true"]


def test_a_watch_closed_once_is_reopened_at_once(kube, run_agent, plugin_server, until):
    """A server may close a watch at any moment; the agent re-opens it without waiting
    (the relist backoff here is far longer than the test), and still sees new tasks."""

    def watches() -> int:
        return sum("watch" in r.query for r in kube.requests_matching("GET"))

    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    run_agent(plugin, relist_backoff=(60.0, 60.0))
    until(lambda: watches() == 1)
    time.sleep(0.2)  # let the stream start (the fake reads its generation on open)
    kube.close_watches()  # closed empty, well within a second of being opened
    until(lambda: watches() == 2, timeout=3.0)
    kube.create("late", {"n": HELLO_TASK})
    until(lambda: kube.nodes("late").get("n"), timeout=5.0)
