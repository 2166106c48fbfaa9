"""Where the API server is: kubeconfig or the in-cluster service account.

`load_config(kubeconfig)`: the given path, else `$KUBECONFIG` (a `:`-separated list, as
kubectl reads it), else `~/.kube/config`, else the in-cluster service account; with none
of them, or a broken file, a `KubeConfigError` with a one-line message. The `kubernetes`
package's loaders do the reading (exec plugins, client certificates, token refresh).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from yaml import YAMLError

from webhook.kube.errors import KubeConfigError

IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@cache
def kubernetes_package() -> Any:
    """The `kubernetes` package with its client and config modules (untyped; imported
    lazily: ~0.3 s that a `check` of one file should not pay)."""
    import kubernetes.client
    import kubernetes.config

    return kubernetes


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Where the API server is, and the namespace kubectl would use by default."""

    configuration: Any  # a kubernetes.client.Configuration (host, TLS, credentials)
    namespace: str
    source: str  # "kubeconfig <path>" or "in-cluster"

    @property
    def host(self) -> str:
        return str(self.configuration.host)


def load_config(kubeconfig: str | None = None) -> ClusterConfig:
    """`kubeconfig` or `$KUBECONFIG`, else `~/.kube/config`, else in-cluster."""
    kube = kubernetes_package()
    client, config = kube.client, kube.config
    ConfigException = config.config_exception.ConfigException

    paths = kubeconfig or os.environ.get("KUBECONFIG", "")
    if paths:
        existing = [p for p in paths.split(os.pathsep) if p and Path(p).is_file()]
        if not existing:
            raise KubeConfigError(f"kubeconfig {paths}: no such file")
        files = os.pathsep.join(existing)
    elif (Path.home() / ".kube" / "config").is_file():
        files = str(Path.home() / ".kube" / "config")
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise KubeConfigError(f"in-cluster configuration: {_one_line(exc)}") from exc
        try:
            namespace = Path(IN_CLUSTER_NAMESPACE_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            namespace = "default"
        return ClusterConfig(configuration, namespace or "default", "in-cluster")
    else:
        raise KubeConfigError(
            "no Kubernetes configuration: set KUBECONFIG, create ~/.kube/config, or run in "
            "a pod with a service account (in-cluster)"
        )
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=files, client_configuration=configuration, persist_config=False
        )
        _, current = config.list_kube_config_contexts(config_file=files)
    except (ConfigException, OSError, ValueError, TypeError, KeyError, YAMLError) as exc:
        raise KubeConfigError(f"kubeconfig {files}: {_one_line(exc)}") from exc
    namespace = ""
    if isinstance(current, dict):
        namespace = str((current.get("context") or {}).get("namespace") or "")
    return ClusterConfig(configuration, namespace or "default", f"kubeconfig {files}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__  # a YAML error spans lines
