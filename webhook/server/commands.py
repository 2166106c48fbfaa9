"""`plugin-guard serve`: the HTTPS admission webhook under gunicorn."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from webhook.errors import GuardError

if TYPE_CHECKING:
    from webhook.server.state import ServingState

# The start-up facts are log events like every other stderr line (one JSON object each);
# only the "try it" lines meant for a person at a terminal go to stdout.
log = logging.getLogger("webhook.server")

CURL_REVIEW = (
    '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"demo-1",'
    '"operation":"CREATE","kind":{"group":"","version":"v1","kind":"ConfigMap"},'
    '"namespace":"argo","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":'
    '{"name":"demo-executor-plugin","labels":{"workflows.argoproj.io/configmap-type":'
    '"ExecutorPlugin"}},"data":{"sidecar.container":"name: demo\\nimage: demo:1\\n'
    'ports:\\n- containerPort: 4355\\n"}}}}'
)


def _metrics_dir() -> Path:
    """A fresh folder for prometheus_client's per-worker files, set before workers fork."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
        return folder
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = Path(tempfile.mkdtemp(prefix="plugin-guard-metrics-", dir=base))
    owner = os.getpid()

    def cleanup() -> None:
        if os.getpid() == owner:  # not from a forked worker
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(cleanup)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def _check_pair(cert: Path, key: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise click.UsageError(f"cannot load --cert-file/--key-file: {exc}") from exc


def _check_port_free(host: str, port: int) -> None:
    """Say so in one line when the address is taken (gunicorn would retry for five
    seconds, logging a line each time, then exit)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise GuardError(
                    f"{host}:{port} is already in use (another plugin-guard serve?); "
                    "stop it or pick another --port"
                ) from None
            raise GuardError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--cert-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Server certificate (PEM). Without it a local CA and certificate are created.",
)
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Private key of --cert-file (PEM).",
)
@click.option(
    "--policies",
    "policies_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Policy folder (default: the bundled policies). Reloaded when files change.",
)
@click.option(
    "--plugins",
    "plugins_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of plugin ConfigMaps: the registry of installed plugins (cross-plugin "
    "checks, and the plugins /mutate injects into opted-in Argo agent pods).",
)
@click.option(
    "--plugins-from-cluster",
    is_flag=True,
    help="Keep the plugin registry from the cluster instead: list and watch the plugin "
    "ConfigMaps (label workflows.argoproj.io/configmap-type=ExecutorPlugin), as Argo's "
    "controller does. Kubeconfig from KUBECONFIG, ~/.kube/config or in-cluster.",
)
@click.option(
    "--plugins-namespace",
    "plugins_namespaces",
    multiple=True,
    help="With --plugins-from-cluster: watch this namespace (repeatable; default: all).",
)
@click.option(
    "--tls-secret-name",
    metavar="NAMESPACE/NAME",
    help="Self-managed TLS: keep a CA and the serving certificate in this Secret (created "
    "if absent, renewed before expiry) and serve it; exclusive with --cert-file. "
    "Kubeconfig from KUBECONFIG, ~/.kube/config or in-cluster.",
)
@click.option(
    "--tls-service-name",
    metavar="NAME",
    help="With --tls-secret-name: the Service the API server calls; the certificate is for "
    "NAME.NAMESPACE.svc (and .svc.cluster.local, NAME.NAMESPACE, NAME), NAMESPACE the "
    "Secret's.",
)
@click.option(
    "--validating-webhook-configuration",
    "validating_configs",
    multiple=True,
    metavar="NAME",
    help="With --tls-secret-name: write the CA into caBundle of every webhook of this "
    "ValidatingWebhookConfiguration, and put it back if removed (repeatable).",
)
@click.option(
    "--mutating-webhook-configuration",
    "mutating_configs",
    multiple=True,
    metavar="NAME",
    help="With --tls-secret-name: the same for a MutatingWebhookConfiguration (repeatable).",
)
@click.option(
    "--tls-cert-validity",
    default="2160h",
    show_default=True,
    metavar="DURATION",
    help="With --tls-secret-name: lifetime of the serving certificate (renewed at 2/3 of it).",
)
@click.option(
    "--tls-ca-validity",
    default="43800h",
    show_default=True,
    metavar="DURATION",
    help="With --tls-secret-name: lifetime of the CA (rolled over at 2/3 of it, old and new CA "
    "trusted side by side during the switch).",
)
@click.option(
    "--tls-reconcile-interval",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="With --tls-secret-name: seconds between checks of the Secret and the caBundles.",
)
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --tls-secret-name: where the served certificate files are written "
    "[default: a fresh private folder under $TMPDIR].",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--san",
    "sans",
    multiple=True,
    help="Extra DNS name or IP for the generated certificate (repeatable), "
    "e.g. plugin-guard.argo.svc.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the generated CA and certificate are kept "
    "[default: $XDG_STATE_HOME/argo-plugin-guard].",
)
@click.option(
    "--reload-interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between checks of the policy and plugin folders (0: never reload).",
)
@click.option(
    "--timeout",
    default=10,
    show_default=True,
    type=click.IntRange(1, 30),
    help="The webhook's timeoutSeconds: how long a SIGTERM waits for in-flight reviews.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option("--no-review-log", is_flag=True, help="Do not log one line per review.")
def serve(
    host: str,
    port: int,
    cert_file: Path | None,
    key_file: Path | None,
    policies_dir: Path | None,
    plugins_dir: Path | None,
    plugins_from_cluster: bool,
    plugins_namespaces: tuple[str, ...],
    tls_secret_name: str | None,
    tls_service_name: str | None,
    validating_configs: tuple[str, ...],
    mutating_configs: tuple[str, ...],
    tls_cert_validity: str,
    tls_ca_validity: str,
    tls_reconcile_interval: float,
    tls_dir: Path | None,
    workers: int,
    threads: int,
    sans: tuple[str, ...],
    state_dir: Path | None,
    reload_interval: float,
    timeout: int,
    log_level: str,
    no_review_log: bool,
) -> None:
    """Serve the admission webhook over HTTPS (gunicorn, TLS 1.2+).

    POST /validate and /mutate take AdmissionReviews (admission.k8s.io/v1 or v1beta1);
    GET /healthz, /readyz and /metrics are for probes and Prometheus. SIGTERM finishes
    in-flight reviews, then exits.
    """
    _check_option_combinations(
        cert_file, key_file, plugins_dir, plugins_from_cluster, plugins_namespaces
    )
    tls_options = _self_managed_tls_options(
        click.get_current_context(),
        tls_secret_name,
        tls_service_name,
        validating_configs,
        mutating_configs,
        tls_cert_validity,
        tls_ca_validity,
        tls_reconcile_interval,
        tls_dir,
        sans,
        cert_file is not None,
    )
    from webhook.server import logs

    logs.configure(log_level)  # JSON lines on stderr from the first one
    plugins_cluster = None
    if plugins_from_cluster:
        from webhook.kube import load_config

        plugins_cluster = load_config()  # KubeConfigError: one line, exit 2
    _metrics_dir()  # before anything imports prometheus_client

    from webhook.server.app import create_app
    from webhook.server.config import ServerConfig
    from webhook.server.gunicorn_app import WebhookApplication
    from webhook.server.services import Services
    from webhook.server.tls import CertificateReloader

    self_managed = None
    if tls_options is not None:
        self_managed = _prepare_self_managed_tls(tls_options)
        certificate = ServingCertificate(self_managed.cert_file, self_managed.key_file)
    else:
        certificate = _serving_certificate(cert_file, key_file, (host, *sans), state_dir)
    state = _preload_state(policies_dir, plugins_dir)
    _check_port_free(host, port)
    url = _https_url(host, port)
    log.info(
        "serving",
        extra={
            "url": f"{url}/validate",
            "policies": len(getattr(state.policy_set, "policy_ids", [])),
            "policiesDir": str(policies_dir) if policies_dir else "bundled",
            "workers": workers,
            "threads": threads,
        },
    )
    if plugins_cluster is not None:
        log.info(
            "plugin registry from the cluster",
            extra={
                "namespaces": list(plugins_namespaces) or "all",
                "kubeconfig": plugins_cluster.source,
            },
        )
    if certificate.ca_file is not None:
        _print_try_it(url, certificate.ca_file)

    config = ServerConfig(
        policies_dir=policies_dir,
        plugins_dir=plugins_dir,
        reload_interval=reload_interval,
        cert_file=certificate.cert_file,
        key_file=certificate.key_file,
        review_log=not no_review_log,
        plugins_cluster=plugins_cluster,
        plugins_namespaces=plugins_namespaces,
        tls_status_dir=self_managed.status_dir if self_managed is not None else None,
    )
    # Built here, in the master; each worker gets its copy by fork. gunicorn calls it for
    # every connection, /readyz asks it whether the last rotation loaded.
    certificates = CertificateReloader()

    def worker_app() -> Any:
        return create_app(config, Services.start(config, state=state, certificates=certificates))

    bind_host = f"[{host}]" if ":" in host else host
    options = {
        "bind": [f"{bind_host}:{port}"],
        "workers": workers,
        "threads": threads,
        "certfile": str(certificate.cert_file),
        "keyfile": str(certificate.key_file),
        "ssl_context": certificates,
        "graceful_timeout": timeout,
        "loglevel": log_level,
    }
    if self_managed is not None:
        self_managed.start()  # one thread in this (the master) process, never in workers
    WebhookApplication(worker_app, options).run()


def _check_option_combinations(
    cert_file: Path | None,
    key_file: Path | None,
    plugins_dir: Path | None,
    plugins_from_cluster: bool,
    plugins_namespaces: tuple[str, ...],
) -> None:
    if (cert_file is None) != (key_file is None):
        raise click.UsageError("--cert-file and --key-file go together")
    if plugins_from_cluster and plugins_dir is not None:
        raise click.UsageError(
            "--plugins DIR and --plugins-from-cluster are exclusive: choose one registry"
        )
    if plugins_namespaces and not plugins_from_cluster:
        raise click.UsageError("--plugins-namespace needs --plugins-from-cluster")


@dataclass(frozen=True, slots=True)
class ServingCertificate:
    """The certificate and key gunicorn serves; `ca_file` when serve made them itself."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


def _prepare_self_managed_tls(tls_options: Any) -> Any:
    """`--tls-secret-name`: the controller that keeps the Secret (started before gunicorn)."""
    from webhook.certificates.serving import SelfManagedTls, TlsOptionError

    try:
        self_managed = SelfManagedTls.prepare(tls_options)
    except TlsOptionError as exc:
        raise click.UsageError(str(exc)) from exc
    log.info("self-managed TLS", extra=self_managed.describe())
    return self_managed


def _serving_certificate(
    cert_file: Path | None, key_file: Path | None, names: tuple[str, ...], state_dir: Path | None
) -> ServingCertificate:
    """The given pair (checked to load), or a local CA's certificate for `names`."""
    if cert_file is not None and key_file is not None:
        _check_pair(cert_file, key_file)
        return ServingCertificate(cert_file, key_file)
    from webhook.server import certs

    folder = state_dir or certs.default_state_dir()
    try:
        paths, created = certs.ensure_local_certs(folder, names)
    except OSError as exc:
        raise click.UsageError(f"cannot write certificates under {folder}: {exc}") from exc
    log.info(
        f"{'created' if created else 'reusing'} local CA", extra={"caFile": str(paths.ca_cert)}
    )
    return ServingCertificate(paths.cert, paths.key, paths.ca_cert)


def _preload_state(policies_dir: Path | None, plugins_dir: Path | None) -> ServingState:
    """Policies and registry loaded in the master: a bad folder fails before any worker."""
    from webhook.server.state import ServingState

    try:
        return ServingState.preload(policies_dir, plugins_dir)
    except GuardError:
        raise
    except (OSError, ValueError) as exc:
        raise GuardError(f"cannot load policies: {exc}") from exc


def _https_url(host: str, port: int) -> str:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url_host = f"[{shown_host}]" if ":" in shown_host else shown_host
    return f"https://{url_host}:{port}"


def _print_try_it(url: str, ca_file: Path) -> None:
    """For the person at the terminal (stdout: stderr is the JSON log)."""
    click.echo(f"try it:\n  curl --cacert {ca_file} {url}/healthz")
    click.echo(
        f"  curl --cacert {ca_file} -H 'Content-Type: application/json' "
        f"-d '{CURL_REVIEW}' {url}/validate"
    )


def _self_managed_tls_options(
    ctx: click.Context,
    secret: str | None,
    service_name: str | None,
    validating_configs: tuple[str, ...],
    mutating_configs: tuple[str, ...],
    cert_validity: str,
    ca_validity: str,
    interval: float,
    folder: Path | None,
    sans: tuple[str, ...],
    has_cert_file: bool,
) -> Any:
    """The `--tls-*` options checked together (None without --tls-secret-name)."""
    from click.core import ParameterSource

    tls_flags = (
        "tls_service_name",
        "validating_configs",
        "mutating_configs",
        "tls_cert_validity",
        "tls_ca_validity",
        "tls_reconcile_interval",
        "tls_dir",
    )
    given = [
        name.replace("_", "-").replace("configs", "webhook-configuration")
        for name in tls_flags
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
    ]
    if secret is None:
        if given:
            raise click.UsageError(f"--{given[0]} needs --tls-secret-name")
        return None
    if has_cert_file:
        raise click.UsageError(
            "--tls-secret-name and --cert-file/--key-file are exclusive: choose one TLS source"
        )
    if not service_name:
        raise click.UsageError(
            "--tls-secret-name needs --tls-service-name (the Service the API server calls)"
        )
    from webhook.certificates import RenewalPolicy, parse_duration

    try:
        policy = RenewalPolicy(
            cert_validity=parse_duration(cert_validity), ca_validity=parse_duration(ca_validity)
        )
    except ValueError as exc:
        raise click.UsageError(f"--tls-cert-validity/--tls-ca-validity: {exc}") from exc
    from webhook.certificates.serving import TlsOptions

    return TlsOptions(
        secret=secret,
        service_name=service_name,
        validating=validating_configs,
        mutating=mutating_configs,
        extra_names=sans,
        policy=policy,
        interval=interval,
        folder=folder,
    )
