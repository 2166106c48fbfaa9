"""A small fake of the Kubernetes API endpoints our code calls, on a loopback socket,
for the real `kubernetes` client (the in-cluster agent's TaskSets, the webhook's
cluster plugin registry).

No kube-apiserver can run here (shared/research/tools.md section 4). `kmock` 0.8's
`KubernetesEmulator` was tried first: it serves every list with resourceVersion `"..."`,
ignores `resourceVersion` on watches (every watch replays every object), has no 410 and
no status subresource, which are exactly the behaviours under test. So this fake
implements, for `argoproj.io/v1alpha1` `workflowtasksets` and core `v1` `configmaps`:

- `GET .../namespaces/NS/<plural>` and `GET .../<plural>` (all namespaces): a list
  with one `metadata.resourceVersion` for the whole API (one counter, as etcd has);
  `labelSelector` supports a label key (existence), what the registry sends;
- the same with `?watch=true&resourceVersion=RV`: chunked JSON lines of every event
  after RV, then new events as they happen, until `timeoutSeconds` or `close_watches()`;
  an RV older than the compaction point gets Kubernetes' 410 ERROR event;
- `PATCH .../namespaces/NS/workflowtasksets/NAME/status` with
  `application/merge-patch+json`: RFC 7386 on `status` only (a status subresource
  ignores everything else), a new resourceVersion and a MODIFIED event;
- scripted failures (`fail(...)`) and a record of every request.

Tests change objects through `create` (TaskSets), `apply` (any object), `update` and
`delete`, as the controller or `kubectl apply` would. `FakeKubeApi(port=N)` binds a
fixed port, so a test can point a kubeconfig at an API that is not up yet.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/apis/argoproj.io/v1alpha1"
_PATH = re.compile(
    r"^(?:/apis/argoproj\.io/v1alpha1|/api/v1)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<plural>workflowtasksets|configmaps)"
    r"(?:/(?P<name>[^/]+)(?P<sub>/status)?)?$"
)
# plural -> (apiVersion, kind) of its objects
_KINDS = {
    "workflowtasksets": ("argoproj.io/v1alpha1", "WorkflowTaskSet"),
    "configmaps": ("v1", "ConfigMap"),
}
_PLURALS = {kind: plural for plural, (_, kind) in _KINDS.items()}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class Failure:
    method: str
    path_suffix: str
    status: int
    reason: str
    message: str
    times: int = 1


@dataclass
class _State:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (rv, type, obj)
    version: int = 100
    compacted: int = 0  # watches from an RV below this get 410
    generation: int = 0  # bumped by close_watches()


class FakeKubeApi:
    """`with FakeKubeApi() as api:` serves on `api.url` until the block ends."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._state = _State()
        self._cond = threading.Condition()
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self.sent_versions: list[str] = []  # resourceVersions written to watch streams
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeKubeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api._handle(self, "GET")

            def do_PATCH(self) -> None:
                api._handle(self, "PATCH")

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.close_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def kubeconfig(
        self, token: str = "fake-api-bearer-token", namespace: str | None = "argo"
    ) -> str:
        url = self.url or f"http://127.0.0.1:{self.port}"  # also before start()
        context: dict[str, str] = {"cluster": "fake", "user": "fake"}
        if namespace is not None:
            context["namespace"] = namespace
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "fake", "user": {"token": token}}],
                "contexts": [{"name": "fake", "context": context}],
                "current-context": "fake",
            }
        )

    # ------------------------------------------------------------------ the "controller"

    def _bump(self, kind: str, obj: dict[str, Any]) -> None:
        self._state.version += 1
        obj["metadata"]["resourceVersion"] = str(self._state.version)
        self._state.events.append((self._state.version, kind, copy.deepcopy(obj)))
        self._cond.notify_all()

    def create(
        self,
        name: str,
        tasks: dict[str, Any],
        *,
        namespace: str = "argo",
        workflow_uid: str | None = "wf-uid-1",
        labels: dict[str, str] | None = None,
        status: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTaskSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "labels": {"workflows.argoproj.io/completed": "false", **(labels or {})},
            },
            "spec": {"tasks": copy.deepcopy(tasks)},
        }
        if workflow_uid is not None:
            obj["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Workflow",
                    "name": name,
                    "uid": workflow_uid,
                }
            ]
        if status is not None:
            obj["status"] = copy.deepcopy(status)
        with self._cond:
            self._state.objects[("workflowtasksets", namespace, name)] = obj
            self._bump("ADDED", obj)
            return copy.deepcopy(obj)

    def apply(self, obj: dict[str, Any]) -> None:
        """Create or replace any object (ADDED or MODIFIED), as `kubectl apply` would."""
        obj = copy.deepcopy(obj)
        key = (_PLURALS[obj["kind"]], obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._cond:
            kind = "MODIFIED" if key in self._state.objects else "ADDED"
            self._state.objects[key] = obj
            self._bump(kind, obj)

    def update(self, name: str, patch: dict[str, Any], *, namespace: str = "argo") -> None:
        """A merge patch on the main resource, as the controller's createTaskSet sends."""
        with self._cond:
            key = self._key(name, namespace)
            obj = merge_patch(self._state.objects[key], patch)
            self._state.objects[key] = obj
            self._bump("MODIFIED", obj)

    def delete(self, name: str, *, namespace: str = "argo") -> None:
        with self._cond:
            obj = self._state.objects.pop(self._key(name, namespace))
            self._bump("DELETED", obj)

    def get(self, name: str, *, namespace: str = "argo") -> dict[str, Any]:
        with self._cond:
            return copy.deepcopy(self._state.objects[self._key(name, namespace)])

    def nodes(self, name: str, *, namespace: str = "argo") -> dict[str, Any]:
        with self._cond:
            obj = self._state.objects.get(("workflowtasksets", namespace, name)) or {}
            return copy.deepcopy((obj.get("status") or {}).get("nodes") or {})

    def _key(self, name: str, namespace: str) -> tuple[str, str, str]:
        """The one object of that name (tests never reuse a name across kinds)."""
        [key] = [k for k in self._state.objects if k[1:] == (namespace, name)]
        return key

    def compact(self) -> None:
        """Forget history: a watch from any RV seen so far now gets 410 Gone."""
        with self._cond:
            self._state.compacted = self._state.version
            self._state.events.clear()

    def close_watches(self) -> None:
        """End every open watch stream, as an API server does on its timeout."""
        with self._cond:
            self._state.generation += 1
            self._cond.notify_all()

    def fail(
        self, method: str, path_suffix: str, status: int, message: str, *, times: int = 1
    ) -> None:
        reasons = {500: "InternalError", 403: "Forbidden", 413: "RequestEntityTooLarge"}
        with self._cond:
            self.failures.append(
                Failure(method, path_suffix, status, reasons.get(status, "Unknown"), message, times)
            )

    def requests_matching(self, method: str, suffix: str = "") -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # ------------------------------------------------------------------ HTTP

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = Request(
            method,
            split.path,
            query,
            {k.lower(): v for k, v in handler.headers.items()},
            json.loads(raw) if raw else None,
        )
        with self._cond:
            self.requests.append(request)
            failure = next(
                (
                    f
                    for f in self.failures
                    if f.method == method and split.path.endswith(f.path_suffix) and f.times > 0
                ),
                None,
            )
            if failure is not None:
                failure.times -= 1
        if failure is not None:
            self._status(handler, failure.status, failure.reason, failure.message)
            return
        match = _PATH.match(split.path)
        if match is None:
            self._status(handler, 404, "NotFound", f"the server could not find {split.path}")
            return
        namespace, name, sub = match["ns"], match["name"], match["sub"]
        plural, selector = match["plural"], query.get("labelSelector", "")
        if method == "GET" and name is None:
            if query.get("watch") in ("true", "1"):
                self._watch(handler, plural, namespace, selector, query)
            else:
                self._list(handler, plural, namespace, selector)
        elif method == "PATCH" and name is not None and sub and namespace:
            self._patch_status(handler, request, plural, namespace, name)
        else:
            self._status(handler, 405, "MethodNotAllowed", f"{method} {split.path}")

    @staticmethod
    def _send_json(handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _status(self, handler: BaseHTTPRequestHandler, code: int, reason: str, msg: str) -> None:
        self._send_json(
            handler,
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": msg,
                "reason": reason,
                "code": code,
            },
        )

    @staticmethod
    def _selected(obj: dict[str, Any], plural: str, namespace: str | None, selector: str) -> bool:
        if obj.get("kind") != _KINDS[plural][1]:
            return False
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        return not selector or selector in (obj["metadata"].get("labels") or {})

    def _list(
        self, handler: BaseHTTPRequestHandler, plural: str, namespace: str | None, selector: str
    ) -> None:
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for _, obj in sorted(self._state.objects.items())
                if self._selected(obj, plural, namespace, selector)
            ]
            version = str(self._state.version)
        api_version, kind = _KINDS[plural]
        self._send_json(
            handler,
            200,
            {
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _watch(
        self,
        handler: BaseHTTPRequestHandler,
        plural: str,
        namespace: str | None,
        selector: str,
        query: dict[str, str],
    ) -> None:
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 3600)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(event: dict[str, Any]) -> None:
            data = (json.dumps(event) + "\n").encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()

        deadline = time.monotonic() + timeout
        try:
            with self._cond:
                generation = self._state.generation
                if since < self._state.compacted:
                    message = f"too old resource version: {since} ({self._state.compacted})"
                    pending: list[dict[str, Any]] = [
                        {
                            "type": "ERROR",
                            "object": {
                                "kind": "Status",
                                "apiVersion": "v1",
                                "metadata": {},
                                "status": "Failure",
                                "message": message,
                                "reason": "Expired",
                                "code": 410,
                            },
                        }
                    ]
                    done = True
                else:
                    pending, done = [], False
            for event in pending:
                chunk(event)
            cursor = since
            while not done:
                with self._cond:
                    fresh = [
                        (rv, kind, obj)
                        for rv, kind, obj in self._state.events
                        if rv > cursor and self._selected(obj, plural, namespace, selector)
                    ]
                    if self._state.events:
                        cursor = max(cursor, self._state.events[-1][0])
                    if not fresh:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self._state.generation != generation:
                            break
                        self._cond.wait(min(remaining, 0.5))
                        continue
                for rv, kind, obj in fresh:
                    chunk({"type": kind, "object": obj})
                    with self._cond:
                        self.sent_versions.append(str(rv))
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        handler.close_connection = True

    def _patch_status(
        self,
        handler: BaseHTTPRequestHandler,
        request: Request,
        plural: str,
        namespace: str,
        name: str,
    ) -> None:
        content_type = request.headers.get("content-type", "")
        if content_type != "application/merge-patch+json":
            self._status(handler, 415, "UnsupportedMediaType", f"unexpected {content_type}")
            return
        with self._cond:
            obj = self._state.objects.get((plural, namespace, name))
            if obj is None:
                group = _KINDS[plural][0].rpartition("/")[0]
                resource = f"{plural}.{group}" if group else plural
                message = f'{resource} "{name}" not found'
                reply: tuple[int, Any] | None = None
            else:
                patch = request.body if isinstance(request.body, dict) else {}
                if "status" in patch:  # the status subresource takes only .status
                    obj["status"] = merge_patch(obj.get("status"), patch["status"])
                self._bump("MODIFIED", obj)
                reply = (200, copy.deepcopy(obj))
        if reply is None:
            self._status(handler, 404, "NotFound", message)
        else:
            self._send_json(handler, *reply)
