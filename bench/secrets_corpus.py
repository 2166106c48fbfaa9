"""Inline-secret detection: precision, recall, FPR and speed, ours vs detect-secrets 1.5.0.

Usage (from the repository root, with the project's venv):

    .venv/bin/python bench/secrets_corpus.py                # in-process scan + detect-secrets
    .venv/bin/python bench/secrets_corpus.py --cli          # ours through `plugin-guard check`
    .venv/bin/python bench/secrets_corpus.py --no-baseline  # ours only

Corpus: `../shared/corpora/secrets/dev.jsonl` (override with --corpus). Following the
corpus README, each row is written as one manifest per framing:

  a. Pod env, neutral name (`SETTING_<id>`)     b. Pod env, `key_hint` (headline)
  c. ConfigMap `data: {<key_hint>: value}`       d. ExecutorPlugin ConfigMap, sidecar env

A row counts as flagged when our scan reports anything for its file (with --cli: any
`no-inline-secrets` violation in `plugin-guard check --output json DIR`), and for
detect-secrets when `detect-secrets scan --all-files --no-verify DIR` reports anything
in the file (run from the directory's parent: 1.5.0 silently skips paths outside its
working directory).

detect-secrets is never a project dependency: it is installed into its own venv,
`/tmp/ds-venv` by default (`--ds-venv`), created on first use with
`python3 -m venv /tmp/ds-venv && /tmp/ds-venv/bin/pip install detect-secrets==1.5.0`.

Speed, per manifest, in the same run:
  ours: read + YAML parse + scan of each file, and scan alone (median of --repeat runs);
  detect-secrets: `SecretsCollection().scan_file(path)` with default settings in its venv
  (the same work `detect-secrets scan` does per file, without process start-up).
Also the bench payloads a-c (`../shared/bench/payloads/`) as typical webhook objects.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webhook.secrets import default_config, scan  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "secrets" / "dev.jsonl"
DEFAULT_PAYLOADS = ROOT.parent / "shared" / "bench" / "payloads"
FRAMINGS = {
    "a": "Pod env, neutral name",
    "b": "Pod env, key_hint",
    "c": "ConfigMap, key_hint",
    "d": "ExecutorPlugin sidecar env",
}
DS_VERSION = "1.5.0"


# --------------------------------------------------------------------- manifests


def _scalar(value: str, indent: int) -> str:
    """A YAML scalar for `value`: double-quoted on one line, literal block if multi-line."""
    if "\n" not in value:
        return json.dumps(value)  # JSON strings are valid YAML double-quoted scalars
    pad = " " * indent
    keep = "+" if value.endswith("\n\n") else ("" if value.endswith("\n") else "-")
    lines = value.split("\n")
    if value.endswith("\n"):
        lines = lines[:-1]
    return f"|{keep}\n" + "\n".join(pad + line if line else "" for line in lines)


def pod_manifest(row_id: int, name: str, value: str) -> str:
    return (
        "apiVersion: v1\nkind: Pod\nmetadata:\n"
        f"  name: corpus-{row_id}\n  namespace: default\n"
        "spec:\n  containers:\n  - name: app\n    image: registry.example/app:1.0\n"
        f"    env:\n    - name: {name}\n      value: {_scalar(value, 8)}\n"
    )


def configmap_manifest(row_id: int, key: str, value: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: corpus-{row_id}\n  namespace: default\n"
        f"data:\n  {key}: {_scalar(value, 4)}\n"
    )


def plugin_manifest(row_id: int, key: str, value: str) -> str:
    # The sidecar container YAML, written as a person would: the env value quoted (or a
    # literal block), like the other framings.
    sidecar = (
        f"name: corpus-{row_id}\n"
        "image: registry.example/plugin:1.0\n"
        "ports:\n- containerPort: 4355\n"
        f"env:\n- name: {key}\n  value: {_scalar(value, 4)}\n"
        "resources:\n"
        "  requests: {cpu: 100m, memory: 32Mi}\n"
        "  limits: {cpu: 200m, memory: 64Mi}\n"
        "securityContext:\n"
        "  runAsNonRoot: true\n  runAsUser: 1000\n  allowPrivilegeEscalation: false\n"
        "  capabilities: {drop: [ALL]}\n  readOnlyRootFilesystem: true\n"
        "  seccompProfile: {type: RuntimeDefault}\n"
    )
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: corpus-{row_id}-executor-plugin\n  namespace: argo\n"
        "  labels:\n    workflows.argoproj.io/configmap-type: ExecutorPlugin\n"
        'data:\n  sidecar.automountServiceAccountToken: "false"\n'
        f"  sidecar.container: {_scalar(sidecar, 4)}\n"
    )


def build(rows: list[dict[str, Any]], framing: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for row in rows:
        rid, value, key = row["id"], row["value"], row["key_hint"]
        if framing == "a":
            out[rid] = pod_manifest(rid, f"SETTING_{rid}", value)
        elif framing == "b":
            out[rid] = pod_manifest(rid, key, value)
        elif framing == "c":
            out[rid] = configmap_manifest(rid, key, value)
        else:
            out[rid] = plugin_manifest(rid, key, value)
    return out


def write(directory: Path, manifests: Mapping[int, str]) -> dict[str, int]:
    directory.mkdir(parents=True, exist_ok=True)
    names: dict[str, int] = {}
    for rid, text in manifests.items():
        name = f"row-{rid:04d}.yaml"
        (directory / name).write_text(text, encoding="utf-8")
        names[name] = rid
    return names


# ------------------------------------------------------------------------ ours


def ours_in_process(directory: Path, names: Mapping[str, int]) -> tuple[set[int], list[str]]:
    flagged: set[int] = set()
    messages: list[str] = []
    for name, rid in names.items():
        obj = yaml.load((directory / name).read_text("utf-8"), Loader=yaml.CSafeLoader)
        findings = scan(obj)
        if findings:
            flagged.add(rid)
        messages.extend(f"{f.path} {f.message} {f!r}" for f in findings)
    return flagged, messages


def ours_cli(directory: Path, names: Mapping[str, int]) -> tuple[set[int], list[str]]:
    exe = ROOT / ".venv" / "bin" / "plugin-guard"
    proc = subprocess.run(
        [str(exe), "check", "--output", "json", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"plugin-guard check failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    flagged: set[int] = set()
    for result in report.get("results", []):
        rid = names.get(Path(result["file"]).name)
        if rid is None:
            continue
        if any(v.get("policy") == "no-inline-secrets" for v in result.get("violations", [])):
            flagged.add(rid)
    decoded = [json.dumps(report, ensure_ascii=False), proc.stdout, proc.stderr]
    return flagged, decoded


# -------------------------------------------------------------- detect-secrets


def ensure_ds_venv(venv: Path) -> Path:
    exe = venv / "bin" / "detect-secrets"
    python = venv / "bin" / "python"
    if exe.exists():
        return python
    print(f"creating {venv} with detect-secrets=={DS_VERSION} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"detect-secrets=={DS_VERSION}"],
        check=True,
    )
    return python


def ds_scan(venv: Path, directory: Path, names: Mapping[str, int]) -> set[int]:
    exe = venv / "bin" / "detect-secrets"
    proc = subprocess.run(
        [str(exe), "scan", "--all-files", "--no-verify", directory.name],
        cwd=directory.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(proc.stdout).get("results", {})
    return {names[Path(f).name] for f, hits in results.items() if hits and Path(f).name in names}


_DS_TIMER = r"""
import json, sys, time
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings
paths = json.loads(sys.stdin.read())
repeat = int(sys.argv[1])
with default_settings():
    SecretsCollection().scan_file(paths[0])  # warm up (plugin init)
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for p in paths:
            c = SecretsCollection()
            c.scan_file(p)
        best.append((time.perf_counter() - t0) / len(paths))
print(json.dumps(sorted(best)[len(best) // 2]))
"""


def ds_time(python: Path, paths: list[Path], repeat: int, cwd: Path) -> float:
    proc = subprocess.run(
        [str(python), "-c", _DS_TIMER, str(repeat)],
        input=json.dumps([str(p.relative_to(cwd)) for p in paths]),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.strip())


# ----------------------------------------------------------------------- speed


def ours_time(paths: list[Path], repeat: int) -> tuple[float, float]:
    """(read+parse+scan, scan only) median seconds per manifest."""
    full: list[float] = []
    scan_only: list[float] = []
    objs = [yaml.load(p.read_text("utf-8"), Loader=yaml.CSafeLoader) for p in paths]
    for _ in range(repeat):
        t0 = time.perf_counter()
        for p in paths:
            scan(yaml.load(p.read_text("utf-8"), Loader=yaml.CSafeLoader))
        full.append((time.perf_counter() - t0) / len(paths))
        t0 = time.perf_counter()
        for obj in objs:
            scan(obj)
        scan_only.append((time.perf_counter() - t0) / len(objs))
    return statistics.median(full), statistics.median(scan_only)


def time_object(
    obj: Mapping[str, Any],
    container: Mapping[str, Any] | None = None,
    seconds: float = 0.5,
    *,
    cold: bool = True,
) -> float:
    """Seconds per scan of one object; `container` is the pre-parsed plugin container,
    as the webhook passes it (the engine parses `sidecar.container` once per request).
    `cold` forgets the detector's remembered long-text hits before every scan, so the
    number is the cost of an object seen for the first time."""
    detector = default_config().detector()
    scan(obj, container_override=container)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            if cold:
                detector.forget()
            scan(obj, container_override=container)
        n += 100
    return (time.perf_counter() - t0) / n


def plugin_container(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    data = obj.get("data")
    if obj.get("kind") == "ConfigMap" and isinstance(data, Mapping):
        raw = data.get("sidecar.container")
        if isinstance(raw, str):
            parsed = yaml.load(raw, Loader=yaml.CSafeLoader)
            return parsed if isinstance(parsed, Mapping) else None
    return None


# --------------------------------------------------------------------- metrics


def metrics(rows: Iterable[dict[str, Any]], flagged: set[int]) -> dict[str, Any]:
    tp = fp = fn = tn = 0
    for row in rows:
        hit = row["id"] in flagged
        if row["secret"]:
            tp += hit
            fn += not hit
        else:
            fp += hit
            tn += not hit
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
    }


def recall_slices(rows: list[dict[str, Any]], flagged: set[int]) -> dict[str, str]:
    slices = {
        "literal": lambda r: r.get("origin") == "literal-test-case",
        "self-id": lambda r: r.get("self_identifying") is True,
        "not-self-id": lambda r: r.get("self_identifying") is False,
        "non-gitleaks": lambda r: not str(r.get("source", "")).startswith("gitleaks/"),
    }
    out = {}
    for name, pred in slices.items():
        pos = [r for r in rows if r["secret"] and pred(r)]
        got = sum(1 for r in pos if r["id"] in flagged)
        out[name] = f"{got}/{len(pos)}={got / len(pos):.3f}" if pos else "-"
    return out


def leaks(rows: list[dict[str, Any]], outputs: list[str]) -> list[int]:
    blob = "\n".join(outputs)
    return [r["id"] for r in rows if r["secret"] and len(r["value"]) >= 8 and r["value"] in blob]


# ------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--payloads", type=Path, default=DEFAULT_PAYLOADS)
    parser.add_argument("--ds-venv", type=Path, default=Path("/tmp/ds-venv"))
    parser.add_argument("--no-baseline", action="store_true", help="skip detect-secrets")
    parser.add_argument("--cli", action="store_true", help="ours via `plugin-guard check`")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the manifests here and keep them")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.corpus.read_text("utf-8").splitlines() if line]
    ds_python = None if args.no_baseline else ensure_ds_venv(args.ds_venv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="secrets-bench-"))
    print(
        f"corpus: {args.corpus} ({len(rows)} rows, "
        f"{sum(r['secret'] for r in rows)} secrets); manifests in {work}"
    )
    header = f"{'framing':<31} {'detector':<16} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4}  {'prec':>6} {'recall':>6} {'FPR':>6}"
    print(header)
    print("-" * len(header))
    all_paths: list[Path] = []
    slices: dict[str, dict[str, str]] = {}
    leaked: set[int] = set()
    for framing, label in FRAMINGS.items():
        directory = work / f"framing-{framing}"
        names = write(directory, build(rows, framing))
        all_paths.extend(sorted(directory / n for n in names))
        if args.cli:
            flagged, outputs = ours_cli(directory, names)
        else:
            flagged, outputs = ours_in_process(directory, names)
        leaked.update(leaks(rows, outputs))
        m = metrics(rows, flagged)
        print(_row(f"{framing}. {label}", "argo-plugin-guard", m))
        slices[framing] = recall_slices(rows, flagged)
        if ds_python is not None:
            ds_flagged = ds_scan(args.ds_venv, directory, names)
            print(_row("", f"detect-secrets {DS_VERSION}", metrics(rows, ds_flagged)))
            slices[framing + " (ds)"] = recall_slices(rows, ds_flagged)
    print("\nrecall slices:")
    for key, value in slices.items():
        print(f"  {key:<7} " + "  ".join(f"{k}={v}" for k, v in value.items()))
    print(f"\nleaks (secret values >= 8 chars found in our output): {sorted(leaked) or 'none'}")

    print("\nspeed per manifest (median of runs):")
    full, scan_only = ours_time(all_paths, args.repeat)
    print(
        f"  corpus manifests ({len(all_paths)}): ours read+parse+scan {full * 1e3:.4f} ms, "
        f"scan only {scan_only * 1e3:.4f} ms"
    )
    if ds_python is not None:
        ds = ds_time(ds_python, all_paths, max(1, args.repeat // 2), work)
        print(
            f"  corpus manifests: detect-secrets scan_file {ds * 1e3:.4f} ms "
            f"-> ours is {ds / full:.1f}x faster (read+parse+scan), {ds / scan_only:.1f}x (scan)"
        )
    payload_dir = work / "payloads"
    payload_dir.mkdir(exist_ok=True)
    for path in sorted(args.payloads.glob("[abcd]-*.json")):
        obj = json.loads(path.read_text("utf-8"))["request"]["object"]
        container = plugin_container(obj)
        ours = time_object(obj, container)
        warm = time_object(obj, container, cold=False)
        line = f"  payload {path.stem}: ours scan {ours * 1e3:.4f} ms (seen again: {warm * 1e3:.4f} ms)"
        if container is not None:
            line += f" (sidecar pre-parsed; {time_object(obj) * 1e3:.4f} ms parsing it too)"
        if ds_python is not None:
            target = payload_dir / f"{path.stem}.yaml"
            target.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
            reps = 3 if path.name.startswith("d-") else 50
            ds = ds_time(ds_python, [target], reps, work)
            line += f", detect-secrets {ds * 1e3:.3f} ms ({ds / ours:.0f}x)"
        print(line)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if leaked else 0


def _row(framing: str, detector: str, m: Mapping[str, Any]) -> str:
    return (
        f"{framing:<31} {detector:<16} {m['tp']:>4} {m['fp']:>4} {m['fn']:>4} {m['tn']:>4}  "
        f"{m['precision']:>6.3f} {m['recall']:>6.3f} {m['fpr']:>6.3f}"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
