"""The certificate controller: one Secret, the webhooks' caBundle, renewal, the files.

One reconcile (`reconcile_once`), repeated every `interval` seconds (sooner when a
renewal falls due), by one thread in the gunicorn master of each replica:

1. Read the Secret. Absent: make a CA and serving certificate and create it; a 409
   AlreadyExists means another replica won the race: read the winner's and use it. So
   replicas starting together end with one Secret and all serve the same certificate.
2. Apply the renewal rules (`renewal.renew`); when something is due, update the Secret
   with the resourceVersion it was read at. A 409 Conflict means another replica
   changed it first: read again and decide again (that replica has usually done the
   renewal already, so nothing is left to do).
3. Write the serving pair and bundle into the folder the server's TLS reloader reads
   (no restart); the status file says a certificate is in place (`/readyz`).
4. Make every webhook of the named Validating/Mutating webhook configurations carry the
   Secret's `ca.crt` as `caBundle` (update with resourceVersion; conflicts retried), so a
   caBundle removed by someone (a `kubectl apply` of the chart's render, a GitOps sync
   with Replace) is back within one interval. Only GET and UPDATE on named objects: the
   RBAC can name every object except for the Secret's first create.

Every failed API call is one JSON log line (what failed, the API's code and reason, the
next retry) and a retry with backoff (0.5 s doubling to the interval). The reason is
kept for `/readyz`: before a certificate is in place the pod is not ready, after that
it serves on and reports "degraded".

Why the master and not each worker: the Secret would otherwise be raced by
replicas x workers, and a watch or poll per worker multiplies API load for nothing;
the master outlives workers (they are restarted by it), and it already owns the files
they read. The master forks workers while this thread may run, so file writes and log
lines are done under a lock that `os.fork` also takes (`register_at_fork`): a worker is
never forked in the middle of one. API calls are not under it (a slow API server would
delay worker restarts); a forked worker never touches the master's connection pool.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.certificates.files import CertificateStatus, ServingFiles
from webhook.certificates.material import SECRET_TYPE, Material
from webhook.certificates.renewal import RenewalPolicy, renew
from webhook.kube import Cluster, KubeApiError, KubeConfigError, kinds

log = logging.getLogger("webhook.certificates")

BACKOFF_START = 0.5
MAX_CONFLICT_RETRIES = 8
DEFAULT_INTERVAL = 30.0
MANAGED_BY = "argo-plugin-guard"

JsonObject = dict[str, Any]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class WebhookConfigurationRef:
    kind: kinds.Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.name}"


def validating(name: str) -> WebhookConfigurationRef:
    return WebhookConfigurationRef(kinds.VALIDATING_WEBHOOK_CONFIGURATION, name)


def mutating(name: str) -> WebhookConfigurationRef:
    return WebhookConfigurationRef(kinds.MUTATING_WEBHOOK_CONFIGURATION, name)


class ControllerError(Exception):
    """A reconcile step that did not complete; the message is the /readyz reason."""


# A worker is never forked while the controller writes a file or a log line.
_FORK_LOCK = threading.Lock()
_fork_hooks_installed = False


def _install_fork_guard() -> None:
    global _fork_hooks_installed
    if _fork_hooks_installed:
        return
    os.register_at_fork(
        before=_FORK_LOCK.acquire,
        after_in_parent=_FORK_LOCK.release,
        after_in_child=_FORK_LOCK.release,
    )
    _fork_hooks_installed = True


def _api_problem(what: str, exc: KubeApiError) -> str:
    """`reading Secret ns/name: HTTP 403 Forbidden: <the API's message>` (one line)."""
    answer = f"HTTP {exc.code}" if exc.code else "no answer"
    if exc.reason:
        answer += f" {exc.reason}"
    message = exc.message.splitlines()[0] if exc.message else ""
    return f"{what}: {answer}: {message}" if message else f"{what}: {answer}"


class CertificateController:
    def __init__(
        self,
        *,
        connect: Callable[[], Cluster],
        namespace: str,
        secret_name: str,
        names: Sequence[str],
        webhooks: Sequence[WebhookConfigurationRef],
        files: ServingFiles,
        policy: RenewalPolicy | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._connect = connect
        self.namespace = namespace
        self.secret_name = secret_name
        self.names = tuple(names)
        self.webhooks = tuple(webhooks)
        self.files = files
        self.policy = policy or RenewalPolicy()
        self.interval = interval
        self.clock = clock
        self._cluster: Cluster | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.serving = False  # a certificate from the Secret is in the files
        self.problem: str | None = "the certificate has not been read from the Secret yet"
        self.next_due: dt.datetime | None = None
        self.not_after: dt.datetime | None = None  # of the certificate in the files
        self.reconciles = 0

    @property
    def secret_ref(self) -> str:
        return f"{self.namespace}/{self.secret_name}"

    # ------------------------------------------------------------------ one reconcile

    def _client(self) -> Cluster:
        if self._cluster is None:
            self._cluster = self._connect()
        return self._cluster

    def reconnect(self, connect: Callable[[], Cluster]) -> None:
        """Use another connection factory from the next call on (serve's first attempt
        runs with short timeouts, the thread with the usual ones)."""
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        self._connect = connect

    def reconcile_once(self) -> Material:
        """Secret, files, caBundles; raises ControllerError with the reason."""
        try:
            cluster = self._client()
        except KubeConfigError as exc:
            raise ControllerError(f"no cluster configuration: {exc}") from exc
        material = self._ensure_secret(cluster)
        with _FORK_LOCK:
            changed = self.files.write(material)
        if changed:
            self._log(
                logging.INFO,
                "serving certificate in place",
                notAfter=_stamp(material.serving.not_after if material.serving else None),
            )
        self.serving = True
        self.not_after = material.serving.not_after if material.serving else None
        bundle = base64.b64encode(material.bundle_pem()).decode("ascii")
        problems = []
        for ref in self.webhooks:
            try:
                self._ensure_ca_bundle(cluster, ref, bundle)
            except ControllerError as exc:
                problems.append(str(exc))
        self.reconciles += 1
        if problems:
            raise ControllerError("; ".join(problems))
        return material

    def _ensure_secret(self, cluster: Cluster) -> Material:
        secrets = cluster.resource(kinds.SECRET)
        what = f"Secret {self.secret_ref}"
        for _ in range(MAX_CONFLICT_RETRIES):
            now = self.clock()
            try:
                obj = secrets.get(self.secret_name, namespace=self.namespace)
            except KubeApiError as exc:
                if not exc.not_found:
                    raise ControllerError(_api_problem(f"reading {what}", exc)) from exc
                obj = None
            if obj is None:
                renewal = renew(Material(), self.names, now, self.policy)
                try:
                    secrets.create(self._new_secret(renewal.material), namespace=self.namespace)
                except KubeApiError as exc:
                    if exc.already_exists:
                        self._log(logging.INFO, "another replica created the Secret first")
                        continue  # read the winner's
                    raise ControllerError(_api_problem(f"creating {what}", exc)) from exc
                self.next_due = renewal.next_due
                self._log(logging.INFO, "created the TLS Secret with a new CA", **self._due())
                return renewal.material
            material = Material.from_secret_data(obj.get("data"))
            renewal = renew(material, self.names, now, self.policy)
            self.next_due = renewal.next_due
            if not renewal.changed:
                return material
            updated = dict(obj)
            updated["data"] = renewal.material.secret_data()
            try:
                secrets.update(updated, namespace=self.namespace)
            except KubeApiError as exc:
                if exc.conflict:
                    continue  # changed since read (another replica renewed): decide again
                raise ControllerError(_api_problem(f"updating {what}", exc)) from exc
            self._log(
                logging.INFO,
                "renewed: " + "; ".join(f"{c.value} ({why})" for c, why in renewal.changes),
                changes=[c.value for c, _ in renewal.changes],
                unusable=list(material.problems) or None,
                **self._due(),
            )
            return renewal.material
        raise ControllerError(f"{what}: still conflicting after {MAX_CONFLICT_RETRIES} tries")

    def _new_secret(self, material: Material) -> JsonObject:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": {
                "name": self.secret_name,
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": MANAGED_BY,
                    "app.kubernetes.io/part-of": "argo-plugin-guard",
                    "app.kubernetes.io/component": "webhook-tls",
                },
            },
            "data": material.secret_data(),
        }

    def _ensure_ca_bundle(
        self, cluster: Cluster, ref: WebhookConfigurationRef, bundle: str
    ) -> None:
        client = cluster.resource(ref.kind)
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                obj = client.get(ref.name)
            except KubeApiError as exc:
                raise ControllerError(_api_problem(f"reading {ref}", exc)) from exc
            webhooks = obj.get("webhooks") or []
            stale = [
                w
                for w in webhooks
                if isinstance(w, dict) and (w.get("clientConfig") or {}).get("caBundle") != bundle
            ]
            if not stale:
                return
            for webhook in stale:
                webhook.setdefault("clientConfig", {})["caBundle"] = bundle
            try:
                client.update(obj)
            except KubeApiError as exc:
                if exc.conflict:
                    continue
                raise ControllerError(_api_problem(f"writing caBundle of {ref}", exc)) from exc
            self._log(
                logging.INFO,
                "caBundle written",
                configuration=str(ref),
                webhooks=[str(w.get("name") or "") for w in stale],
            )
            return
        raise ControllerError(f"{ref}: still conflicting after {MAX_CONFLICT_RETRIES} tries")

    # ------------------------------------------------------------------ the loop

    def publish(self) -> None:
        status = CertificateStatus(
            serving=self.serving,
            problem=self.problem,
            secret=self.secret_ref,
            not_after=_stamp(self.not_after),
        )
        with _FORK_LOCK:
            self.files.set_status(status)

    def attempt(self) -> bool:
        """One reconcile; True when everything is in place. Never raises."""
        before = self.problem
        try:
            self.reconcile_once()
        except ControllerError as exc:
            self.problem = str(exc)
        except Exception as exc:  # never let the controller die
            self.problem = f"{type(exc).__name__}: {exc}"
            with _FORK_LOCK:
                log.exception("certificate reconcile failed unexpectedly")
        else:
            self.problem = None
            if before is not None and self.reconciles > 1:
                self._log(logging.INFO, "certificate controller recovered")
        self.publish()
        return self.problem is None

    def run(self) -> None:
        delay = BACKOFF_START
        while not self._stop.is_set():
            ok = self.attempt()
            if ok:
                delay = BACKOFF_START
                wait = self.interval
                if self.next_due is not None:
                    until_due = (self.next_due - self.clock()).total_seconds()
                    wait = min(wait, max(until_due, 0.05))
            else:
                wait = delay
                self._log(
                    logging.WARNING,
                    "certificate controller: retrying",
                    error=self.problem,
                    retryInSeconds=round(delay, 2),
                    serving=self.serving,
                )
                delay = min(delay * 2, max(self.interval, BACKOFF_START))
            if self._stop.wait(wait):
                return

    def start(self) -> None:
        """Reconcile in a daemon thread (the gunicorn master's)."""
        if self._thread is not None:
            return
        _install_fork_guard()
        self._thread = threading.Thread(target=self.run, name="certificates", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._cluster is not None:
            self._cluster.close()

    # ------------------------------------------------------------------ helpers

    def _due(self) -> dict[str, Any]:
        return {"nextCheck": _stamp(self.next_due)} if self.next_due else {}

    def _log(self, level: int, message: str, **fields: Any) -> None:
        extra = {"secret": self.secret_ref, **{k: v for k, v in fields.items() if v is not None}}
        with _FORK_LOCK:
            log.log(level, message, extra=extra)


def _stamp(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
