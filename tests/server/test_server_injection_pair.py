"""The validating pair through the real `plugin-guard serve --plugins DIR` (gunicorn,
TLS): the unmutated opted-in agent pod is denied at /validate with what is missing; the
pod /mutate patched is allowed; the patched pod with a sidecar removed is denied."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch

from .conftest import Server
from .test_server_mutate import agent_review, registry_dir


def test_validate_denies_an_opted_in_agent_pod_the_mutation_skipped(
    start_server: Any, tmp_path: Path, plugin_corpus: Path
) -> None:
    plugins = registry_dir(tmp_path, plugin_corpus)
    server: Server = start_server(["--plugins", str(plugins), "--workers", "1"])
    client = server.client()

    skipped = agent_review()
    status, answer = client.post_json("/validate", skipped)
    assert status == 200
    response = answer["response"]
    assert response["uid"] == skipped["request"]["uid"]
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "[agent-pod-injected]" in message
    assert "reached validation without it" in message
    assert "hello-executor-plugin" in message

    review = agent_review()
    status, answer = client.post_json("/mutate", review)
    assert status == 200
    ops = json.loads(base64.b64decode(answer["response"]["patch"]))
    mutated = copy.deepcopy(review)
    mutated["request"]["object"] = jsonpatch.apply_patch(
        copy.deepcopy(review["request"]["object"]), ops
    )
    status, answer = client.post_json("/validate", mutated)
    assert status == 200
    assert answer["response"]["allowed"] is True, answer

    undone = copy.deepcopy(mutated)
    undone["request"]["uid"] = "3c6d0f0e-2d4b-4f0a-9a55-0e7b9d1f2a01"
    spec = undone["request"]["object"]["spec"]
    spec["containers"] = [c for c in spec["containers"] if c["name"] != "slack-executor-plugin"]
    status, answer = client.post_json("/validate", undone)
    assert status == 200
    assert answer["response"]["allowed"] is False
    assert "slack-executor-plugin is missing" in answer["response"]["status"]["message"]
