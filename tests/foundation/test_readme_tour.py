"""The README's tour shows real output: re-run its commands and compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()


def test_check_output_in_the_tour_is_what_check_prints() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "check", "examples/typo-plugin-configmap.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) >= 8
    assert [line for line in lines if line not in README] == []


def test_denied_review_in_the_tour_is_what_the_webhook_answers() -> None:
    from webhook.admission import validate
    from webhook.policy import load_policies

    review = json.loads((REPO_ROOT / "examples" / "review-risky-plugin.json").read_text())
    response = validate(review, evaluate=load_policies().evaluate).review["response"]
    assert response["allowed"] is False
    shown = json.dumps(response["status"]["message"], ensure_ascii=False)[1:-1]
    # The README shows the start of the message and elides the rest with "...".
    first_lines = shown.split("\\n")[:4]
    assert "\\n".join(first_lines) in README
    for warning in response["warnings"]:
        assert warning in README
