"""Benchmark: what self-managed TLS costs (run by hand).

    .venv/bin/python bench/certificates_bench.py [--rounds 50]

Against the loopback fake API (tests/support/kubefake.py, real HTTP, the real
`webhook.kube` client), with the chart's two webhook configurations:
- the first reconcile: CA and serving certificate made, the Secret created, both
  caBundles written;
- a steady reconcile (nothing due): time and requests, what each replica pays every
  `--tls-reconcile-interval`;
- `renew()` from nothing: making an ECDSA P-256 CA and serving certificate.

Medians over rounds; the machine is shared, so compare within one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webhook.certificates import Material, RenewalPolicy, ServingFiles, renew, service_names  # noqa: E402
from webhook.certificates.controller import CertificateController, mutating, validating  # noqa: E402
from webhook.kube import Cluster  # noqa: E402


def _module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    kubefake = _module("bench_kubefake", ROOT / "tests" / "support" / "kubefake.py")
    fixtures = _module("bench_cert_fixtures", ROOT / "tests" / "certificates" / "conftest.py")
    with kubefake.FakeKubeApi() as api, tempfile.TemporaryDirectory() as tmp:
        fixtures.install_configurations(api)
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(api.kubeconfig(namespace=fixtures.NAMESPACE))
        controller = CertificateController(
            connect=lambda: Cluster.connect(str(kubeconfig)),
            namespace=fixtures.NAMESPACE,
            secret_name=fixtures.SECRET,
            names=service_names(fixtures.SERVICE, fixtures.NAMESPACE),
            webhooks=[validating(fixtures.VALIDATING), mutating(fixtures.MUTATING)],
            files=ServingFiles(Path(tmp) / "tls"),
        )
        controller._client()  # connect (kubeconfig, pool) outside the timings
        started = time.perf_counter()
        controller.reconcile_once()
        first = time.perf_counter() - started
        before = len(api.requests)
        steady = []
        for _ in range(rounds):
            started = time.perf_counter()
            controller.reconcile_once()
            steady.append(time.perf_counter() - started)
        methods = {r.method for r in api.requests[before:]}
        per_round = (len(api.requests) - before) / rounds
        controller.stop()
    now = dt.datetime.now(dt.UTC)
    names = service_names("guard", "argo-plugin-guard")
    making = []
    for _ in range(rounds):
        started = time.perf_counter()
        renew(Material(), names, now, RenewalPolicy())
        making.append(time.perf_counter() - started)
    print(f"first reconcile (create + 2 caBundle writes): {first * 1000:.1f} ms")
    print(
        f"steady reconcile: median {statistics.median(steady) * 1000:.2f} ms, "
        f"{per_round:.0f} requests ({', '.join(sorted(methods))})"
    )
    print(
        f"CA + serving certificate (renew from nothing): {statistics.median(making) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
