"""`plugin-guard serve --tls-secret-name NS/NAME`: self-managed TLS, set up in the master.

`SelfManagedTls.prepare(...)` runs before gunicorn starts: it tries one reconcile at
once (normally the certificate is in place before the first worker forks, and the pod
is ready at its first probe); when the API cannot be reached yet, it writes a throwaway
placeholder pair so the server can listen and answer `/healthz` and a 503 `/readyz`
with the reason, and the controller thread keeps trying. `start()` starts that thread,
in the master process, right before the arbiter runs.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from webhook.certificates.controller import (
    CertificateController,
    WebhookConfigurationRef,
    mutating,
    validating,
)
from webhook.certificates.files import ServingFiles
from webhook.certificates.issuing import service_names
from webhook.certificates.renewal import RenewalPolicy
from webhook.errors import GuardError

# RFC 1123 labels (namespaces, Service names) and subdomains (Secret, configuration names).
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


# The first attempt runs before gunicorn listens: a blackholed API server must not hold
# the start past the kubelet's liveness budget (3 connection tries x 2 s, then 5 s reads).
FIRST_ATTEMPT_TIMEOUT = (2.0, 5.0)
REQUEST_TIMEOUT = (5.0, 15.0)  # (connect, read) seconds for the controller thread's calls


class TlsOptionError(GuardError):
    """A self-managed TLS option that cannot work (a usage error: exit 2)."""


def parse_secret_ref(text: str) -> tuple[str, str]:
    namespace, sep, name = text.partition("/")
    if not sep or not _LABEL.match(namespace) or not _SUBDOMAIN.match(name):
        raise TlsOptionError(
            f"--tls-secret-name {text!r}: expected NAMESPACE/NAME (lowercase Kubernetes names), "
            "e.g. argo-plugin-guard/argo-plugin-guard-tls"
        )
    return namespace, name


def check_name(flag: str, name: str, pattern: re.Pattern[str] = _SUBDOMAIN) -> str:
    if not pattern.match(name):
        raise TlsOptionError(f"{flag} {name!r}: not a valid Kubernetes name")
    return name


@dataclass(frozen=True, slots=True)
class TlsOptions:
    secret: str
    service_name: str
    validating: tuple[str, ...] = ()
    mutating: tuple[str, ...] = ()
    extra_names: tuple[str, ...] = ()
    policy: RenewalPolicy = field(default_factory=RenewalPolicy)
    interval: float = 30.0
    folder: Path | None = None


class SelfManagedTls:
    def __init__(self, controller: CertificateController, files: ServingFiles) -> None:
        self.controller = controller
        self.files = files

    @property
    def cert_file(self) -> Path:
        return self.files.cert

    @property
    def key_file(self) -> Path:
        return self.files.key

    @property
    def status_dir(self) -> Path:
        return self.files.folder

    @classmethod
    def prepare(cls, options: TlsOptions) -> SelfManagedTls:
        from webhook.kube import Cluster

        namespace, secret_name = parse_secret_ref(options.secret)
        service = check_name("--tls-service-name", options.service_name, _LABEL)
        refs: list[WebhookConfigurationRef] = [
            validating(check_name("--validating-webhook-configuration", n))
            for n in options.validating
        ]
        refs += [
            mutating(check_name("--mutating-webhook-configuration", n)) for n in options.mutating
        ]
        if options.interval * 2 > options.policy.settle.total_seconds():
            raise TlsOptionError(
                f"--tls-reconcile-interval {options.interval:g}s must be at most half the CA "
                f"overlap ({options.policy.settle.total_seconds():g}s, a tenth of "
                "--tls-cert-validity up to 10 minutes): replicas must see a new CA before "
                "it signs"
            )
        folder = options.folder or _private_folder()
        files = ServingFiles(folder)
        names = service_names(service, namespace, options.extra_names)
        controller = CertificateController(
            connect=partial(Cluster.connect, request_timeout=FIRST_ATTEMPT_TIMEOUT),
            namespace=namespace,
            secret_name=secret_name,
            names=names,
            webhooks=refs,
            files=files,
            policy=options.policy,
            interval=options.interval,
        )
        tls = cls(controller, files)
        if not controller.attempt() and not controller.serving:
            files.write_placeholder(names, dt.datetime.now(dt.UTC))
        controller.reconnect(partial(Cluster.connect, request_timeout=REQUEST_TIMEOUT))
        return tls

    def start(self) -> None:
        self.controller.start()

    def describe(self) -> dict[str, Any]:
        """The start-up facts, as fields of serve's `self-managed TLS` log line."""
        c = self.controller
        facts: dict[str, Any] = {
            "secret": str(c.secret_ref),
            "dnsName": c.names[0],
            "webhookConfigurations": [str(r) for r in c.webhooks],
            "certificate": "in place" if c.serving else "waiting",
        }
        if not c.serving:
            facts["problem"] = c.problem
        return facts


def _private_folder() -> Path:
    """A fresh 0700 folder under $TMPDIR (the chart mounts /tmp as a memory emptyDir:
    the key never reaches a disk), removed when the master exits."""
    folder = Path(tempfile.mkdtemp(prefix="plugin-guard-tls-"))
    owner = os.getpid()

    def cleanup() -> None:
        if os.getpid() == owner:
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(cleanup)
    return folder
