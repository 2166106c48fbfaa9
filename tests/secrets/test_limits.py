"""The bounds on one scan (`webhook/secrets/limits.py`): what is reported when a limit is
reached, that nothing past it is lost silently, and that ordinary objects never reach one.

Values are made from their formats (a GitHub classic token is `ghp_` and 36 base62
characters; a random 40-character base62 string is what the entropy test exists for),
never copied from a corpus."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import pytest

from webhook.errors import ManifestError, PolicyLoadError
from webhook.manifests import expand_paths, parse_documents, read_source
from webhook.policy import Action, load_policies
from webhook.secrets import (
    SCAN_LIMIT_RULE,
    ScanConfig,
    ScanLimits,
    config_from_parameters,
    scan,
)

BASE62 = string.ascii_letters + string.digits


def _random(n: int, seed: str) -> str:
    return "".join(random.Random(seed).choices(BASE62, k=n))


def github_token(seed: str) -> str:
    return "ghp_" + _random(36, seed)


def pod(values: list[str]) -> dict[str, Any]:
    env = [{"name": f"SETTING_{i}", "value": value} for i, value in enumerate(values)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "app:1", "env": env}]},
    }


def limited(findings: int | None = None, judged: int | None = None) -> ScanConfig:
    return ScanConfig(limits=ScanLimits(findings=findings, judged_values=judged))


def test_the_findings_limit_stops_the_scan_and_says_where_first() -> None:
    obj = pod([github_token(str(i)) for i in range(150)])
    found = scan(obj, config=limited(findings=100))
    assert len(found) == 101
    first, rest = found[0], found[1:]
    assert first.is_limit and first.rule == SCAN_LIMIT_RULE
    assert first.path == "spec.containers[0].env[100].value"
    assert "more than 100 findings" in first.message and "limits.findings" in first.message
    assert [f.path for f in rest] == [f"spec.containers[0].env[{i}].value" for i in range(100)]
    assert {f.rule for f in rest} == {"github-token"}


def test_no_limit_finds_everything() -> None:
    obj = pod([github_token(str(i)) for i in range(150)])
    found = scan(obj, config=limited())
    assert len(found) == 150 and not any(f.is_limit for f in found)


def test_the_judged_values_limit_names_the_first_value_left_unjudged() -> None:
    values = [_random(40, f"r{i}") for i in range(20)]
    values[15] = github_token("still-found")  # a value-format rule needs no judgement
    found = scan(pod(values), config=limited(judged=10))
    limit = found[0]
    assert limit.is_limit and limit.path == "spec.containers[0].env[10].value"
    assert "limits.judgedValues" in limit.message
    by_path = {f.path: f.rule for f in found[1:]}
    assert by_path == {
        **{f"spec.containers[0].env[{i}].value": "high-entropy-string" for i in range(10)},
        "spec.containers[0].env[15].value": "github-token",
    }


def test_a_value_judged_in_part_is_not_remembered_for_the_next_scan() -> None:
    """Long values (512+ characters) are cached by the detector: one scanned with no
    judgement left must not leave its empty answer behind."""
    long_atom = _random(600, "long")
    obj = pod([long_atom])
    assert [f.rule for f in scan(obj, config=limited(judged=0))] == [SCAN_LIMIT_RULE]
    assert [f.rule for f in scan(obj, config=limited(judged=5))] == ["high-entropy-string"]


def test_a_list_item_limit_path_starts_at_the_list() -> None:
    item = pod([_random(40, f"i{i}") for i in range(3)])
    found = scan({"kind": "List", "items": [item]}, config=limited(judged=1))
    assert found[0].is_limit and found[0].path == "items[0].spec.containers[0].env[1].value"


def test_a_workflow_executor_plugin_is_scanned_before_its_templates() -> None:
    """The plugin's findings are the enforced ones: a findings limit reached in a long
    list of templates must not leave them out."""
    templates = [
        {"name": f"t{i}", "container": {"env": [{"name": "X", "value": github_token(f"t{i}")}]}}
        for i in range(50)
    ]
    plugin_env = [{"name": "Y", "value": github_token("plugin")}]
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {
            "templates": templates,
            "executorPlugins": [{"spec": {"sidecar": {"container": {"env": plugin_env}}}}],
        },
    }
    found = scan(workflow, config=limited(findings=10))
    assert found[0].is_limit
    assert found[1].path == "spec.executorPlugins[0].spec.sidecar.container.env[0].value"


def test_limits_come_from_the_policy_parameters() -> None:
    config = config_from_parameters({"limits": {"findings": 3, "judgedValues": 7}})
    assert config.limits == ScanLimits(findings=3, judged_values=7)
    assert config_from_parameters({}).limits == ScanLimits()


@pytest.mark.parametrize("limits", [{"findings": 0}, {"judgedValues": -1}, {"findigns": 5}])
def test_a_bad_limit_is_a_policy_load_error(tmp_path: Path, limits: dict[str, int]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: argo-plugin-guard/v1\nkind: Policy\nid: secrets\ndescription: d\n"
        "action: Warn\nmatch: {targets: [resource]}\nrules:\n"
        f"- check: inlineSecrets\n  parameters: {{limits: {limits}}}\n"
    )
    with pytest.raises(PolicyLoadError) as raised:
        load_policies(tmp_path)
    assert "limits" in str(raised.value)


def test_the_bundled_policy_reports_the_limit_as_a_short_warning() -> None:
    bundled = load_policies()
    obj = pod([github_token(str(i)) for i in range(120)])
    violations = [v for v in bundled.evaluate(obj).violations if v.policy == "no-inline-secrets"]
    assert len(violations) == 101
    limit = violations[0]
    assert limit.action is Action.WARN  # a Pod: the policy's own action
    assert limit.warning == "secret scan limit: not scanned from here: raise limits.findings"


def test_a_plugin_over_the_limit_is_denied() -> None:
    """In an executor plugin the limit finding takes `pluginAction` like any other."""
    bundled = load_policies()
    many = "\n".join(f"- {{name: S{i}, value: {github_token(str(i))}}}" for i in range(120))
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "many-executor-plugin",
            "namespace": "argo",
            "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
        },
        "data": {"sidecar.container": f"name: many\nimage: many:1\nenv:\n{many}\n"},
    }
    violations = [
        v for v in bundled.evaluate(configmap).violations if v.policy == "no-inline-secrets"
    ]
    assert violations[0].message.startswith("secret scan limit at data[sidecar.container]")
    assert violations[0].action is Action.ENFORCE


def test_no_real_plugin_or_review_reaches_a_limit(plugin_corpus: Path) -> None:
    checked = 0
    for path in expand_paths([str(plugin_corpus)]):
        try:
            objects = parse_documents(read_source(path), path)
        except ManifestError:  # the corpus holds a few files that are not objects
            continue
        for obj in objects:
            if isinstance(obj, dict):
                checked += 1
                assert not any(f.is_limit for f in scan(obj)), path
    assert checked >= 12
