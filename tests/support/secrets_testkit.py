"""Fixtures for the inline-secret tests: the labelled corpus and token generators.

Test tokens are generated (a vendor prefix plus a random body of the documented
alphabet and length), never pasted: see `make_token`.
"""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]  # tests/support/ -> the repository
SECRETS_CORPUS = REPO_ROOT.parent / "shared" / "corpora" / "secrets" / "dev.jsonl"

ALPHABETS = {
    "an": string.ascii_letters + string.digits,
    "al": string.ascii_letters,
    "ld": string.ascii_lowercase + string.digits,
    "ud": string.ascii_uppercase + string.digits,
    "u2": string.ascii_uppercase + "234567",
    "h": "0123456789abcdef",
    "d": string.digits,
    "b": string.ascii_letters + string.digits + "_-",
    "b64": string.ascii_letters + string.digits + "+/",
    "bech": "qpzry9x8gf2tvdw0s3jn54khce6mua7l".upper(),
}
_FIELD = re.compile(r"\{(\w+):(\d+)\}")


def make_token(template: str, seed: int | str = 0, fill: str | None = None) -> str:
    """`ghp_{an:36}` -> `ghp_` + 36 random letters/digits. With `fill`, every random
    character is `fill` instead (a placeholder of the same shape)."""
    rng = random.Random(f"{template}/{seed}")

    def field(m: re.Match[str]) -> str:
        alphabet, count = ALPHABETS[m.group(1)], int(m.group(2))
        if fill is not None:
            return fill * count
        return "".join(rng.choice(alphabet) for _ in range(count))

    return _FIELD.sub(field, template)


def load_corpus() -> list[dict[str, Any]]:
    if not SECRETS_CORPUS.parents[2].is_dir():  # outside CI; CI fails in tests/conftest.py
        pytest.skip(f"needs {SECRETS_CORPUS} (shared/ is missing)")
    if not SECRETS_CORPUS.exists():
        pytest.fail(f"secrets corpus missing: {SECRETS_CORPUS} (expected shared/ beside the repo)")
    return [json.loads(line) for line in SECRETS_CORPUS.read_text("utf-8").splitlines() if line]


def create_review(obj: dict[str, Any]) -> dict[str, Any]:
    """The AdmissionReview the API server sends for a CREATE of `obj`."""
    import uuid

    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": obj["kind"]},
            "resource": {"group": "", "version": "v1", "resource": "x"},
            "operation": "CREATE",
            "namespace": obj["metadata"].get("namespace", "default"),
            "name": obj["metadata"]["name"],
            "object": obj,
        },
    }
