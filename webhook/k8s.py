"""The only module that imports the `kubernetes` package.

Two things live here:

- `api_models()`: the generated API model classes (pure data, used to parse plugin
  containers as strictly as Argo does);
- `TaskSetApi`: every call the in-cluster agent makes to a cluster (list, watch and
  status-patch `WorkflowTaskSet`s, spec section 5), on the real `kubernetes` client
  (`CustomObjectsApi`, `watch.Watch`), with errors wrapped in `KubeApiError`, which
  carries the API server's Status (code, reason, message) and says whether Argo would
  retry it;
- `PluginConfigMapApi`: list and watch the ConfigMaps carrying the label key
  `workflows.argoproj.io/configmap-type` (the selector of Argo's own informer, spec
  3.2), for `plugin-guard serve --plugins-from-cluster`; same errors.

Configuration (`connect()`): `KUBECONFIG` (a `:`-separated list, as kubectl reads it),
else `~/.kube/config`, else the in-cluster service account; with none of them, a
`KubeConfigError` with a one-line message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from yaml import YAMLError

from webhook.errors import GuardError

GROUP = "argoproj.io"
VERSION = "v1alpha1"
TASKSETS = "workflowtasksets"  # namespaced, with a status subresource (spec 5)
# Argo's ConfigMap informer selects on the label key's existence (spec 3.2).
CONFIGMAP_TYPE_SELECTOR = "workflows.argoproj.io/configmap-type"
MERGE_PATCH = "application/merge-patch+json"
IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_REQUEST_TIMEOUT = (10.0, 30.0)  # (connect, read) seconds for list and patch

JsonObject = dict[str, Any]


@cache
def api_models() -> Any:
    """The `kubernetes.client` module, whose `V1...` classes describe the API types.

    Imported lazily: it takes ~0.3 s, which a `check` of one file should not pay
    unless it parses a container.
    """
    from kubernetes import client

    return client


@cache
def _kubernetes() -> Any:
    """The `kubernetes` package with its client, config and watch modules (untyped)."""
    import kubernetes.client
    import kubernetes.config
    import kubernetes.watch

    return kubernetes


class KubeConfigError(GuardError):
    """No usable cluster configuration (no kubeconfig, not in a pod, or a broken file)."""


class KubeApiError(GuardError):
    """A failed API call: the API server's Status, or a transport failure (code 0)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        self.code = code
        self.reason = reason
        self.message = message
        super().__init__(message if not reason else f"{reason}: {message}")

    @property
    def transient(self) -> bool:
        """Worth retrying: transport failures, 429, 5xx (spec 6.5 retries "transient
        errors only"). Argo retries a 500 only when its text names a passing etcd
        state; here every 5xx is retried except etcd's "request is too large", Argo's
        own example of a failure that no retry fixes."""
        if "request is too large" in self.message:
            return False
        return self.code == 0 or self.code == 429 or self.code >= 500

    @property
    def gone(self) -> bool:
        """410: the watch's resourceVersion is too old; list again (spec 6.1)."""
        return self.code == 410


def _wrap(exc: Exception) -> KubeApiError:
    """`ApiException` -> its Status; urllib3/socket errors -> a transient code-0 error."""
    if isinstance(exc, _kubernetes().client.exceptions.ApiException):
        code = int(exc.status or 0)
        reason = str(exc.reason or "")
        message = reason
        body = exc.body
        if body:
            try:
                status = json.loads(body)
            except ValueError:
                status = None
            if isinstance(status, dict):
                message = str(status.get("message") or message)
                reason = str(status.get("reason") or reason)
            else:
                message = str(body)[:300]
        # watch ERROR events arrive as ApiException(status, "Reason: message")
        if not body and ": " in reason:
            reason, _, message = reason.partition(": ")
        return KubeApiError(code, reason, message)
    return KubeApiError(0, "", f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Where the API server is, and the namespace kubectl would use by default."""

    configuration: Any  # kubernetes.client.Configuration
    namespace: str
    source: str  # "kubeconfig <path>" or "in-cluster"


def load_config(kubeconfig: str | None = None) -> ClusterConfig:
    """`kubeconfig` or `$KUBECONFIG`, else `~/.kube/config`, else in-cluster."""
    kube = _kubernetes()
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
            raise KubeConfigError(f"in-cluster configuration: {exc}") from None
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
        detail = " ".join(str(exc).split())  # a YAML error spans several lines
        raise KubeConfigError(f"kubeconfig {files}: {detail}") from None
    namespace = ""
    if isinstance(current, dict):
        namespace = str((current.get("context") or {}).get("namespace") or "")
    return ClusterConfig(configuration, namespace or "default", f"kubeconfig {files}")


@dataclass(frozen=True, slots=True)
class TaskSetList:
    items: list[JsonObject]
    resource_version: str


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK, and the raw object."""

    type: str
    object: JsonObject

    @property
    def resource_version(self) -> str:
        metadata = self.object.get("metadata") or {}
        return str(metadata.get("resourceVersion") or "")


class TaskSetWatch:
    """One watch request; iterate for events, `stop()` from any thread to end it."""

    def __init__(self, api: TaskSetApi, namespace: str | None, resource_version: str, timeout: int):
        self._api = api
        self._namespace = namespace
        self._resource_version = resource_version
        self._timeout = timeout
        self._watch = _kubernetes().watch.Watch()
        self._stopped = False

    def _target(self) -> tuple[Any, tuple[str, ...], dict[str, Any]]:
        """The list call to stream, its positional arguments and extra keywords."""
        objects = self._api.objects
        if self._namespace is None:
            return objects.list_cluster_custom_object, (GROUP, VERSION, TASKSETS), {}
        return (
            objects.list_namespaced_custom_object,
            (GROUP, VERSION, self._namespace, TASKSETS),
            {},
        )

    def __iter__(self) -> Iterator[WatchEvent]:
        kwargs: dict[str, Any] = {
            "resource_version": self._resource_version,
            "allow_watch_bookmarks": True,
            # A server-side timeout makes `Watch.stream` return instead of re-watching
            # on its own: the caller re-watches from the last resourceVersion it saw
            # and lists again on 410 (spec 6.1).
            "timeout_seconds": self._timeout,
            "_request_timeout": (DEFAULT_REQUEST_TIMEOUT[0], self._timeout + 30.0),
        }
        call, args, extra = self._target()
        kwargs.update(extra)
        try:
            for event in self._watch.stream(call, *args, **kwargs):
                raw = event.get("raw_object")
                if isinstance(raw, dict):
                    yield WatchEvent(str(event.get("type") or ""), raw)
        except Exception as exc:
            if self._stopped:  # the socket was shut down under the reader on purpose
                return
            raise _wrap(exc) from None

    def stop(self) -> None:
        """Unblock a thread waiting in `__iter__` (shuts the socket down)."""
        self._stopped = True
        self._watch.stop()


class TaskSetApi:
    """`WorkflowTaskSet` calls for the agent (spec sections 5 and 6)."""

    def __init__(self, cluster: ClusterConfig) -> None:
        client = _kubernetes().client
        self.cluster = cluster
        self._client = client.ApiClient(cluster.configuration)
        self.objects = client.CustomObjectsApi(self._client)

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> TaskSetApi:
        return cls(load_config(kubeconfig))

    def close(self) -> None:
        self._client.close()

    def list(self, namespace: str | None) -> TaskSetList:
        """Every TaskSet of one namespace (or of all, with None), and the list's version."""
        answer: Any
        try:
            if namespace is None:
                answer = self.objects.list_cluster_custom_object(
                    GROUP, VERSION, TASKSETS, _request_timeout=DEFAULT_REQUEST_TIMEOUT
                )
            else:
                answer = self.objects.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, TASKSETS, _request_timeout=DEFAULT_REQUEST_TIMEOUT
                )
        except Exception as exc:
            raise _wrap(exc) from None
        items = [item for item in answer.get("items") or [] if isinstance(item, dict)]
        version = str((answer.get("metadata") or {}).get("resourceVersion") or "")
        return TaskSetList(items, version)

    def watch(self, namespace: str | None, resource_version: str, timeout: int) -> TaskSetWatch:
        return TaskSetWatch(self, namespace, resource_version, timeout)

    def patch_status(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        """A JSON merge patch on the `status` subresource (spec 6.5)."""
        try:
            answer = self.objects.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                TASKSETS,
                name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=DEFAULT_REQUEST_TIMEOUT,
            )
        except Exception as exc:
            raise _wrap(exc) from None
        return answer if isinstance(answer, dict) else {}


class ConfigMapWatch(TaskSetWatch):
    """A watch of the plugin-type ConfigMaps of one namespace (or of all, with None)."""

    def __init__(
        self,
        api: PluginConfigMapApi,
        namespace: str | None,
        resource_version: str,
        timeout: int,
    ) -> None:
        self._core = api.core
        super().__init__(api, namespace, resource_version, timeout)  # type: ignore[arg-type]

    def _target(self) -> tuple[Any, tuple[str, ...], dict[str, Any]]:
        extra = {"label_selector": CONFIGMAP_TYPE_SELECTOR}
        if self._namespace is None:
            return self._core.list_config_map_for_all_namespaces, (), extra
        return self._core.list_namespaced_config_map, (self._namespace,), extra


class PluginConfigMapApi:
    """ConfigMaps labelled `workflows.argoproj.io/configmap-type` (Argo's plugin informer,
    spec 3.2): list and watch, for the server's cluster plugin registry."""

    def __init__(self, cluster: ClusterConfig) -> None:
        client = _kubernetes().client
        self.cluster = cluster
        self._client = client.ApiClient(cluster.configuration)
        self.core = client.CoreV1Api(self._client)

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> PluginConfigMapApi:
        return cls(load_config(kubeconfig))

    def close(self) -> None:
        self._client.close()

    def list(self, namespace: str | None) -> TaskSetList:
        """The labelled ConfigMaps of one namespace (or of all, with None), as plain
        dicts (the API's JSON, not model objects), and the list's resourceVersion."""
        try:
            if namespace is None:
                response = self.core.list_config_map_for_all_namespaces(
                    label_selector=CONFIGMAP_TYPE_SELECTOR,
                    _preload_content=False,
                    _request_timeout=DEFAULT_REQUEST_TIMEOUT,
                )
            else:
                response = self.core.list_namespaced_config_map(
                    namespace,
                    label_selector=CONFIGMAP_TYPE_SELECTOR,
                    _preload_content=False,
                    _request_timeout=DEFAULT_REQUEST_TIMEOUT,
                )
            answer = json.loads(response.data)
        except Exception as exc:
            raise _wrap(exc) from None
        if not isinstance(answer, dict):
            raise KubeApiError(0, "", "ConfigMap list: not a JSON object")
        items = [item for item in answer.get("items") or [] if isinstance(item, dict)]
        version = str((answer.get("metadata") or {}).get("resourceVersion") or "")
        return TaskSetList(items, version)

    def watch(self, namespace: str | None, resource_version: str, timeout: int) -> ConfigMapWatch:
        return ConfigMapWatch(self, namespace, resource_version, timeout)
