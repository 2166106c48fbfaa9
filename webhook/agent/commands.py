"""`plugin-guard agent` and `plugin-guard agent init` (click, registered in cli.py).

`agent` serves WorkflowTaskSets until SIGTERM/SIGINT, then finishes the plugin calls in
flight and flushes the last patch (exit 0). Plugins come from `--plugin` (the syntax of
`execute`) or, without it, the Argo way: `ARGO_PLUGIN_ADDRESSES` / `ARGO_PLUGIN_NAMES`
and tokens in `<token dir>/<name>/token` (spec 4.4, 4.5). Logs are JSON lines on
stderr and never contain a token. Bad input or no cluster configuration: one line on
stderr, exit 2.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from types import FrameType

import click

from webhook.agent.agent import DEFAULT_SHUTDOWN_TIMEOUT, Agent, AgentConfig
from webhook.agent.health import HealthServer
from webhook.agent.metrics import AgentMetrics
from webhook.agent.service import AgentService
from webhook.agent.tokens import (
    AgentInputError,
    endpoints_from_env,
    plugin_names,
    write_token_files,
)
from webhook.dispatch.commands import parse_plugin_option
from webhook.dispatch.duration import DurationError, parse_go_duration
from webhook.dispatch.localplugin import TOKEN_DIR
from webhook.dispatch.pool import DEFAULT_WORKERS
from webhook.dispatch.rpc import PluginClient
from webhook.httptemplate import HTTPTemplateRunner
from webhook.kube import Cluster, kinds
from webhook.leaderelection import LeaderElector, LeaseTiming
from webhook.leaderelection.kube import KubeLeaseStore
from webhook.server.logs import configure as configure_logs

DEFAULT_LEASE_NAME = "plugin-guard-agent"


def parse_interval(text: str, option: str = "--patch-interval") -> float:
    """A Go duration (`ARGO_AGENT_PATCH_RATE`, e.g. `10s`, `500ms`) or plain seconds."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_go_duration(text) / 1e9
        except DurationError as exc:
            raise AgentInputError(f"{option}: {exc}") from None
    if seconds <= 0:
        raise AgentInputError(f"{option} must be positive, got {text!r}")
    return seconds


_LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"])


@click.group("agent", invoke_without_command=True)
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Serve the TaskSets of this namespace (repeatable). Default: the namespace of "
    "the kubeconfig context, or the pod's own namespace in-cluster.",
)
@click.option("--all-namespaces", "-A", is_flag=True, help="Serve the TaskSets of every namespace.")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="URL[#NAME][=TOKEN]",
    help="A running plugin, in call order (as for `execute`; =@FILE reads the token from "
    "a file). Default: ARGO_PLUGIN_ADDRESSES / ARGO_PLUGIN_NAMES and the token files.",
)
@click.option(
    "--token-dir",
    type=click.Path(file_okay=False),
    default=TOKEN_DIR,
    show_default=True,
    help="Where `agent init` wrote <name>/token (used without --plugin).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=DEFAULT_WORKERS,
    envvar="ARGO_AGENT_TASK_WORKERS",
    show_default=True,
    help="Task workers (env ARGO_AGENT_TASK_WORKERS).",
)
@click.option(
    "--patch-interval",
    default="10s",
    envvar="ARGO_AGENT_PATCH_RATE",
    show_default=True,
    help="How often results are patched into the TaskSets: a Go duration or seconds "
    "(env ARGO_AGENT_PATCH_RATE).",
)
@click.option(
    "--route-by-key",
    is_flag=True,
    help="Call the plugin named by the template's `plugin:` key first (argo #10304).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_SHUTDOWN_TIMEOUT,
    show_default=True,
    help="On SIGTERM, wait this long for plugin calls in flight before the last patch.",
)
@click.option(
    "--leader-elect",
    is_flag=True,
    help="Run as one of several replicas: only the holder of a coordination.k8s.io "
    "Lease serves TaskSets, the others stand by (client-go's leader election).",
)
@click.option(
    "--leader-elect-lease-name",
    default=DEFAULT_LEASE_NAME,
    show_default=True,
    help="The Lease's name.",
)
@click.option(
    "--leader-elect-namespace",
    default=None,
    help="The Lease's namespace. Default: the pod's (or the kubeconfig context's).",
)
@click.option(
    "--leader-elect-identity",
    default=None,
    help="This replica's holderIdentity. Default: <hostname>_<random>.",
)
@click.option(
    "--leader-elect-lease-duration",
    default="15s",
    show_default=True,
    help="How long a Lease holds without renewal (a standby waits this long).",
)
@click.option(
    "--leader-elect-renew-deadline",
    default="10s",
    show_default=True,
    help="How long a holder keeps trying to renew before it steps down.",
)
@click.option(
    "--leader-elect-retry-period",
    default="2s",
    show_default=True,
    help="The wait between attempts to acquire or renew.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Serve /healthz, /readyz and /metrics over HTTP on this port (0: off).",
)
@click.option(
    "--metrics-host", default="0.0.0.0", show_default=True, help="The listener's address."
)
@click.option("--log-level", type=_LOG_LEVELS, default="info", show_default=True)
@click.pass_context
def agent(
    ctx: click.Context,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    plugins: tuple[str, ...],
    token_dir: str,
    workers: int,
    patch_interval: str,
    route_by_key: bool,
    kubeconfig: str | None,
    shutdown_timeout: float,
    leader_elect: bool,
    leader_elect_lease_name: str,
    leader_elect_namespace: str | None,
    leader_elect_identity: str | None,
    leader_elect_lease_duration: str,
    leader_elect_renew_deadline: str,
    leader_elect_retry_period: str,
    metrics_port: int,
    metrics_host: str,
    log_level: str,
) -> None:
    """Serve WorkflowTaskSets for Argo's `disableAgentPodCreation: true` mode.

    Lists and watches WorkflowTaskSets, runs their plugin (and HTTP) tasks through the
    dispatcher and patches the results into each TaskSet's status, as Argo's agent pod
    does, for many workflows at once. Needs list/watch on workflowtasksets and patch on
    workflowtasksets/status.
    """
    if ctx.invoked_subcommand is not None:
        return
    configure_logs(log_level)
    if namespaces and all_namespaces:
        raise AgentInputError("give --namespace or --all-namespaces, not both")
    interval = parse_interval(patch_interval)
    if plugins:
        endpoints = [parse_plugin_option(value) for value in plugins]
    else:
        endpoints = endpoints_from_env(os.environ, token_dir)
    cluster = Cluster.connect(kubeconfig)
    if not namespaces and not all_namespaces:
        namespaces = (cluster.namespace,)
    config = AgentConfig(
        namespaces=() if all_namespaces else tuple(dict.fromkeys(namespaces)),
        workers=workers,
        patch_interval=interval,
        route_by_key=route_by_key,
        shutdown_timeout=shutdown_timeout,
    )
    timing: LeaseTiming | None = None
    if leader_elect:
        try:
            timing = LeaseTiming(
                lease_duration=parse_interval(
                    leader_elect_lease_duration, "--leader-elect-lease-duration"
                ),
                renew_deadline=parse_interval(
                    leader_elect_renew_deadline, "--leader-elect-renew-deadline"
                ),
                retry_period=parse_interval(
                    leader_elect_retry_period, "--leader-elect-retry-period"
                ),
            )
        except ValueError as exc:
            raise AgentInputError(f"--leader-elect durations: {exc}") from None
    metrics = AgentMetrics()
    tasksets = cluster.resource(kinds.WORKFLOW_TASKSET)
    # HTTP templates read header values from Secrets of the TaskSet's namespace
    secrets = cluster.resource(kinds.SECRET)

    def make_agent(suspected_reruns: Iterable[str]) -> Agent:
        clients = [
            PluginClient(endpoint, on_retry=lambda e: metrics.retried(e.label))
            for endpoint in endpoints
        ]
        http = HTTPTemplateRunner(secrets=secrets)
        return Agent(
            tasksets,
            clients,
            config,
            http=http,
            metrics=metrics,
            suspected_reruns=suspected_reruns,
        )

    lease_cluster: Cluster | None = None
    elect: Callable[..., LeaderElector] | None = None
    if timing is not None:
        # Lease calls must end well within the renew deadline, whatever the network does.
        budget = max(timing.renew_deadline / 2, 0.5)
        lease_cluster = Cluster.connect(kubeconfig, request_timeout=(budget, budget))
        store = KubeLeaseStore(
            lease_cluster,
            namespace=leader_elect_namespace or cluster.namespace,
            name=leader_elect_lease_name,
        )
        identity = leader_elect_identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        elect = functools.partial(LeaderElector, store, identity, timing=timing)
    service = AgentService(make_agent, metrics, elect=elect)
    health: HealthServer | None = None
    if metrics_port:
        try:
            health = HealthServer(
                metrics_host,
                metrics_port,
                health=service.health,
                ready=service.ready,
                metrics=metrics,
            ).start()
        except OSError as exc:
            raise AgentInputError(
                f"--metrics-port {metrics_port}: cannot listen on {metrics_host}: {exc.strerror}"
            ) from None
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        service.run(stop)
    finally:
        if health is not None:
            health.stop()
        if lease_cluster is not None:
            lease_cluster.close()
        cluster.close()


@agent.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=TOKEN_DIR,
    show_default=True,
    help="Where to create <name>/token.",
)
@click.argument("names", nargs=-1)
def init(directory: str, names: tuple[str, ...]) -> None:
    """Write a token file per plugin, as `argoexec agent init` does.

    NAMES default to ARGO_PLUGIN_NAMES (the sidecar container names). Creates
    DIR/<name>/ (mode 0770; an existing one is an error) and DIR/<name>/token (mode 0440,
    32 random characters, no newline). Tokens are never printed.
    """
    configure_logs("info")
    write_token_files(directory, list(names) or plugin_names(os.environ))
