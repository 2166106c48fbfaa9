"""`plugin-guard execute` and `plugin-guard dev` (click commands, registered in cli.py).

Output contract (DESIGN.md): one JSON line per plugin template on stdout,
`{"template": name, "node": {"phase", "message", "outputs"}, "requeue": str|null}`;
exit 0 when every node Succeeded, 1 otherwise, 2 on bad input. Progress and errors go to
stderr, one line each, and never contain a token.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import click

from webhook.dispatch.localplugin import (
    DEFAULT_STARTUP_TIMEOUT,
    TOKEN_DIR,
    LocalPlugin,
    launch_spec,
)
from webhook.dispatch.pool import DEFAULT_WORKERS, TaskResult
from webhook.dispatch.rpc import PluginEndpoint
from webhook.dispatch.session import Outcome, run_templates
from webhook.dispatch.templates import PluginTask, load_documents, parse_documents, plugin_tasks
from webhook.dispatch.transport import split_address
from webhook.errors import GuardError
from webhook.executor_plugin import (
    DESCRIPTION_ANNOTATION,
    ExecutorPlugin,
    load_plugin_dir,
    to_configmap,
)
from webhook.policy import Action, load_policies

EXIT_OK = 0
EXIT_NOT_SUCCEEDED = 1
EXIT_BAD_INPUT = 2


class DispatchInputError(GuardError):
    """Bad command-line input for execute/dev (exit code 2)."""


def parse_plugin_option(value: str) -> PluginEndpoint:
    """`URL[#NAME][=TOKEN]`. `=@FILE` reads the token from a file, so it need not appear
    in the process list. `#NAME` (a URL fragment, never sent) names the plugin for
    `--route-by-key` and logs."""
    address, sep, token = value.partition("=")
    if sep and token.startswith("@"):
        token_path = Path(token[1:])
        try:
            token = token_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DispatchInputError(
                f"--plugin {address}: cannot read token file {token_path}: {exc.strerror}"
            ) from None
    address, _, name = address.partition("#")
    try:
        split_address(address)
    except ValueError as exc:
        raise DispatchInputError(f"--plugin: {exc}") from None
    return PluginEndpoint(address=address.rstrip("/"), token=token, name=name)


def parse_parameters(values: tuple[str, ...]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise DispatchInputError(f"--parameter must be NAME=VALUE, got {item!r}")
        parameters[name] = value
    return parameters


def print_outcomes(outcomes: list[Outcome]) -> int:
    for outcome in outcomes:
        click.echo(json.dumps(outcome.as_json(), separators=(", ", ": ")))
    return EXIT_OK if all(o.succeeded for o in outcomes) else EXIT_NOT_SUCCEEDED


def _progress(result: TaskResult) -> None:
    execution = result.execution
    if execution.requeue:
        node = execution.node
        detail = f"{node.phase or 'no phase'}" + (f": {node.message}" if node.message else "")
        click.echo(
            f"{result.task.template_name}: {detail}; requeue in {execution.requeue}", err=True
        )


_common_run_options = [
    click.option(
        "--route-by-key",
        is_flag=True,
        help="Call the plugin named by the template's `plugin:` key first, then the others "
        "(argo #10304). Default: Argo's behaviour, every plugin in order.",
    ),
    click.option(
        "--follow",
        is_flag=True,
        help="Honour requeues until every node is final (or --timeout).",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=300.0,
        show_default=True,
        help="Give up after this many seconds; unfinished templates are reported as they stand.",
    ),
    click.option(
        "--parameter",
        "-p",
        "parameters",
        multiple=True,
        metavar="NAME=VALUE",
        help="Value for an input parameter of the plugin templates.",
    ),
    click.option("--namespace", default=None, help="workflow.metadata.namespace sent to plugins."),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=DEFAULT_WORKERS,
        show_default=True,
        help="Task workers (Argo's ARGO_AGENT_TASK_WORKERS).",
    ),
]


def _with_run_options(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_common_run_options):
        func = option(func)
    return func


def _load_tasks(
    template_file: str, parameters: tuple[str, ...], namespace: str | None
) -> list[PluginTask]:
    documents = load_documents(template_file)
    return plugin_tasks(
        documents, template_file, parameters=parse_parameters(parameters), namespace=namespace
    )


@click.command("execute")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    required=True,
    metavar="URL[#NAME][=TOKEN]",
    help="A running plugin, in call order. TOKEN is sent as `Authorization: Bearer`; "
    "use =@FILE to read it from a file.",
)
@_with_run_options
@click.argument("template_file", type=click.Path(dir_okay=False))
def execute(
    plugins: tuple[str, ...],
    route_by_key: bool,
    follow: bool,
    timeout: float,
    parameters: tuple[str, ...],
    namespace: str | None,
    workers: int,
    template_file: str,
) -> None:
    """Run the plugin templates in TEMPLATE_FILE against already-running plugins.

    TEMPLATE_FILE is a Workflow, WorkflowTemplate or bare template (YAML or JSON). Prints
    one JSON line per plugin template. Exit 0 if every node Succeeded, 1 otherwise,
    2 on bad input.
    """
    endpoints = [parse_plugin_option(value) for value in plugins]
    tasks = _load_tasks(template_file, parameters, namespace)
    outcomes = run_templates(
        tasks,
        endpoints,
        route_by_key=route_by_key,
        follow=follow,
        timeout=timeout,
        workers=workers,
        on_progress=_progress,
    )
    sys.exit(print_outcomes(outcomes))


# --------------------------------------------------------------------------- dev


def _check_policies(plugin: ExecutorPlugin, policies_dir: str | None) -> None:
    """Print what the policies say about the plugin, then carry on: `dev` is the
    author's loop, so even an Enforce violation (which the webhook would deny) only
    gets a clearly marked line here."""
    try:
        configmap = to_configmap(plugin)
    except GuardError as exc:
        click.echo(f"policy: Argo itself would refuse this plugin: {exc}", err=True)
        return
    verdict = load_policies(policies_dir).evaluate(configmap)
    for violation in verdict.violations:
        marker = "DENIED in a cluster" if violation.action is Action.ENFORCE else "warning"
        click.echo(
            f"policy [{violation.action.value}] {violation.policy}: {violation.path}: "
            f"{violation.message} ({marker}; dev continues)",
            err=True,
        )


_FENCED_YAML = re.compile(r"```ya?ml\s*\n(.*?)```", re.DOTALL)


def _example_tasks(plugin: ExecutorPlugin, namespace: str | None) -> list[PluginTask]:
    """The example in the description annotation (argo's convention), or else a minimal
    template `{name: main, plugin: {<name>: {}}}`."""
    description = plugin.annotations.get(DESCRIPTION_ANNOTATION, "")
    for block in _FENCED_YAML.findall(description):
        source = f"{plugin.name} description example"
        try:
            return plugin_tasks(parse_documents(block, source), source, namespace=namespace)
        except GuardError:
            continue  # e.g. the Secret example in the slack plugin's description
    minimal = {"name": "main", "plugin": {plugin.name: {}}}
    return plugin_tasks([minimal], "minimal template", namespace=namespace)


@click.command("dev")
@click.argument("plugin_dir", type=click.Path(file_okay=False))
@click.argument("template_file", required=False, type=click.Path(dir_okay=False))
@_with_run_options
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    help="Environment variable for the plugin (e.g. values its Secret would give it).",
)
@click.option(
    "--policies",
    "policies_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Policy folder to check the plugin with (default: the bundled policies).",
)
@click.option(
    "--startup-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_STARTUP_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the plugin to open its port.",
)
@click.option("--show-logs", is_flag=True, help="Print the plugin's output to stderr at the end.")
def dev(
    plugin_dir: str,
    template_file: str | None,
    route_by_key: bool,
    follow: bool,
    timeout: float,
    parameters: tuple[str, ...],
    namespace: str | None,
    workers: int,
    env: tuple[str, ...],
    policies_dir: str | None,
    startup_timeout: float,
    show_logs: bool,
) -> None:
    """Start the plugin in PLUGIN_DIR locally, as its sidecar runs, and execute templates.

    Reads plugin.yaml and server.*, checks the plugin with the policies, starts it on its
    declared port with a fresh token at /var/run/argo/token (a private mount namespace:
    the host's /var/run is not touched), runs the templates of TEMPLATE_FILE (default:
    the example in the plugin's description) like `execute`, and stops the plugin.
    """
    plugin = load_plugin_dir(plugin_dir)
    if plugin.container is None:
        problem = plugin.problems[0].message if plugin.problems else "no sidecar container"
        raise DispatchInputError(f"{plugin_dir}/plugin.yaml: {problem}")
    if template_file:  # bad input is reported before anything else happens
        tasks = _load_tasks(template_file, parameters, namespace)
    else:
        tasks = _example_tasks(plugin, namespace)
    _check_policies(plugin, policies_dir)
    spec = launch_spec(
        plugin.name,
        plugin.container,
        port=plugin.port,
        cwd=str(Path(plugin_dir).resolve()),
        extra_env=parse_parameters(env) if env else None,
    )
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    # SIGTERM must unwind through `finally` so the plugin is stopped, not orphaned.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    local = LocalPlugin(spec, startup_timeout=startup_timeout)
    try:
        local.start()
        click.echo(
            f"plugin {plugin.name} listening on port {spec.port} (pid {local.pid}, token at "
            f"{TOKEN_DIR}/token in its own mount namespace)",
            err=True,
        )
        endpoint = PluginEndpoint(local.address, local.token, plugin.container_name)
        outcomes = run_templates(
            tasks,
            [endpoint],
            route_by_key=route_by_key,
            follow=follow,
            timeout=timeout,
            workers=workers,
            on_progress=_progress,
        )
    finally:
        local.stop()
        signal.signal(signal.SIGTERM, previous)
        if show_logs:
            click.echo(local.logs(), err=True, nl=False)
    sys.exit(print_outcomes(outcomes))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)
