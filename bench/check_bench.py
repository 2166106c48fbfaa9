"""Benchmark: `plugin-guard check` over 1,000 plugin ConfigMaps (run by hand).

    .venv/bin/python bench/check_bench.py [--count 1000] [--rounds 5]

Builds N distinct plugin ConfigMaps from the real hello plugin (each with its own
name, port and server script, so no cache can answer for another), writes them to a
temporary folder, and reports:
- engine: `PolicySet.evaluate` per ConfigMap with all default policies, cold (the
  container parse cache cleared before every resource) and warm (the webhook's case
  when the same plugin is applied again);
- end to end: the real `plugin-guard check DIR` process (start-up, file reading, YAML
  parsing, evaluation, JSON output), per resource.

Medians over rounds; the machine is shared, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT.parent / "shared" / "corpora" / "argo-plugins" / "hello"
sys.path.insert(0, str(ROOT))

from webhook.executor_plugin import _parse_container_cached, load_plugin_dir, to_configmap  # noqa: E402
from webhook.manifests import load_documents  # noqa: E402
from webhook.policy import EvaluationContext, load_policies  # noqa: E402


def make_configmaps(count: int, folder: Path) -> None:
    plugin = load_plugin_dir(HELLO)
    assert plugin.container is not None
    script = plugin.container["args"][0]
    for index in range(count):
        plugin.name = f"hello-{index:04d}"
        container = dict(plugin.container)
        container["name"] = f"hello-{index:04d}"
        container["ports"] = [{"containerPort": 20000 + index}]
        container["args"] = [script.replace("4355", str(20000 + index))]
        plugin.container = container
        cm = to_configmap(plugin)
        (folder / f"{plugin.name}.json").write_text(json.dumps(cm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_configmaps(args.count, folder)
        documents = load_documents([str(folder)])
        policies = load_policies()
        context = EvaluationContext(namespace="argo")
        print(f"{len(documents)} plugin ConfigMaps, {len(policies.policies)} policies")

        cold, warm, cli = [], [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for document in documents:
                _parse_container_cached.cache_clear()
                policies.evaluate(document.obj, context)
            cold.append((time.perf_counter() - start) / len(documents))

            for document in documents:  # fill the cache (512 entries: keep within it)
                policies.evaluate(document.obj, context)
            sample = documents[-256:]
            start = time.perf_counter()
            for _ in range(4):
                for document in sample:
                    policies.evaluate(document.obj, context)
            warm.append((time.perf_counter() - start) / (4 * len(sample)))

            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "webhook", "check", "-o", "json", str(folder)],
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.perf_counter() - start
            summary = json.loads(result.stdout)["summary"]
            assert summary["resources"] == len(documents), summary
            cli.append(elapsed / len(documents))

        def ms(values: list[float]) -> str:
            return f"{statistics.median(values) * 1e3:.3f} ms"

        print(f"engine, cold parse : {ms(cold)} per ConfigMap (median of {args.rounds})")
        print(f"engine, warm cache : {ms(warm)} per ConfigMap")
        print(f"check CLI, end to end: {ms(cli)} per ConfigMap (includes process start-up)")
        print(
            f"check-bench: cold_ms={statistics.median(cold) * 1e3:.3f} "
            f"warm_ms={statistics.median(warm) * 1e3:.3f} cli_ms={statistics.median(cli) * 1e3:.3f}"
        )


if __name__ == "__main__":
    main()
