"""`serve --plugins-from-cluster`: the plugin registry kept from the cluster's ConfigMaps.

What Argo's controller does (spec 3.2), for the webhook: list, then watch, the ConfigMaps
carrying the label key `workflows.argoproj.io/configmap-type` in the given namespaces
(or all), keep those whose value is `ExecutorPlugin`, and publish them as
`ServingState.plugins` (a new list each time: a review reads one consistent list, never
a half-updated one, and never waits for the watcher).

One daemon thread per gunicorn worker, started after the fork (`create_app` runs in the
worker): threads do not survive a fork and a registry in the master would need a way to
ship it to every worker. The cost is one list and one watch per worker, on a selector
that matches a handful of ConfigMaps.

- A 410 (resourceVersion too old) lists again; other errors back off (0.5 s doubling to
  10 s) and list again. Until the first list succeeds, and whenever the last attempt
  failed, `problem` says why (`/readyz`: 200 "degraded" with it).
- One JSON log line per change (added, updated, removed): namespace, name and the new
  count, never the ConfigMap's content.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook.kube import ObjectList, ResourceClient, Watch

log = logging.getLogger("webhook.server.registry")

EXECUTOR_PLUGIN = "ExecutorPlugin"
TYPE_LABEL = "workflows.argoproj.io/configmap-type"
# Argo's ConfigMap informer selects on the label key's existence (spec 3.2).
TYPE_SELECTOR = TYPE_LABEL
WATCH_TIMEOUT = 300  # seconds; the server ends the watch, we re-watch from the last version
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0

Key = tuple[str, str]


def _key(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def list_plugin_configmaps(api: ResourceClient, namespace: str | None) -> ObjectList:
    """The ConfigMaps Argo's controller looks at (label key present) in `namespace` (None:
    all), as the registry lists them; `audit` reads the cluster through this too."""
    return api.list(namespace, label_selector=TYPE_SELECTOR)


def is_executor_plugin(obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return isinstance(labels, dict) and labels.get(TYPE_LABEL) == EXECUTOR_PLUGIN


class ClusterRegistry:
    """Lists and watches plugin ConfigMaps; calls `publish(plugins)` after every change.

    `connect()` gives the ConfigMaps' client (`cluster.resource(kinds.CONFIG_MAP)`); it
    is called in the registry's thread, on first use.
    """

    def __init__(
        self,
        connect: Callable[[], ResourceClient],
        namespaces: Sequence[str],
        publish: Callable[[list[Any]], None],
    ) -> None:
        self._connect = connect
        self._namespaces: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
        self._publish = publish
        self._plugins: dict[Key, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watches: dict[str | None, Watch] = {}
        self._problems: dict[str | None, str] = {n: "not listed yet" for n in self._namespaces}
        self._threads: list[threading.Thread] = []
        self._api: ResourceClient | None = None

    @property
    def problem(self) -> str | None:
        with self._lock:
            problems = [
                f"{'all namespaces' if ns is None else ns}: {text}"
                for ns, text in self._problems.items()
            ]
        return "; ".join(problems) or None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for namespace in self._namespaces:
            thread = threading.Thread(
                target=self._run,
                args=(namespace,),
                name=f"plugin-registry-{namespace or 'all'}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            watch.stop()

    # ------------------------------------------------------------------ the loop

    def _client(self) -> ResourceClient:
        with self._lock:
            if self._api is None:
                self._api = self._connect()
            return self._api

    def _run(self, namespace: str | None) -> None:
        from webhook.kube import KubeApiError, KubeConfigError

        delay = BACKOFF_START
        while not self._stop.is_set():
            try:
                api = self._client()
                listing = list_plugin_configmaps(api, namespace)
                self._replace(namespace, listing.items)
                self._set_problem(namespace, None)
                delay = BACKOFF_START
                version = listing.resource_version
                while not self._stop.is_set():
                    version = self._watch_once(api, namespace, version)
            except (KubeApiError, KubeConfigError) as exc:
                if isinstance(exc, KubeApiError) and exc.gone:
                    log.info(
                        "plugin watch expired; listing again",
                        extra={"namespace": namespace or "*"},
                    )
                    continue
                self._set_problem(namespace, str(exc).splitlines()[0] or type(exc).__name__)
            except Exception as exc:  # never let the registry thread die silently
                log.exception("plugin registry failed; retrying")
                self._set_problem(namespace, f"{type(exc).__name__}: {exc}")
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX)

    def _watch_once(self, api: ResourceClient, namespace: str | None, version: str) -> str:
        watch = api.watch(
            namespace, resource_version=version, timeout=WATCH_TIMEOUT, label_selector=TYPE_SELECTOR
        )
        with self._lock:
            self._watches[namespace] = watch
        try:
            for event in watch:
                if self._stop.is_set():
                    break
                if event.resource_version:
                    version = event.resource_version
                if event.type in ("ADDED", "MODIFIED"):
                    self._upsert(event.object)
                elif event.type == "DELETED":
                    self._remove(_key(event.object))
        finally:
            with self._lock:
                self._watches.pop(namespace, None)
        return version

    # ------------------------------------------------------------------ the registry

    def _set_problem(self, namespace: str | None, problem: str | None) -> None:
        with self._lock:
            before = self._problems.get(namespace)
            if problem is None:
                self._problems.pop(namespace, None)
            else:
                self._problems[namespace] = problem
        if problem is not None and problem != before and before != "not listed yet":
            log.warning(
                "plugin registry: cluster API call failed; retrying",
                extra={"namespace": namespace or "*", "error": problem},
            )
        elif problem is not None and before == "not listed yet":
            log.warning(
                "plugin registry: cannot list plugin ConfigMaps yet; retrying",
                extra={"namespace": namespace or "*", "error": problem},
            )

    def _read(self, obj: dict[str, Any]) -> Any:
        from webhook.executor_plugin import read_plugin

        return read_plugin(obj) if is_executor_plugin(obj) else None

    def _replace(self, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A fresh list: what the watch missed (added, changed, removed) becomes events."""
        fresh: dict[Key, Any] = {}
        for item in items:
            plugin = self._read(item)
            if plugin is not None:
                fresh[_key(item)] = plugin
        with self._lock:
            mine = {k for k in self._plugins if namespace is None or k[0] == namespace}
            removed = mine - set(fresh)
            for key in removed:
                del self._plugins[key]
            changes = [("removed", key) for key in sorted(removed)]
            for key, plugin in fresh.items():
                old = self._plugins.get(key)
                if old is None or old != plugin:
                    changes.append(("added" if old is None else "updated", key))
                self._plugins[key] = plugin
        self._commit(changes)

    def _upsert(self, obj: dict[str, Any]) -> None:
        key = _key(obj)
        plugin = self._read(obj)
        with self._lock:
            old = self._plugins.get(key)
            if plugin is None:  # the label changed away from ExecutorPlugin
                if old is None:
                    return
                del self._plugins[key]
                change = "removed"
            else:
                self._plugins[key] = plugin
                change = "added" if old is None else "updated"
        self._commit([(change, key)])

    def _remove(self, key: Key) -> None:
        with self._lock:
            if self._plugins.pop(key, None) is None:
                return
        self._commit([("removed", key)])

    def _commit(self, changes: list[tuple[str, Key]]) -> None:
        with self._lock:  # published under the lock: two namespaces never race
            plugins = [self._plugins[k] for k in sorted(self._plugins)]
            self._publish(plugins)
        for change, (namespace, name) in changes:
            log.info(
                f"executor plugin {change}",
                extra={
                    "change": change,
                    "namespace": namespace,
                    "configmap": name,
                    "plugins": len(plugins),
                },
            )
