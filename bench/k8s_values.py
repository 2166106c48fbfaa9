"""A held-out-style check of the secret scan on Kubernetes/Argo values it was not tuned on.

Usage (from the repository root, with the project's venv):

    .venv/bin/python bench/k8s_values.py [--per-class 40] [--seed 1] [--show-errors]
    .venv/bin/python bench/k8s_values.py --repo /path/to/other/checkout   # compare code

Every value is generated here from a format definition (seeded), never taken from the
labelled corpus: everyday non-secrets of Kubernetes and Argo manifests (content hashes,
image digests, trace ids, ULIDs, UUIDs, generated object names, placeholders, auth
scheme words, base64 of configuration, hosts, URLs, numbers...) and secrets of many
providers written from their documented shapes. Each value is scanned as a Pod env
entry twice: under a realistic name and under a neutral one (`SETTING_<n>`), as the
corpus framings b and a. Printed: precision and recall per framing, and the classes
that are wrong. The classes are fixed in advance; thresholds are not tuned to them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AN = string.ascii_letters + string.digits
LD = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = AN + "+/"
B64URL = AN + "-_"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
K8S_RAND = "bcdfghjklmnpqrstvwxz2456789"
WORDS = [
    "web",
    "api",
    "worker",
    "gateway",
    "billing",
    "orders",
    "auth",
    "cache",
    "search",
    "ingest",
    "report",
    "sync",
]

Gen = Callable[[random.Random], tuple[str, str]]  # -> (realistic name, value)


def r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ------------------------------------------------------------------- non-secrets


def sri(rng: random.Random) -> tuple[str, str]:
    algorithm = rng.choice(["sha256", "sha384", "sha512"])
    digest = hashlib.new(algorithm, rng.randbytes(64)).digest()
    return rng.choice(["SCRIPT_INTEGRITY", "ASSET_SRI", "integrity"]), f"{algorithm}-{b64(digest)}"


def go_sum(rng: random.Random) -> tuple[str, str]:
    return rng.choice(["GO_MODULE_SUM", "GOSUM_H1"]), "h1:" + b64(rng.randbytes(32))


def hex_checksum(rng: random.Random) -> tuple[str, str]:
    n = rng.choice([32, 40, 64, 128])
    name = rng.choice(["ARCHIVE_SHA256", "BINARY_MD5", "checksum", "FILE_DIGEST", "TARBALL_SHA512"])
    return name, r(rng, HEX, n)


def image_digest(rng: random.Random) -> tuple[str, str]:
    repo = f"registry.example.com/{rng.choice(WORDS)}/{rng.choice(WORDS)}"
    return rng.choice(
        ["IMAGE", "SIDECAR_IMAGE", "EXECUTOR_IMAGE"]
    ), f"{repo}@sha256:{r(rng, HEX, 64)}"


def traceparent(rng: random.Random) -> tuple[str, str]:
    return "TRACEPARENT", f"00-{r(rng, HEX, 32)}-{r(rng, HEX, 16)}-0{rng.choice('01')}"


def trace_id(rng: random.Random) -> tuple[str, str]:
    return rng.choice(["TRACE_ID", "OTEL_TRACE_ID", "PARENT_SPAN"]), r(
        rng, HEX, rng.choice([32, 16])
    )


def ulid(rng: random.Random) -> tuple[str, str]:
    ms = int(time.time() * 1000) - rng.randrange(0, 3 * 365 * 86_400_000)
    head = ""
    for _ in range(10):
        head = CROCKFORD[ms % 32] + head
        ms //= 32
    return rng.choice(["REQUEST_ID", "EVENT_ULID", "RUN_ID"]), head + r(rng, CROCKFORD, 16)


def uuid4(rng: random.Random) -> tuple[str, str]:
    h = r(rng, HEX, 32)
    value = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"
    return rng.choice(["INSTANCE_UID", "CORRELATION_ID", "TENANT"]), value


def generated_name(rng: random.Random) -> tuple[str, str]:
    base = "-".join(rng.sample(WORDS, rng.randrange(1, 3)))
    parts = [base]
    if rng.random() < 0.6:
        parts.append(r(rng, K8S_RAND, rng.randrange(8, 11)))
    parts.append(r(rng, K8S_RAND, 5))
    return rng.choice(["POD_NAME", "HOSTNAME", "JOB_NAME", "ARGO_NODE"]), "-".join(parts)


def placeholder(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(["API_TOKEN", "DB_PASSWORD", "CLIENT_SECRET", "SLACK_TOKEN"])
    key = name.lower().replace("_", "-")
    value = rng.choice(
        [
            f"<your-{key}>",
            "REPLACE_ME",
            "changeme",
            f"${{{name}}}",
            f"$({name})",
            f"{{{{ .Values.{key.replace('-', '.')} }}}}",
            f"{{{{workflow.parameters.{key}}}}}",
            "x" * rng.randrange(8, 40),
            "set-me-in-vault",
            "fill-in-later",
            f"TODO_set_{key.replace('-', '_')}",
            "provide-via-helm-values",
        ]
    )
    return name, value


def scheme_word(rng: random.Random) -> tuple[str, str]:
    return rng.choice(["Authorization", "AUTH_HEADER", "AUTH_SCHEME"]), rng.choice(
        ["Bearer", "Basic", "Token"]
    )


def base64_config(rng: random.Random) -> tuple[str, str]:
    lines = [
        f"{rng.choice(['log_level', 'listen', 'region', 'mode'])}: {rng.choice(WORDS)}",
        f"port: {rng.randrange(1024, 65535)}",
        f"replicas: {rng.randrange(1, 9)}",
    ]
    text = "\n".join(rng.sample(lines, 3)) + "\n"
    if rng.random() < 0.5:
        text = json.dumps({"service": rng.choice(WORDS), "port": rng.randrange(1024, 65535)})
    return rng.choice(["APP_CONFIG_B64", "SETTINGS_BASE64", "config"]), b64(text.encode())


def ordinary(rng: random.Random) -> tuple[str, str]:
    return rng.choice(
        [
            ("SERVICE_HOST", f"{rng.choice(WORDS)}.{rng.choice(WORDS)}.svc.cluster.local"),
            ("UPSTREAM_URL", f"https://{rng.choice(WORDS)}.example.com/v1/{rng.choice(WORDS)}"),
            ("REPLICAS", str(rng.randrange(1, 100))),
            ("ENABLE_METRICS", rng.choice(["true", "false"])),
            ("CONFIG_PATH", f"/etc/{rng.choice(WORDS)}/config.yaml"),
            ("TIMEOUT", f"{rng.randrange(1, 90)}s"),
            ("APP_VERSION", f"v{rng.randrange(0, 9)}.{rng.randrange(0, 30)}.{rng.randrange(0, 9)}"),
        ]
    )


NON_SECRETS: dict[str, Gen] = {
    "sri": sri,
    "go-sum": go_sum,
    "hex-checksum": hex_checksum,
    "image-digest": image_digest,
    "traceparent": traceparent,
    "trace-id": trace_id,
    "ulid": ulid,
    "uuid": uuid4,
    "generated-name": generated_name,
    "placeholder": placeholder,
    "scheme-word": scheme_word,
    "base64-config": base64_config,
    "ordinary": ordinary,
}


# ----------------------------------------------------------------------- secrets


def jwt(rng: random.Random) -> tuple[str, str]:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(
        json.dumps({"sub": r(rng, LD, 12), "exp": rng.randrange(10**9, 2 * 10**9)}).encode()
    )
    return "SERVICE_JWT", f"{header}.{payload}.{b64url(rng.randbytes(32))}"


def pem_key(rng: random.Random) -> tuple[str, str]:
    body = b64(rng.randbytes(600))
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return "TLS_KEY", f"-----BEGIN PRIVATE KEY-----\n{lines}\n-----END PRIVATE KEY-----\n"


SECRETS: dict[str, Gen] = {
    "github": lambda g: ("GITHUB_TOKEN", "ghp_" + r(g, AN, 36)),
    "github-fine": lambda g: ("GH_PAT", "github_pat_" + r(g, AN + "_", 82)),
    "gitlab": lambda g: ("GITLAB_TOKEN", "glpat-" + r(g, AN + "-_", 20)),
    "slack": lambda g: (
        "SLACK_BOT_TOKEN",
        f"xoxb-{r(g, string.digits, 12)}-{r(g, string.digits, 13)}-{r(g, AN, 24)}",
    ),
    "aws-key-id": lambda g: (
        "AWS_ACCESS_KEY_ID",
        "AKIA" + r(g, string.ascii_uppercase + "234567", 16),
    ),
    "aws-secret": lambda g: ("AWS_SECRET_ACCESS_KEY", r(g, B64, 40)),
    "stripe": lambda g: ("STRIPE_SECRET_KEY", "sk_live_" + r(g, AN, 24)),
    "sendgrid": lambda g: ("SENDGRID_API_KEY", f"SG.{r(g, B64URL, 22)}.{r(g, B64URL, 43)}"),
    "npm": lambda g: ("NPM_TOKEN", "npm_" + r(g, AN, 36)),
    "google": lambda g: ("GOOGLE_API_KEY", "AIza" + r(g, B64URL, 35)),
    "anthropic": lambda g: ("ANTHROPIC_API_KEY", "sk-ant-api03-" + r(g, B64URL, 93) + "AA"),
    "vault": lambda g: ("VAULT_TOKEN", "hvs." + r(g, AN, 24)),
    "digitalocean": lambda g: ("DO_TOKEN", "dop_v1_" + r(g, HEX, 64)),
    "grafana-sa": lambda g: ("GRAFANA_TOKEN", f"glsa_{r(g, AN, 32)}_{r(g, HEX, 8)}"),
    "jwt": jwt,
    "pem": pem_key,
    "db-url": lambda g: ("DATABASE_URL", f"postgres://app:{r(g, AN, 18)}@db.prod.svc:5432/app"),
    "password": lambda g: ("DB_PASSWORD", r(g, AN + "!#%", 16)),
    "hex-api-key": lambda g: ("API_KEY", r(g, HEX, 32)),
    "random-secret": lambda g: ("JWT_SIGNING_SECRET", r(g, B64, 44)),
    "slack-webhook": lambda g: (
        "SLACK_WEBHOOK_URL",
        f"https://hooks.slack.com/services/T{r(g, string.ascii_uppercase + string.digits, 8)}/B{r(g, string.ascii_uppercase + string.digits, 10)}/{r(g, AN, 24)}",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose webhook to test")
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo))
    from webhook.secrets import scan_value

    rng = random.Random(args.seed)
    rows: list[tuple[str, bool, str, str]] = []
    for label, gens in ((False, NON_SECRETS), (True, SECRETS)):
        for cls, gen in gens.items():
            for _ in range(args.per_class):
                name, value = gen(rng)
                rows.append((cls, label, name, value))
    print(f"{len(rows)} values ({sum(r[1] for r in rows)} secrets), code from {args.repo}")
    for framing in ("realistic name", "neutral name"):
        tp = fp = fn = tn = 0
        wrong: dict[str, int] = {}
        for i, (cls, secret, name, value) in enumerate(rows):
            flagged = bool(
                scan_value(value, name if framing == "realistic name" else f"SETTING_{i}")
            )
            tp += secret and flagged
            fn += secret and not flagged
            fp += (not secret) and flagged
            tn += (not secret) and not flagged
            if flagged != secret:
                wrong[cls] = wrong.get(cls, 0) + 1
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        print(
            f"{framing:15} TP {tp:4} FP {fp:4} FN {fn:4} TN {tn:4}  "
            f"precision {precision:.3f} recall {recall:.3f}"
        )
        if wrong:
            print("  wrong by class: " + ", ".join(f"{k} {v}" for k, v in sorted(wrong.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
