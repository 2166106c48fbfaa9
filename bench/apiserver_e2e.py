"""End-to-end admission latency through a real kube-apiserver (docs/performance.md).

Starts the tests' control plane (etcd + kube-apiserver on loopback, tests/e2e), then
creates plugin ConfigMaps through the API server with N concurrent clients, a fixed
count per phase, twice: without any webhook, then with the chart's webhooks registered
and pointed at a real `plugin-guard serve` on loopback (failurePolicy Fail). Each client
keeps one HTTPS connection and POSTs the ConfigMap as the admin; the latency is the
client's, from sending the request to reading the API server's answer. Prints p50, p90,
p99 and mean per phase and the added latency (with minus without).

    .venv/bin/python bench/apiserver_e2e.py [--clients 8] [--count 400] [--workers 2]

Needs the tier's binaries (`make e2e-assets`, docs/e2e.md) and helm (`make test`).
Bounded: each phase stops at --deadline seconds whatever the count reached.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.e2e.assets import find_assets, missing_message  # noqa: E402
from tests.e2e.controlplane import ADMIN, ControlPlane  # noqa: E402
from tests.e2e.guard import USERS, GuardServer, installed, wait_for_webhook  # noqa: E402

CORPUS_HELLO = (
    REPO_ROOT.parent / "shared/corpora/argo-plugins/hello/hello-executor-plugin-configmap.yaml"
)


def plugin_body(name: str) -> bytes:
    """The corpus hello plugin (allowed, one Warn), renamed."""
    import yaml

    doc = yaml.safe_load(CORPUS_HELLO.read_text())
    doc["metadata"] = {
        "name": name,
        "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
    }
    return json.dumps(doc).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def run_phase(
    plane: ControlPlane, namespace: str, clients: int, count: int, deadline: float, tag: str
) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    headers = {"Authorization": f"Bearer {ADMIN.token}", "Content-Type": "application/json"}
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = iter(range(count))
    stop_at = time.monotonic() + deadline

    def client() -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", plane.port, context=context, timeout=30)
        try:
            while time.monotonic() < stop_at:
                with lock:
                    number = next(issued, None)
                if number is None:
                    return
                body = plugin_body(f"{tag}-{number}-{uuid.uuid4().hex[:6]}-executor-plugin")
                started = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status == 201:
                        latencies.append(elapsed * 1000)
                    else:
                        errors.append(f"{response.status} {payload[:200]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline + 30)
    wall = time.monotonic() - started
    return {
        "ok": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": wall,
        "rps": len(latencies) / wall if wall else 0.0,
        "p50": percentile(latencies, 50) if latencies else float("nan"),
        "p90": percentile(latencies, 90) if latencies else float("nan"),
        "p99": percentile(latencies, 99) if latencies else float("nan"),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


def show(name: str, result: dict[str, Any]) -> None:
    print(
        f"{name:<16} n={result['ok']:<5} errors={result['errors']:<3} "
        f"rps={result['rps']:7.1f}  p50={result['p50']:6.2f} ms  p90={result['p90']:6.2f} ms  "
        f"p99={result['p99']:6.2f} ms  mean={result['mean']:6.2f} ms",
        flush=True,
    )
    if result["first_error"]:
        print(f"  first error: {result['first_error']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--count", type=int, default=400, help="creates per phase")
    parser.add_argument("--warmup", type=int, default=40, help="creates before each phase")
    parser.add_argument("--workers", type=int, default=2, help="plugin-guard serve workers")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per phase")
    args = parser.parse_args()

    assets = find_assets()
    if assets.missing():
        print(missing_message(assets, "cannot run"), file=sys.stderr)
        return 2
    plane = ControlPlane(assets, USERS).start()
    server: GuardServer | None = None
    try:
        print(
            f"kube-apiserver v{plane.server_version()} + etcd on loopback; "
            f"{args.clients} clients, {args.count} ConfigMap creates per phase",
            flush=True,
        )
        for ns in ("bench-without", "bench-with"):
            plane.kubectl("create", "namespace", ns, check=True)
        run_phase(plane, "bench-without", args.clients, args.warmup, args.deadline, "warm")
        without = run_phase(
            plane, "bench-without", args.clients, args.count, args.deadline, "plain"
        )
        show("without webhook", without)

        server = GuardServer(plane, workers=args.workers)
        with installed(plane, server):
            probe = json.loads(plugin_body("probe-executor-plugin"))
            probe["data"] = {}
            wait_for_webhook(plane, probe, "default")
            run_phase(plane, "bench-with", args.clients, args.warmup, args.deadline, "warm")
            with_hook = run_phase(
                plane, "bench-with", args.clients, args.count, args.deadline, "hooked"
            )
        show("with webhook", with_hook)
        reviews = len(server.reviews())
        print(
            f"added by the webhook: p50 {with_hook['p50'] - without['p50']:+.2f} ms, "
            f"p99 {with_hook['p99'] - without['p99']:+.2f} ms, "
            f"mean {with_hook['mean'] - without['mean']:+.2f} ms "
            f"({reviews} reviews answered by plugin-guard serve, {args.workers} worker(s))"
        )
        failed = without["errors"] + with_hook["errors"]
        short = without["ok"] < args.count or with_hook["ok"] < args.count
        return 1 if failed or short else 0
    finally:
        if server is not None:
            server.stop()
        plane.stop()


if __name__ == "__main__":
    sys.exit(main())
