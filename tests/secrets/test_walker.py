"""Where the detector looks in a manifest, the paths it reports, what it leaves alone,
and the `inlineSecrets` check (actions, exemptions)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import yaml

from tests.support.secrets_testkit import make_token
from webhook.policy.checks.inline_secrets import inline_secrets, prepare_secret_scan
from webhook.policy.model import Action, EvaluationContext, Target, TargetView
from webhook.secrets import SecretFinding, config_from_parameters, scan

TOKEN = make_token("ghp_{an:36}", "walker")
PASSWORD = make_token("{an:12}{d:2}", "walker-pw")


def paths(obj: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    return [(f.path, f.rule) for f in scan(obj, **kwargs)]


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": "registry.example/app:1.0", **extra}


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": list(containers), **spec},
    }


def test_pod_env_args_command_and_every_container_list() -> None:
    obj = pod(
        container(
            env=[
                {"name": "LOG_LEVEL", "value": "debug"},
                {"name": "GH", "value": TOKEN},
                {"name": "DB_PASSWORD", "value": PASSWORD},
                {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            args=["--verbose", "--token", PASSWORD, f"--api-key={PASSWORD}"],
            command=["sh", "-c", f"curl -u admin:{PASSWORD} https://x && echo {TOKEN}"],
        ),
        initContainers=[container(env=[{"name": "API_TOKEN", "value": PASSWORD}])],
        ephemeralContainers=[container(args=[TOKEN])],
    )
    assert paths(obj) == [("metadata.annotations", "x") for _ in ()] + [
        ("spec.initContainers[0].env[0].value", "named-credential"),
        ("spec.containers[0].env[1].value", "github-token"),
        ("spec.containers[0].env[2].value", "named-credential"),
        ("spec.containers[0].command[2]", "github-token"),
        ("spec.containers[0].args[2]", "named-credential"),
        ("spec.containers[0].args[3]", "credential-flag"),
        ("spec.ephemeralContainers[0].args[0]", "github-token"),
    ]


def test_workload_pod_templates() -> None:
    template = {
        "metadata": {"annotations": {"api-token": PASSWORD}},
        "spec": pod(container(env=[{"name": "T", "value": TOKEN}]))["spec"],
    }
    for kind, wrap in [
        ("Deployment", lambda t: {"template": t}),
        ("StatefulSet", lambda t: {"template": t}),
        ("DaemonSet", lambda t: {"template": t}),
        ("ReplicaSet", lambda t: {"template": t}),
        ("Job", lambda t: {"template": t}),
        ("CronJob", lambda t: {"jobTemplate": {"spec": {"template": t}}}),
    ]:
        obj = {"kind": kind, "metadata": {"name": "w"}, "spec": wrap(copy.deepcopy(template))}
        prefix = "spec.jobTemplate.spec.template" if kind == "CronJob" else "spec.template"
        assert paths(obj) == [
            (f"{prefix}.metadata.annotations.api-token", "named-credential"),
            (f"{prefix}.spec.containers[0].env[0].value", "github-token"),
        ], kind


def test_argo_workflow_templates() -> None:
    spec = {
        "arguments": {"parameters": [{"name": "db-password", "value": PASSWORD}]},
        "templates": [
            {"name": "c", "container": container(env=[{"name": "T", "value": TOKEN}])},
            {
                "name": "s",
                "script": container(source=f"import os\nAPI_KEY = '{PASSWORD}'\nprint(1)\n"),
            },
            {
                "name": "h",
                "http": {
                    "url": f"https://bot:{PASSWORD}@hooks.internal/notify",
                    "headers": [
                        {"name": "Authorization", "value": f"Bearer {make_token('{an:40}')}"},
                        {"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "s"}}},
                    ],
                },
            },
            {"name": "p", "plugin": {"slack": {"channel": "ops", "token": TOKEN}}},
            {"name": "i", "inputs": {"parameters": [{"name": "token", "default": PASSWORD}]}},
            {
                "name": "st",
                "steps": [
                    [
                        {
                            "name": "a",
                            "arguments": {"parameters": [{"name": "pw", "value": PASSWORD}]},
                        }
                    ]
                ],
            },
        ],
    }
    expected = [
        ("spec.arguments.parameters[0].value", "named-credential"),
        ("spec.templates[0].container.env[0].value", "github-token"),
        ("spec.templates[1].script.source", "credential-assignment"),
        ("spec.templates[2].http.url", "url-credentials"),
        ("spec.templates[2].http.headers[0].value", "authorization-header"),
        ("spec.templates[3].plugin.slack.token", "github-token"),
        ("spec.templates[4].inputs.parameters[0].default", "named-credential"),
        ("spec.templates[5].steps[0][0].arguments.parameters[0].value", "named-credential"),
    ]
    for kind in ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate"):
        assert paths({"kind": kind, "spec": spec}) == expected, kind
    cron = {"kind": "CronWorkflow", "spec": {"workflowSpec": spec}}
    assert paths(cron) == [(p.replace("spec.", "spec.workflowSpec.", 1), r) for p, r in expected]


def test_script_source_line_is_reported() -> None:
    obj = {
        "kind": "Workflow",
        "spec": {
            "templates": [
                {"name": "s", "script": container(source=f"a = 1\nb = 2\nTOKEN = '{TOKEN}'\n")}
            ]
        },
    }
    (finding,) = scan(obj)
    assert finding.line == 3
    assert "(line 3)" in finding.message


def plugin_configmap(env_value: str, script: str = "print('hi')") -> dict[str, Any]:
    sidecar = {
        "name": "hello",
        "image": "python:3.12-alpine",
        "args": [script],
        "ports": [{"containerPort": 4355}],
        "env": [{"name": "SLACK_TOKEN", "value": env_value}],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "hello-executor-plugin",
            "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": f'{{"token": "{TOKEN}"}}'
            },
        },
        "data": {
            "sidecar.automountServiceAccountToken": "false",
            "sidecar.container": yaml.safe_dump(sidecar),
        },
    }


def test_plugin_configmap_sidecar_env_and_server_script() -> None:
    script = f'import os\nHEADERS = {{"Authorization": "Bearer {make_token("{an:40}")}"}}\n'
    obj = plugin_configmap(TOKEN, script)
    expected = [
        ("data[sidecar.container].env[0].value", "github-token"),
        ("data[sidecar.container].args[0]", "authorization-header"),
    ]
    assert paths(obj) == expected  # parses the YAML string itself
    parsed = yaml.safe_load(obj["data"]["sidecar.container"])
    assert paths(obj, container_override=parsed) == expected  # or reuses the engine's parse
    assert all(f.in_plugin for f in scan(obj))
    assert "sidecar container" in scan(obj)[0].message


def test_unparseable_sidecar_is_scanned_as_text() -> None:
    obj = plugin_configmap(TOKEN)
    obj["data"]["sidecar.container"] = f"env: [{{name: T, value: {TOKEN}}}\n  - : :"
    assert paths(obj) == [("data[sidecar.container]", "github-token")]


def test_plugin_yaml_manifest() -> None:
    obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ExecutorPlugin",
        "metadata": {"name": "hello"},
        "spec": {"sidecar": {"container": container(env=[{"name": "TOKEN", "value": TOKEN}])}},
    }
    assert paths(obj) == [("spec.sidecar.container.env[0].value", "github-token")]


def test_configmap_data_binary_data_and_annotations() -> None:
    obj = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "annotations": {"example.com/api-key": PASSWORD, "team": "ops"}},
        "data": {
            "application.properties": f"db.url=jdbc:x\ndb.password={PASSWORD}\n",
            "DB_PASSWORD": PASSWORD,
            "log-level": "info",
        },
        "binaryData": {
            "config.env": base64.b64encode(f"TOKEN={TOKEN}\n".encode()).decode(),
            "logo.png": base64.b64encode(bytes(range(256))).decode(),
        },
    }
    assert paths(obj) == [
        ("metadata.annotations[example.com/api-key]", "named-credential"),
        ("data[application.properties]", "credential-assignment"),
        ("data.DB_PASSWORD", "named-credential"),
        ("binaryData[config.env]", "github-token"),
    ]


def test_secrets_and_references_are_never_reported() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"TOKEN": TOKEN},
        "data": {"password": PASSWORD},
    }
    assert scan(secret) == []
    obj = pod(
        container(
            env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}}],
            envFrom=[{"secretRef": {"name": "s"}}],
        )
    )
    assert scan(obj) == []


def test_last_applied_configuration_is_skipped_by_default_only() -> None:
    obj = plugin_configmap("$(SLACK_TOKEN)")
    assert scan(obj) == []
    config = config_from_parameters({"skipAnnotations": []})
    assert paths(obj, config=config) == [
        ("metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]", "github-token")
    ]


def test_exempt_key_names_and_allowed_values() -> None:
    obj = pod(
        container(env=[{"name": "LEGACY_TOKEN", "value": TOKEN}, {"name": "PW", "value": PASSWORD}])
    )
    config = config_from_parameters(
        {"exempt": {"keyNames": ["LEGACY_*"]}, "allow": {"values": ["^" + PASSWORD[:6]]}}
    )
    assert scan(obj, config=config) == []


def test_list_kind_items() -> None:
    obj = {"kind": "List", "items": [pod(container(env=[{"name": "T", "value": TOKEN}]))]}
    assert paths(obj) == [("items[0].spec.containers[0].env[0].value", "github-token")]


def test_odd_shapes_do_not_crash() -> None:
    for obj in (
        {},
        {"kind": "Pod", "spec": None},
        {"kind": "Pod", "spec": {"containers": [None, "x", {"env": [None, {"value": 3}]}]}},
        {"kind": "ConfigMap", "data": ["x"], "binaryData": {"a": "!!notbase64"}},
        {"kind": "Workflow", "spec": {"templates": [{"steps": [None, [None]]}]}},
        {"kind": "Deployment", "spec": {"template": "x"}},
    ):
        assert scan(obj) == []


def test_finding_never_holds_the_value() -> None:
    obj = pod(
        container(env=[{"name": "DB_PASSWORD", "value": PASSWORD}, {"name": "T", "value": TOKEN}])
    )
    findings = scan(obj)
    assert len(findings) == 2
    for finding in findings:
        assert isinstance(finding, SecretFinding)
        text = f"{finding!r} {finding} {finding.message} {finding.hint}"
        assert PASSWORD not in text and TOKEN not in text
        assert PASSWORD[4:12] not in text and TOKEN[4:12] not in text
        assert "secretKeyRef" in finding.message
        assert finding.path in finding.message


# ----------------------------------------------------------------- the check


def view_of(
    obj: dict[str, Any], plugin: Any = None, namespace: str | None = "default"
) -> TargetView:
    return TargetView(
        target=Target.RESOURCE,
        value=obj,
        path="",
        resource=obj,
        kind=str(obj.get("kind", "")),
        namespace=namespace,
        name="x",
        plugin=plugin,
    )


class FakePlugin:
    def __init__(self, obj: dict[str, Any]) -> None:
        self.container = yaml.safe_load(obj["data"]["sidecar.container"])
        self.container_path = "data[sidecar.container]"


def test_check_actions_plugin_enforce_elsewhere_policy_default() -> None:
    params = {"pluginAction": "Enforce"}
    ctx = EvaluationContext()
    obj = plugin_configmap(TOKEN)
    findings = list(inline_secrets(view_of(obj, FakePlugin(obj)), prepare_secret_scan(params), ctx))
    assert [(f.path, f.action) for f in findings] == [
        ("data[sidecar.container].env[0].value", Action.ENFORCE)
    ]
    obj = pod(container(env=[{"name": "T", "value": TOKEN}]))
    findings = list(inline_secrets(view_of(obj), prepare_secret_scan(params), ctx))
    assert [(f.path, f.action) for f in findings] == [("spec.containers[0].env[0].value", None)]
    assert TOKEN not in findings[0].message


def test_check_exemptions_by_kind_and_namespace() -> None:
    obj = pod(container(env=[{"name": "T", "value": TOKEN}]))
    ctx = EvaluationContext()
    assert (
        list(inline_secrets(view_of(obj), prepare_secret_scan({"exempt": {"kinds": ["Pod"]}}), ctx))
        == []
    )
    assert (
        list(
            inline_secrets(
                view_of(obj, namespace="dev-1"),
                prepare_secret_scan({"exempt": {"namespaces": ["dev-*"]}}),
                ctx,
            )
        )
        == []
    )
    assert (
        len(
            list(
                inline_secrets(
                    view_of(obj, namespace="prod"),
                    prepare_secret_scan({"exempt": {"namespaces": ["dev-*"]}}),
                    ctx,
                )
            )
        )
        == 1
    )
