"""The policies and the plugin registry a running server evaluates with, hot-reloaded,
and the readiness that follows from them (`readiness()`, what `/readyz` answers).

A watcher thread (one per gunicorn worker) stats the folders every few seconds; when a
file was added, removed or changed, it loads the whole folder again. A folder that
fails to load is reported (a JSON log line naming file, policy and field, and `/readyz`
answering 503 with the same text) while the last good set keeps serving. Mounted
ConfigMaps change by an atomic symlink swap and send no reliable inotify events, so
polling is the portable choice (the same reasoning as kopf's certificate re-hashing).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook.errors import GuardError
from webhook.server.readiness import Condition, Probe, Readiness, ReadinessStatus

log = logging.getLogger("webhook.server.state")

WATCHED_SUFFIXES = (".yaml", ".yml", ".json")

DirSignature = tuple[tuple[str, int, int, int], ...]


def dir_signature(directory: Path | None) -> DirSignature:
    """What changes when a watched file is added, removed, replaced or edited."""
    if directory is None:
        return ()
    out = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".."))
        for name in sorted(files):
            if not name.endswith(WATCHED_SUFFIXES) or name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            out.append((path, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_policy_set(directory: Path | None) -> Any:
    """`webhook.policy.load_policies` (bundled set when `directory` is None), warmed up
    so that the first review after a (re)load is as fast as the others."""
    from webhook.policy import load_policies
    from webhook.server.warmup import warm_up

    policy_set = load_policies(directory)
    warm_up(policy_set)
    return policy_set


def load_registry(directory: Path | None) -> list[Any]:
    """Every executor plugin (ConfigMap or plugin.yaml) found in a folder, as ExecutorPlugin."""
    if directory is None:
        return []
    from webhook.executor_plugin import read_plugin
    from webhook.manifests import load_documents

    plugins = []
    for doc in load_documents([str(directory)]):
        plugin = read_plugin(doc.obj)
        if plugin is not None:
            plugins.append(plugin)
    return plugins


@dataclass(slots=True)
class _Source:
    name: str
    directory: Path | None
    signature: DirSignature = ()
    error: str | None = None


ReloadListener = Callable[[bool], None]


class ServingState:
    """What every review reads: `policy_set`, `plugins`; and what `/readyz` reports.

    Listeners added with `add_reload_listener` hear of every reload (True: loaded,
    False: failed, the last good set kept); probes added with `add_readiness_probe`
    take part in `readiness()`.
    """

    def __init__(
        self,
        *,
        policies_dir: Path | None,
        plugins_dir: Path | None = None,
        policy_set: Any = None,
        plugins: list[Any] | None = None,
        policy_loader: Callable[[Path | None], Any] = load_policy_set,
        registry_loader: Callable[[Path | None], list[Any]] = load_registry,
        on_reload: ReloadListener | None = None,
    ) -> None:
        self._policy_loader = policy_loader
        self._registry_loader = registry_loader
        self._reload_listeners: list[ReloadListener] = [on_reload] if on_reload else []
        self._readiness_probes: list[tuple[str, Probe]] = []
        self._policies = _Source("policies", policies_dir)
        self._registry = _Source("plugins", plugins_dir)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cluster: Any = None  # a ClusterRegistry (serve --plugins-from-cluster)
        self.policy_set: Any = policy_set
        self.plugins: list[Any] = plugins if plugins is not None else []
        if policy_set is None:
            self._policies.signature = dir_signature(policies_dir)
            self.policy_set = policy_loader(policies_dir)  # errors propagate: no last good set
        else:
            self._policies.signature = dir_signature(policies_dir)
        self._registry.signature = dir_signature(plugins_dir)
        if plugins is None and plugins_dir is not None:
            self.plugins = registry_loader(plugins_dir)

    @classmethod
    def preload(cls, policies_dir: Path | None, plugins_dir: Path | None = None) -> ServingState:
        """Load before forking workers (raises PolicyLoadError / ManifestError)."""
        return cls(policies_dir=policies_dir, plugins_dir=plugins_dir)

    def add_reload_listener(self, listener: ReloadListener) -> None:
        """Call `listener(ok)` after every reload (a preloaded state gets its worker's
        metrics this way)."""
        self._reload_listeners.append(listener)

    def add_readiness_probe(self, name: str, probe: Probe) -> None:
        """Ask `probe()` on every `readiness()`; its problem is reported as `name: ...`
        and `Condition(ready=False)` makes the server not ready (see `readiness`)."""
        self._readiness_probes.append((name, probe))

    def readiness(self) -> Readiness:
        """Ready, degraded (serving, with problems) or not ready (nothing to serve with)."""
        problems = list(self.problems)
        serving = self.policy_set is not None
        details: dict[str, Mapping[str, Any]] = {}
        for name, probe in self._readiness_probes:
            condition: Condition = probe()
            if condition.problem:
                problems.append(f"{name}: {condition.problem}")
            if condition.details is not None:
                details[name] = condition.details
            serving = serving and condition.ready
        if self.policy_set is None:
            problems.append("policies: not loaded")
        status: ReadinessStatus = (
            "not ready" if not serving else "degraded" if problems else "ready"
        )
        return Readiness(
            status=status,
            policies=len(getattr(self.policy_set, "policy_ids", None) or []),
            plugins=len(self.plugins),
            problems=tuple(problems),
            details=details,
        )

    @property
    def problems(self) -> list[str]:
        problems = [f"{s.name}: {s.error}" for s in (self._policies, self._registry) if s.error]
        cluster_problem = self.cluster.problem if self.cluster is not None else None
        if cluster_problem:
            problems.append(f"plugins (cluster): {cluster_problem}")
        return problems

    def watch_cluster(self, connect: Callable[[], Any], namespaces: tuple[str, ...]) -> None:
        """Keep `plugins` equal to the cluster's plugin ConfigMaps (a thread per worker;
        see `webhook.server.registry`). `plugins` is replaced, never mutated."""
        if self.cluster is not None:
            return
        from webhook.server.registry import ClusterRegistry

        def publish(plugins: list[Any]) -> None:
            self.plugins = plugins

        self.cluster = ClusterRegistry(connect, namespaces, publish)
        self.cluster.start()

    @property
    def ready(self) -> bool:
        return self.readiness().status == "ready"

    def check(self) -> bool:
        """Reload whatever changed on disk; True when something was (re)loaded."""
        changed = False
        policies = self._policies
        if policies.directory is not None:
            signature = dir_signature(policies.directory)
            if signature != policies.signature:
                policies.signature = signature
                changed |= self._reload(policies, lambda: self._load_policies(policies))
        registry = self._registry
        if registry.directory is not None:
            signature = dir_signature(registry.directory)
            if signature != registry.signature:
                registry.signature = signature
                changed |= self._reload(registry, lambda: self._load_registry(registry))
        return changed

    def _load_policies(self, source: _Source) -> None:
        self.policy_set = self._policy_loader(source.directory)

    def _load_registry(self, source: _Source) -> None:
        self.plugins = self._registry_loader(source.directory)

    def _reload(self, source: _Source, load: Callable[[], None]) -> bool:
        started = time.perf_counter()
        try:
            load()
        except (GuardError, OSError, ValueError) as exc:
            source.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            extra: dict[str, Any] = {"source": source.name, "error": source.error}
            for attr in ("source", "policy", "field"):
                value = getattr(exc, attr, None)
                if value:
                    extra[f"error_{attr}"] = value
            log.error("reload failed; still serving the last good set", extra=extra)
            self._tell_listeners(False)
            return False
        source.error = None
        log.info(
            "reloaded",
            extra={
                "source": source.name,
                "durationMs": round((time.perf_counter() - started) * 1000, 1),
                "policies": len(getattr(self.policy_set, "policy_ids", []) or []),
                "plugins": len(self.plugins),
            },
        )
        self._tell_listeners(True)
        return True

    def _tell_listeners(self, ok: bool) -> None:
        for listener in self._reload_listeners:
            listener(ok)

    def start(self, interval: float) -> None:
        """Poll in a daemon thread (one per worker process)."""
        if self._thread is not None or interval <= 0:
            return
        if self._policies.directory is None and self._registry.directory is None:
            return

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.check()
                except Exception:  # never let the watcher die silently
                    log.exception("policy watcher failed; retrying")

        self._thread = threading.Thread(target=run, name="policy-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.cluster is not None:
            self.cluster.stop()
