"""`plugin-guard execute` and `plugin-guard dev` as users run them: real processes, real
loopback sockets, the real hello, slack and python plugins from the shared corpus
(unmodified), and the exit-code/JSON contract of DESIGN.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-c", "from webhook.cli import main; main()"]


def plugin_guard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie has already exited


WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: demo
spec:
  entrypoint: main
  arguments:
    parameters: [{name: greeting, value: hi}]
  templates:
    - name: main
      steps: [[{name: call, template: hello, arguments: {parameters: [{name: who, value: "{{workflow.parameters.greeting}} there"}]}}]]
    - name: hello
      inputs:
        parameters: [{name: who}]
      plugin:
        hello: {text: "{{inputs.parameters.who}} from {{workflow.name}}"}
    - name: build
      container: {image: alpine}
"""


# --------------------------------------------------------------------------- execute


def test_execute_prints_one_json_line_per_plugin_template_and_exits_0(scripted, steps, tmp_path):
    """DESIGN.md contract; spec 7.1: parameters are substituted before sending."""
    plugin = scripted(
        steps.Reply(
            body={"node": {"phase": "Succeeded", "message": "ok", "outputs": {"result": "1"}}}
        )
    )
    result = plugin_guard(
        "execute", "--plugin", f"{plugin.address}=tok", str(write(tmp_path / "wf.yaml", WORKFLOW))
    )
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {
            "template": "hello",
            "node": {"phase": "Succeeded", "message": "ok", "outputs": {"result": "1"}},
            "requeue": None,
        }
    ]
    (request,) = plugin.requests
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.body["workflow"]["metadata"]["name"] == "demo"
    assert request.body["template"]["plugin"] == {"hello": {"text": "hi there from demo"}}
    assert request.body["template"]["inputs"]["parameters"] == [
        {"name": "who", "value": "hi there"}
    ]


def test_execute_exits_1_when_a_node_did_not_succeed(scripted, steps, tmp_path):
    plugin = scripted(steps.Reply(body={"node": {"phase": "Running"}, "requeue": "30s"}))
    template = write(tmp_path / "t.yaml", "name: bare\nplugin: {hello: {}}\n")
    result = plugin_guard("execute", "--plugin", plugin.address, str(template))
    assert result.returncode == 1
    assert json_lines(result.stdout) == [
        {
            "template": "bare",
            "node": {"phase": "Running", "message": "", "outputs": None},
            "requeue": "30s",
        }
    ]


def test_execute_follow_honours_requeues_until_final(scripted, steps, tmp_path):
    """spec 6.6 through `--follow`: called again after the requeue (10 ms here)."""
    plugin = scripted(
        steps.Reply(body={"node": {"phase": "Running", "message": "1/2"}, "requeue": "10ms"}),
        steps.Reply(body={"node": {"phase": "Succeeded", "message": "2/2"}}),
    )
    template = write(tmp_path / "t.json", json.dumps({"name": "bare", "plugin": {"x": {}}}))
    result = plugin_guard("execute", "--follow", "--plugin", plugin.address, str(template))
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[0]["node"]["message"] == "2/2"
    assert "requeue in 10ms" in result.stderr
    assert plugin.calls == 2


def test_execute_timeout_reports_unanswered_templates_as_pending(scripted, steps, tmp_path):
    plugin = scripted(steps.Hang(10))
    template = write(tmp_path / "t.yaml", "name: slow\nplugin: {x: {}}\n")
    result = plugin_guard("execute", "--timeout", "0.5", "--plugin", plugin.address, str(template))
    assert result.returncode == 1
    (line,) = json_lines(result.stdout)
    assert line["node"]["phase"] == "Pending"
    assert "timed out after 0.5s" in line["node"]["message"]


def test_execute_route_by_key_uses_the_url_fragment_as_the_plugin_name(scripted, steps, tmp_path):
    """Opt-in routing (#10304): `URL#NAME` names the plugin."""
    other = scripted(steps.Reply(403, ""))
    hello = scripted(steps.Reply(body={"node": {"phase": "Succeeded"}}))
    template = write(tmp_path / "t.yaml", "name: t\nplugin: {hello: {}}\n")
    plugins = ["--plugin", f"{other.address}#slack", "--plugin", f"{hello.address}#hello"]
    assert plugin_guard("execute", *plugins, str(template)).returncode == 1  # Argo's order
    routed = plugin_guard("execute", "--route-by-key", *plugins, str(template))
    assert routed.returncode == 0, routed.stdout
    assert (other.calls, hello.calls) == (1, 1)


def test_execute_reads_the_token_from_a_file(scripted, steps, tmp_path):
    plugin = scripted(steps.Reply(body={"node": {"phase": "Succeeded"}}))
    (tmp_path / "token").write_text("from-file")
    template = write(tmp_path / "t.yaml", "name: t\nplugin: {x: {}}\n")
    result = plugin_guard(
        "execute", "--plugin", f"{plugin.address}=@{tmp_path / 'token'}", str(template)
    )
    assert result.returncode == 0
    assert plugin.requests[0].headers["Authorization"] == "Bearer from-file"


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (
            "kind: Workflow\nspec: {templates: [{name: c, container: {image: a}}]}\n",
            ["no plugin template found"],
        ),
        ("name: t\nplugin: {a: {}, b: {}}\n", ["expected exactly one key, got 2"]),
        ("name: t\nplugin: 1\n", ["cannot unmarshal"]),
        (
            "name: t\ninputs: {parameters: [{name: p}]}\nplugin: {a: {}}\n",
            ["input parameter 'p' has no value"],
        ),
        ("a: [unclosed\n", ["invalid YAML"]),
    ],
)
def test_execute_bad_template_file_is_exit_2_with_one_line(
    unused_port, tmp_path, content, fragments
):
    template = write(tmp_path / "t.yaml", content)
    result = plugin_guard("execute", "--plugin", f"http://127.0.0.1:{unused_port}", str(template))
    assert_one_line_error(result, *fragments)


def test_execute_bad_plugin_url_and_missing_file_are_exit_2(tmp_path):
    template = write(tmp_path / "t.yaml", "name: t\nplugin: {a: {}}\n")
    assert_one_line_error(
        plugin_guard("execute", "--plugin", "localhost:4355", str(template)), "http://HOST:PORT"
    )
    assert_one_line_error(
        plugin_guard("execute", "--plugin", "http://127.0.0.1:1", str(tmp_path / "missing.yaml")),
        "cannot read",
    )


def test_execute_never_prints_the_token(unused_port, tmp_path):
    template = write(tmp_path / "t.yaml", "name: t\nplugin: {a: {}}\n")
    result = plugin_guard(
        "execute",
        "--timeout",
        "0.3",
        "--plugin",
        f"http://127.0.0.1:{unused_port}=TOPSECRET",
        str(template),
    )
    assert "TOPSECRET" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- dev: the real plugins


def test_dev_runs_the_real_hello_plugin_with_its_token_check(plugin_corpus):
    """Done-means of issue 6: the hello plugin, unmodified, reads /var/run/argo/token and
    answers 403 to any other token; the result is the seed's example."""
    host_argo = Path("/var/run/argo")
    existed = host_argo.exists()
    result = plugin_guard("dev", str(plugin_corpus / "hello"))
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {
            "template": "main",
            "node": {
                "phase": "Succeeded",
                "message": "Hello template!",
                "outputs": {"parameters": [{"name": "foo", "value": "bar"}]},
            },
            "requeue": None,
        }
    ]
    assert host_argo.exists() == existed  # the host's /var/run/argo was not touched
    assert "dev continues" in result.stderr  # policy findings are shown, not fatal


def test_dev_runs_the_real_python_plugin_with_the_example_workflow(plugin_corpus):
    plugin_dir = plugin_corpus / "python"
    result = plugin_guard("dev", str(plugin_dir), str(plugin_dir / "python-example-workflow.yaml"))
    assert result.returncode == 0, result.stderr
    (line,) = json_lines(result.stdout)
    assert line["template"] == "add-one"
    assert line["node"]["phase"] == "Succeeded"
    assert line["node"]["outputs"] == {"parameters": [{"name": "sum", "value": 2}]}


def test_dev_runs_the_real_slack_plugin_against_a_loopback_webhook(plugin_corpus, scripted, steps):
    """The slack plugin's URL comes from a Secret in the cluster; `--env` supplies it."""
    webhook = scripted(steps.Reply(200, "ok"))
    result = plugin_guard(
        "dev", str(plugin_corpus / "slack"), "--env", f"URL={webhook.address}/hook"
    )
    assert result.returncode == 0, result.stderr
    (line,) = json_lines(result.stdout)
    assert line["node"] == {"phase": "Succeeded", "message": "Slack message sent", "outputs": None}
    (sent,) = webhook.requests
    assert sent.body["text"].startswith("slack-example-")
    assert sent.body["text"].endswith(" finished!")


# --------------------------------------------------------------------------- dev: bad input


PLUGIN_YAML = """
apiVersion: argoproj.io/v1alpha1
kind: ExecutorPlugin
metadata:
  name: broken
spec:
  sidecar:
    container:
      name: broken-executor-plugin
      image: python:alpine
      command: [python, -c]
      ports: [{{containerPort: {port}}}]
      resources: {{requests: {{cpu: 10m, memory: 32Mi}}, limits: {{cpu: 20m, memory: 64Mi}}}}
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities: {{drop: [ALL]}}
        seccompProfile: {{type: RuntimeDefault}}
"""

SPAWN_AND_RECORD = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open("pids", "w").write(f"{os.getpid()} {child.pid}")
"""


def plugin_dir(tmp_path: Path, port: int, server: str) -> Path:
    write(tmp_path / "plugin.yaml", PLUGIN_YAML.format(port=port))
    write(tmp_path / "server.py", server)
    return tmp_path


def test_dev_plugin_that_never_opens_its_port_is_exit_2_and_leaves_no_process(
    tmp_path, unused_port
):
    directory = plugin_dir(tmp_path, unused_port, SPAWN_AND_RECORD + "time.sleep(300)\n")
    result = plugin_guard("dev", "--startup-timeout", "1.5", str(directory))
    assert_one_line_error(result, f"did not open port {unused_port} within 1.5s")
    pids = [int(p) for p in (directory / "pids").read_text().split()]
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids), "a plugin process survived"


def test_dev_plugin_that_exits_is_exit_2_with_its_last_output(tmp_path, unused_port):
    server = SPAWN_AND_RECORD + "print('cannot bind: boom'); sys.exit(3)\n"
    directory = plugin_dir(tmp_path, unused_port, server)
    result = plugin_guard("dev", str(directory))
    assert_one_line_error(result, "exited with code 3", "cannot bind: boom")
    pids = [int(p) for p in (directory / "pids").read_text().split()]
    assert not any(alive(pid) for pid in pids), "the plugin's child survived"


def test_dev_plugin_sees_its_token_and_the_hosts_run_directory(tmp_path, unused_port):
    """spec 4.5: /var/run/argo/token, 0440, 32 chars, no newline; the rest of the host's
    /var/run stays visible inside the namespace."""
    probe = f"""
    import json, os, stat
    from http.server import BaseHTTPRequestHandler, HTTPServer
    token = open("/var/run/argo/token").read()
    mode = stat.S_IMODE(os.stat("/var/run/argo/token").st_mode)
    seen = sorted(os.listdir("/var/run"))
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            ok = self.headers["Authorization"] == "Bearer " + token
            msg = json.dumps({{"len": len(token), "mode": oct(mode), "seen": seen}})
            body = json.dumps({{"node": {{"phase": "Succeeded" if ok else "Failed", "message": msg}}}})
            self.send_response(200); self.end_headers(); self.wfile.write(body.encode())
    HTTPServer(("127.0.0.1", {unused_port}), H).serve_forever()
    """
    directory = plugin_dir(tmp_path, unused_port, textwrap.dedent(probe))
    result = plugin_guard("dev", str(directory))
    assert result.returncode == 0, result.stderr
    facts = json.loads(json_lines(result.stdout)[0]["node"]["message"])
    assert facts["len"] == 32
    assert facts["mode"] == "0o440"
    host_entries = sorted(os.listdir("/var/run"))
    assert set(host_entries) | {"argo"} == set(facts["seen"])


def test_dev_without_plugin_yaml_is_exit_2(tmp_path):
    assert_one_line_error(plugin_guard("dev", str(tmp_path)), "plugin.yaml")


def test_dev_template_file_without_plugin_template_is_exit_2(tmp_path, unused_port):
    directory = plugin_dir(tmp_path, unused_port, SPAWN_AND_RECORD + "time.sleep(300)\n")
    template = write(
        tmp_path / "wf.yaml", "kind: Workflow\nspec: {templates: [{name: a, container: {}}]}\n"
    )
    assert_one_line_error(
        plugin_guard("dev", str(directory), str(template)), "no plugin template found"
    )
    assert not (directory / "pids").exists()  # checked before anything was started


def test_dev_port_already_in_use_is_exit_2(tmp_path, scripted):
    busy = scripted()
    directory = plugin_dir(tmp_path, busy.port, SPAWN_AND_RECORD)
    assert_one_line_error(
        plugin_guard("dev", str(directory)), f"port {busy.port} is already in use"
    )
