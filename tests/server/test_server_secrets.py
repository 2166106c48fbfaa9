"""No secret value in any answer or log line of the REAL server (gunicorn, TLS).

Every positive of the labelled secret corpus (shared/corpora/secrets), framed as a Pod
env value and as a plugin sidecar env value, is sent to a running `plugin-guard serve`
as an AdmissionReview; the answers and the whole server log (gunicorn's lines included)
are searched for each value. tests/secrets/test_corpus.py does the same through the
Flask app in-process and through `check --output json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from bench import secrets_corpus
from tests.support.secrets_testkit import create_review, load_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_no_corpus_secret_in_real_server_answers_or_log(start_server: Any) -> None:
    bench = secrets_corpus
    # Values under 8 characters could appear in any text by chance (same rule as
    # tests/secrets/test_corpus.py).
    rows = [row for row in load_corpus() if row["secret"] and len(row["value"]) >= 8]
    assert len(rows) > 200
    server = start_server(["--workers", "1"])
    client = server.client()
    answers: list[str] = []
    denied_plugins = 0
    for framing in ("b", "d"):  # Pod env with a realistic name; plugin sidecar env
        for text in bench.build(rows, framing).values():
            obj = yaml.safe_load(text)
            status, _, body = client.request(
                "POST", "/validate", json.dumps(create_review(obj)).encode()
            )
            assert status == 200, body[:300]
            answer = body.decode()
            answers.append(answer)
            answers.append(json.dumps(json.loads(answer), ensure_ascii=False))  # \u escapes undone
            if framing == "d" and not json.loads(answer)["response"]["allowed"]:
                denied_plugins += 1
    client.close()
    server.stop()
    log = server.log()
    assert '"msg": "admission review"' in log  # the log really was written
    assert sum("value starts" in answer for answer in answers) > len(
        rows
    )  # findings shown, redacted
    everything = "\n".join([*answers, log])
    leaked = [row["value"][:4] + "…" for row in rows if row["value"] in everything]
    assert leaked == []
    # The plugin framing is Enforce: nearly every positive must have been denied.
    assert denied_plugins >= 0.9 * len(rows)
