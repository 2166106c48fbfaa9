"""Dispatcher benchmark (issue 6): overhead per call over a raw HTTP client, and
throughput with 16 workers, both against the same local plugin.

The plugin is a separate process (a keep-alive `http.server` plugin answering every
template with Succeeded), so the dispatcher and the plugin do not share a GIL.

    .venv/bin/python bench/dispatch_bench.py [--calls 2000] [--tasks 3000]

Targets: overhead <= 2 ms per call; throughput >= 500 templates/s with 16 workers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from webhook.dispatch import (
    PluginClient,
    PluginEndpoint,
    PooledHTTPTransport,
    RequestsTransport,
    Task,
    TemplateExecutor,
    WorkerPool,
    WorkflowMeta,
)

PLUGIN_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
REPLY = json.dumps({"node": {"phase": "Succeeded", "message": "ok",
                             "outputs": {"parameters": [{"name": "foo", "value": "bar"}]}}}).encode()
class Plugin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes (see README)
    def log_message(self, *args): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Authorization") != "Bearer bench-token":
            self.send_response(403); self.send_header("Content-Length", "0"); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)
class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
server = Server(("127.0.0.1", 0), Plugin)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

WORKFLOW = WorkflowMeta("bench", "argo", "00000000-0000-0000-0000-000000000000")
TEMPLATE = {"name": "main", "plugin": {"hello": {}}, "inputs": {}, "outputs": {}}
ARGS = {"workflow": WORKFLOW.as_args(), "template": TEMPLATE}


def start_plugin() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PLUGIN_SERVER], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.01)
    raise RuntimeError("bench plugin did not start")


def per_call_ms(call: Callable[[], object], calls: int) -> float:
    for _ in range(100):  # warm up connections and caches
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def raw_client(port: int) -> Callable[[], object]:
    """The baseline: one persistent http.client connection, json.dumps/loads, nothing else."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(ARGS).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench-token"}

    def call() -> object:
        conn.request("POST", "/api/v1/template.execute", body=body, headers=headers)
        return json.loads(conn.getresponse().read())

    return call


def dispatcher(port: int, transport_name: str) -> Callable[[], object]:
    address = f"http://127.0.0.1:{port}"
    transport = (
        RequestsTransport(address) if transport_name == "requests" else PooledHTTPTransport(address)
    )
    client = PluginClient(PluginEndpoint(address, "bench-token", "hello"), transport=transport)
    executor = TemplateExecutor([client])

    def call() -> object:
        execution = executor.execute(WORKFLOW, TEMPLATE)
        assert execution.node.phase == "Succeeded", execution.node.message
        return execution

    return call


def throughput(port: int, tasks: int, workers: int) -> float:
    client = PluginClient(PluginEndpoint(f"http://127.0.0.1:{port}", "bench-token", "hello"))
    failures = []
    pool = WorkerPool(
        TemplateExecutor([client]),
        workers=workers,
        on_result=lambda r: r.node.phase != "Succeeded" and failures.append(r),
    )
    started = time.perf_counter()
    for i in range(tasks):
        pool.submit(Task(f"node-{i}", WORKFLOW, TEMPLATE))
    pool.wait_idle()
    elapsed = time.perf_counter() - started
    pool.close()
    if failures:
        raise RuntimeError(f"{len(failures)} templates failed: {failures[0].node.message}")
    return tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=16)
    options = parser.parse_args()
    proc, port = start_plugin()
    try:
        raw = per_call_ms(raw_client(port), options.calls)
        pooled = per_call_ms(dispatcher(port, "http.client"), options.calls)
        session = per_call_ms(dispatcher(port, "requests"), options.calls)
        print(f"raw http.client call (median of {options.calls}):   {raw:.3f} ms")
        print(
            f"dispatcher, http.client pool:             {pooled:.3f} ms  overhead {pooled - raw:+.3f} ms (target <= 2 ms)"
        )
        print(
            f"dispatcher, requests.Session:             {session:.3f} ms  overhead {session - raw:+.3f} ms"
        )
        rate = throughput(port, options.tasks, options.workers)
        print(
            f"throughput, {options.workers} workers, {options.tasks} templates: "
            f"{rate:.0f} templates/s (target >= 500)"
        )
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
