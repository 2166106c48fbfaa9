"""`plugin-guard agent` (a real process, the loopback fake API through a kubeconfig) runs
an HTTP template whose header comes from a Secret: the value is read from the TaskSet's
namespace with the agent's credentials, reaches the target server, and appears in no
node, message or log line; a missing key is a Failed node naming Secret and key."""

from __future__ import annotations

import base64

from .test_commands import AgentProcess, clean_env

SECRET_VALUE = "Bearer 9f1c-very-secret-api-token-4d2e"


def test_secret_header_reaches_the_server_and_nothing_else(
    kube, kubeconfig, plugin_server, tmp_path, until
):
    target = plugin_server((201, b'{"status": "created"}'))
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-token", "namespace": "argo"},
            "data": {"token": base64.b64encode(SECRET_VALUE.encode()).decode()},
        }
    )

    def task(name: str, key: str) -> dict:
        return {
            "name": name,
            "http": {
                "url": f"{target.address}/things",
                "method": "POST",
                "body": "{}",
                "headers": [
                    {
                        "name": "Authorization",
                        "valueFrom": {"secretKeyRef": {"name": "api-token", "key": key}},
                    }
                ],
                "successCondition": 'response.statusCode == 201 && fromJSON(response.body).status == "created"',
            },
        }

    kube.create("wf", {"ok": task("ok", "token"), "nokey": task("nokey", "missing")})
    env = clean_env(tmp_path, KUBECONFIG=str(kubeconfig))
    agent = AgentProcess(
        ["-n", "argo", "--patch-interval", "50ms", "--log-level", "debug"],
        env,
        tmp_path / "agent.log",
    )
    try:
        until(lambda: len(kube.nodes("wf")) == 2, timeout=30)
        assert agent.terminate() == 0
    finally:
        agent.kill()
    nodes = kube.nodes("wf")
    assert nodes["ok"] == {"phase": "Succeeded", "outputs": {"result": '{"status": "created"}'}}
    assert nodes["nokey"] == {
        "phase": "Failed",
        "message": "http.headers[0] (Authorization): secret 'api-token' does not have the key "
        "'missing'",
    }
    assert target.count == 1  # the task without its header was never sent
    assert target.calls[0].headers["Authorization"] == SECRET_VALUE
    reads = kube.requests_matching("GET", "/api/v1/namespaces/argo/secrets/api-token")
    assert len(reads) == 2
    assert SECRET_VALUE not in agent.log.read_text()
    assert SECRET_VALUE not in str(kube.objects("workflowtasksets"))
