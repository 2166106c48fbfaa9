"""Where a review's CPU goes, in-process (no TLS, no gunicorn): the webhook's share.

    .venv/bin/python bench/server_profile.py [-p a] [-n 2000] [--cprofile]

Times each stage of one /validate request for the bench payloads (../shared/bench/
payloads): JSON decode, policy evaluation, review core, JSON encode, metrics (in
prometheus_client multiprocess mode, as under `serve`), the log line; then the whole
WSGI call through the fast path and through Flask's routing. The stage numbers are
means over N iterations of the same body (the engine's caches are warm, as under the
load benchmark, which also repeats one body).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = ROOT.parent / "shared" / "bench" / "payloads"
NAMES = {
    "a": "a-plugin-configmap-compliant.json",
    "b": "b-plugin-configmap-violating.json",
    "c": "c-pod-agent-3-containers.json",
    "d": "d-configmap-large-200k.json",
}


def per_call(fn: Callable[[], Any], n: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--payload", action="append", choices=sorted(NAMES))
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--cprofile", action="store_true", help="print the top functions")
    args = parser.parse_args()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pg-prof-")
    sys.path.insert(0, str(ROOT))

    from webhook.server.app import create_app
    from webhook.server.config import ServerConfig
    from webhook.server.logs import ReviewLog
    from webhook.server.metrics import Metrics
    from webhook.server.services import Services
    from webhook.server.state import ServingState

    state = ServingState.preload(None)
    devnull = os.open(os.devnull, os.O_WRONLY)
    metrics = Metrics()
    review_log = ReviewLog(devnull)
    fast = ServerConfig(log_fd=devnull, reload_interval=0)
    routed = ServerConfig(log_fd=devnull, reload_interval=0, fast_path=False)
    apps = {
        "fast path": create_app(fast, Services.start(fast, state=state)),
        "flask routing": create_app(routed, Services.start(routed, state=state)),
    }
    print(f"policies: {len(state.policy_set.policy_ids)}  iterations: {args.n}")
    header = f"{'payload':8} {'bytes':>8} {'decode':>8} {'evaluate':>9} {'core':>6} {'encode':>7} {'metrics':>8} {'log':>5} {'fast path':>10} {'flask':>7}  (µs)"
    print(header)
    for pid in args.payload or ["a", "b", "c", "d"]:
        profile_payload(pid, args, state, metrics, review_log, apps)


def profile_payload(
    pid: str, args: argparse.Namespace, state: Any, metrics: Any, review_log: Any, apps: Any
) -> None:
    from webhook import admission

    raw = (PAYLOADS / NAMES[pid]).read_bytes()
    body = json.loads(raw)
    obj = body["request"]["object"]
    evaluate = state.policy_set.evaluate
    n = args.n if len(raw) < 100_000 else max(args.n // 20, 20)
    t_decode = per_call(lambda: json.loads(raw), n)
    t_eval = per_call(lambda: evaluate(obj), n)
    t_validate = per_call(lambda: admission.validate(body, evaluate=evaluate), n)
    outcome = admission.validate(body, evaluate=evaluate)
    t_encode = per_call(lambda: json.dumps(outcome.review), n)
    t_metrics = per_call(lambda: metrics.observe("validate", outcome, 0.001), n)
    t_log = per_call(lambda: review_log.write("validate", outcome, 0.001), n)
    wsgi: dict[str, float] = {}
    for name, app in apps.items():
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/validate",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "8443",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "https",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(raw)),
        }

        def call(app: Any = app, environ: dict[str, Any] = environ) -> None:
            env = dict(environ, **{"wsgi.input": io.BytesIO(raw), "wsgi.errors": sys.stderr})
            b"".join(app(env, lambda status, headers, exc_info=None: None))

        wsgi[name] = per_call(call, n)
    print(
        f"{pid:8} {len(raw):>8} {t_decode:>8.0f} {t_eval:>9.0f} {t_validate - t_eval:>6.0f} "
        f"{t_encode:>7.0f} {t_metrics:>8.1f} {t_log:>5.1f} {wsgi['fast path']:>10.0f} "
        f"{wsgi['flask routing']:>7.0f}"
    )
    if args.cprofile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(n):
            evaluate(obj)
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
