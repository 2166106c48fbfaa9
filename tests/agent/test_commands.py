"""`plugin-guard agent` and `plugin-guard agent init` as users run them: real processes,
the fake API on loopback through a kubeconfig, real plugin servers (the corpus hello
plugin unmodified), SIGTERM, JSON logs, exit codes, and no token in any log line."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from webhook.dispatch.localplugin import LaunchSpec, LocalPlugin, port_in_use

CLI = [sys.executable, "-c", "from webhook.cli import main; main()"]
ALPHABET = set("bcdfghjklmnpqrstvwxz2456789")
API_TOKEN = "fake-api-bearer-token"
HELLO_TASK = {"name": "hello", "inputs": {}, "outputs": {}, "plugin": {"hello": {}}}
HELLO_NODE = {
    "phase": "Succeeded",
    "message": "Hello template!",
    "outputs": {"parameters": [{"name": "foo", "value": "bar"}]},
}

# The corpus server.py listens on 4355, which tests/dispatch's `dev` test also uses in
# parallel. The file runs unmodified; this shim only moves its listening port.
PORT_SHIM = """
import http.server, runpy, sys
port, path = int(sys.argv[1]), sys.argv[2]
class Server(http.server.HTTPServer):
    def __init__(self, address, handler, *args, **kwargs):
        super().__init__((address[0], port), handler, *args, **kwargs)
http.server.HTTPServer = Server
sys.argv = [path]
runpy.run_path(path, run_name="__main__")
"""


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST") and not k.startswith("ARGO_")
    }
    env["HOME"] = str(tmp_path)  # no ~/.kube/config
    env.update(extra)
    return env


def plugin_guard(
    *args: str, env: dict[str, str], **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, check=False, env=env, **kwargs
    )


class AgentProcess:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [*CLI, "agent", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._file,
        )

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._file.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._file.close()


@pytest.fixture
def agent_process(tmp_path: Path, kubeconfig: Path):  # type: ignore[no-untyped-def]
    started: list[AgentProcess] = []

    def start(*args: str, **env: str) -> AgentProcess:
        environment = clean_env(tmp_path, KUBECONFIG=str(kubeconfig), **env)
        process = AgentProcess(list(args), environment, tmp_path / f"agent{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_agent_serves_the_unmodified_corpus_hello_plugin(
    kube, agent_process, plugin_corpus, tmp_path, until
):
    """Argo's e2e hello example end to end: the real plugin checks its token from
    /var/run/argo/token; the TaskSet's node ends as the controller expects it."""
    port = free_port()
    assert not port_in_use(port)
    server = plugin_corpus / "hello" / "server.py"
    spec = LaunchSpec(
        "hello",
        [sys.executable, "-c", PORT_SHIM, str(port), str(server)],
        port=port,
        cwd=str(server.parent),
    )
    with LocalPlugin(spec, startup_timeout=10) as hello:
        token_file = tmp_path / "hello.token"
        token_file.write_text(hello.token)
        kube.create("hello-wf", {"hello-wf-3213": HELLO_TASK}, workflow_uid="9d1c")
        agent = agent_process(
            "--plugin",
            f"http://127.0.0.1:{port}#hello-executor-plugin=@{token_file}",
            "--namespace",
            "argo",
            "--patch-interval",
            "50ms",
            "--log-level",
            "debug",
        )
        until(lambda: kube.nodes("hello-wf"), timeout=20)
        assert agent.terminate() == 0
        plugin_log = hello.logs()
    assert kube.nodes("hello-wf") == {"hello-wf-3213": HELLO_NODE}
    [patch] = kube.requests_matching("PATCH")
    assert patch.path.endswith("/namespaces/argo/workflowtasksets/hello-wf/status")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.headers["authorization"] == f"Bearer {API_TOKEN}"
    lines = agent.lines()  # every stderr line is JSON
    messages = [line["msg"] for line in lines]
    for expected in ("Starting Agent", "TaskSet Event", "Sending result", "Patched TaskSet"):
        assert expected in messages
    start = next(line for line in lines if line["msg"] == "Starting Agent")
    assert start["taskWorkers"] == 16 and start["namespaces"] == ["argo"]
    assert start["plugins"] == ["hello-executor-plugin"]
    text = agent.log.read_text()
    assert hello.token not in text and API_TOKEN not in text
    assert "POST /api/v1/template.execute" in plugin_log  # the plugin really answered


def test_sigterm_finishes_the_call_in_flight_and_flushes_the_last_patch(
    kube, agent_process, plugin_server, until
):
    plugin = plugin_server((200, {"node": {"phase": "Succeeded", "message": "late"}}, 1.0))
    kube.create("wf", {"n": HELLO_TASK})
    agent = agent_process("--plugin", plugin.address, "-n", "argo", "--patch-interval", "1h")
    until(lambda: plugin.count == 1, timeout=20)
    assert kube.nodes("wf") == {}
    started = time.monotonic()
    assert agent.terminate() == 0
    # Not a speed bound: it finished the 1 s call in flight instead of waiting out the
    # 25 s --shutdown-timeout (generous, so a loaded machine does not fail it).
    assert time.monotonic() - started < 20
    assert kube.nodes("wf") == {"n": {"phase": "Succeeded", "message": "late"}}
    messages = [line["msg"] for line in agent.lines()]
    assert messages.index("Stopping Agent") < messages.index("Patched TaskSet")
    assert messages[-1] == "Agent stopped"


def test_plugins_the_argo_way_env_and_init_token_files(
    kube, agent_process, plugin_server, tmp_path, until
):
    """Spec 4.4/4.5: ARGO_PLUGIN_ADDRESSES/NAMES and /var/run/argo/<name>/token."""
    plugin = plugin_server((200, {"node": {"phase": "Succeeded"}}))
    token_dir = tmp_path / "argo"
    token_dir.mkdir()
    env = clean_env(tmp_path, ARGO_PLUGIN_NAMES='["hello-executor-plugin"]')
    init = plugin_guard("agent", "init", "--dir", str(token_dir), env=env)
    assert init.returncode == 0, init.stderr
    token = (token_dir / "hello-executor-plugin" / "token").read_text()
    kube.create("wf", {"n": HELLO_TASK})
    agent = agent_process(
        "--token-dir",
        str(token_dir),
        "--patch-interval",
        "0.05",
        ARGO_PLUGIN_ADDRESSES=json.dumps([plugin.address]),
        ARGO_PLUGIN_NAMES='["hello-executor-plugin"]',
        ARGO_AGENT_TASK_WORKERS="3",
    )
    until(lambda: kube.nodes("wf"), timeout=20)
    assert agent.terminate() == 0
    assert plugin.calls[0].headers["Authorization"] == f"Bearer {token}"
    lines = agent.lines()
    assert next(x for x in lines if x["msg"] == "Starting Agent")["taskWorkers"] == 3
    loading = next(x for x in lines if x["msg"] == "loading token file for plugin")
    assert loading["plugin"] == "hello-executor-plugin"
    assert token not in agent.log.read_text()


def test_agent_init_writes_token_files_as_argoexec_does(tmp_path):
    env = clean_env(
        tmp_path, ARGO_PLUGIN_NAMES='["hello-executor-plugin", "slack-executor-plugin"]'
    )
    result = plugin_guard("agent", "init", "--dir", str(tmp_path), env=env, umask=0o077)
    assert result.returncode == 0, result.stderr
    tokens = []
    for name in ("hello-executor-plugin", "slack-executor-plugin"):
        folder = tmp_path / name
        token_file = folder / "token"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o770
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o440
        token = token_file.read_bytes().decode()
        assert len(token) == 32 and set(token) <= ALPHABET  # rand.String(32), no newline
        tokens.append(token)
    assert tokens[0] != tokens[1]
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(x["msg"], x["plugin"]) for x in lines] == [
        ("creating token file for plugin", "hello-executor-plugin"),
        ("creating token file for plugin", "slack-executor-plugin"),
    ]
    assert lines[0]["file"] == str(tmp_path / "hello-executor-plugin" / "token")
    assert not any(token in result.stderr + result.stdout for token in tokens)

    again = plugin_guard("agent", "init", "--dir", str(tmp_path), "hello-executor-plugin", env=env)
    assert again.returncode == 2
    error = again.stderr.strip().splitlines()[-1]
    assert error == f"error: cannot create {tmp_path / 'hello-executor-plugin'}: File exists"
    assert (tmp_path / "hello-executor-plugin" / "token").read_text() == tokens[0]


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    for line in lines[:-1]:  # JSON log lines may come first, e.g. "loading token file"
        assert json.loads(line)["level"] == "info", result.stderr
    assert lines[-1].startswith("error: ") and fragment in lines[-1], lines[-1]
    assert "Traceback" not in result.stderr


def test_no_cluster_configuration_is_a_one_line_error(tmp_path):
    result = plugin_guard("agent", "--plugin", "http://127.0.0.1:1", env=clean_env(tmp_path))
    assert_one_line_error(
        result,
        "no Kubernetes configuration: set KUBECONFIG, create ~/.kube/config, or run in a pod",
    )
    missing = clean_env(tmp_path, KUBECONFIG=str(tmp_path / "nope"))
    assert_one_line_error(
        plugin_guard("agent", env=missing), f"kubeconfig {tmp_path / 'nope'}: no such file"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Config\n")
    assert_one_line_error(
        plugin_guard("agent", env=clean_env(tmp_path, KUBECONFIG=str(broken))),
        f"kubeconfig {broken}",
    )


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        ((), {"ARGO_PLUGIN_ADDRESSES": "[oops"}, "Failed to unmarshal plugin addresses"),
        (
            (),
            {"ARGO_PLUGIN_ADDRESSES": '["http://localhost:4355"]', "ARGO_PLUGIN_NAMES": "[]"},
            "ARGO_PLUGIN_ADDRESSES has 1 entries but ARGO_PLUGIN_NAMES has 0",
        ),
        (
            ("--token-dir", "/nonexistent"),
            {
                "ARGO_PLUGIN_ADDRESSES": '["http://localhost:4355"]',
                "ARGO_PLUGIN_NAMES": '["hello"]',
            },
            "Failed to read token file /nonexistent/hello/token",
        ),
        (("-n", "a", "-A"), {}, "give --namespace or --all-namespaces, not both"),
        (
            ("--patch-interval", "10 s"),
            {},
            '--patch-interval: time: unknown unit " s" in duration "10 s"',
        ),
        (("--plugin", "localhost:4355"), {}, "--plugin"),
    ],
)
def test_bad_input_is_a_one_line_error(kubeconfig, tmp_path, args, env, fragment):
    environment = clean_env(tmp_path, KUBECONFIG=str(kubeconfig), **env)
    assert_one_line_error(plugin_guard("agent", *args, env=environment), fragment)
