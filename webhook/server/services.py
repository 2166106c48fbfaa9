"""The services one webhook app uses, built in one place: `Services.start(config)`.

`serve` builds what must exist before gunicorn forks in the master: the preloaded
`ServingState` (a bad policy folder fails before any worker starts, and workers inherit
the parsed set) and the `CertificateReloader` that is gunicorn's `ssl_context` hook.
Each worker then calls `Services.start` with them, which adds the worker's own metrics
and review log, wires reload counting and the certificate readiness probe, and starts
the worker's threads (the folder watcher, the cluster watch). `create_app` only routes.

Readiness: each part with something to say registers a probe with the state
(`state.add_readiness_probe(name, probe)`, see `webhook.server.readiness`); the served
certificate files and the self-managed TLS controller's status are two such probes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook import admission
from webhook.admission import Outcome
from webhook.inject import Injection, inject
from webhook.server.config import ServerConfig
from webhook.server.logs import ReviewLog
from webhook.server.metrics import Metrics
from webhook.server.readiness import Condition, Probe
from webhook.server.state import ServingState
from webhook.server.tls import CertificateReloader, certificate_probe


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes call: the state (policies, plugins, readiness), metrics, the log."""

    state: ServingState
    metrics: Metrics
    review_log: ReviewLog

    @classmethod
    def start(
        cls,
        config: ServerConfig,
        *,
        state: ServingState | None = None,
        certificates: CertificateReloader | None = None,
    ) -> Services:
        """Build and start a worker's services. `state`: preloaded by serve (None: load
        `config.policies_dir` now); `certificates`: the reloader gunicorn serves with."""
        metrics = Metrics()
        if state is None:
            state = ServingState(policies_dir=config.policies_dir, plugins_dir=config.plugins_dir)
        state.add_reload_listener(metrics.reload)
        if config.cert_file is not None:
            state.add_readiness_probe(
                "certificate", certificate_probe(config.cert_file, config.key_file, certificates)
            )
        state.start(config.reload_interval)
        if config.tls_status_dir is not None:
            state.add_readiness_probe("certificate", self_managed_tls_probe(config.tls_status_dir))
        if config.plugins_cluster is not None:
            from webhook.kube import Cluster, kinds

            cluster = config.plugins_cluster
            state.watch_cluster(
                lambda: Cluster(cluster).resource(kinds.CONFIG_MAP), config.plugins_namespaces
            )
        return cls(state, metrics, ReviewLog(config.log_fd, enabled=config.review_log))

    def validate(self, review: object) -> Outcome:
        """`POST /validate`: the policies on the object under review."""
        state = self.state
        return admission.validate(review, evaluate=state.policy_set.evaluate, plugins=state.plugins)

    def mutate(self, review: object) -> Outcome:
        """`POST /mutate`: the registry's plugins injected into an opted-in agent pod."""
        return admission.mutate(review, inject=self._inject)

    def _inject(self, pod: Mapping[str, Any], namespace: str) -> Injection:
        state = self.state
        return inject(pod, state.plugins, policies=state.policy_set, namespace=namespace)

    def stop(self) -> None:
        self.state.stop()


def self_managed_tls_probe(status_dir: Path) -> Probe:
    """serve --tls-secret-name: not ready until the master's certificate controller says
    (in `status.json`) a certificate from the Secret is in place; its problems degrade."""
    from webhook.certificates import ServingFiles

    files = ServingFiles(status_dir)

    def probe() -> Condition:
        status = files.status()
        return Condition(
            ready=status.serving,
            problem=status.problem,
            details={"secret": status.secret, "notAfter": status.not_after},
        )

    return probe
