"""A small fake of the Kubernetes API server, on a loopback socket, for the real client.

No kube-apiserver can run here (shared/research/tools.md section 4). `kmock` 0.8's
`KubernetesEmulator` was tried first: it serves every list with resourceVersion `"..."`,
ignores `resourceVersion` on watches (every watch replays every object), has no 410 and
no status subresource, which are exactly the behaviours under test. So this fake
implements the API server's generic REST layer, for any resource:

- paths `/api/v1/...` (core) and `/apis/<group>/<version>/...`, namespaced
  (`.../namespaces/<ns>/<plural>[/<name>[/status]]`, and `.../<plural>` across every
  namespace) and cluster-scoped (`.../<plural>[/<name>]`); the resources this project
  uses are known (`RESOURCES`: kind, scope, status subresource); any other plural works
  too (scope from the path, kind from the object), or is declared with `register(...)`;
- one resourceVersion counter for the whole API (as etcd has), `uid`,
  `creationTimestamp` and `generation` set by the server;
- GET one object; list with `labelSelector` (`k`, `!k`, `k=v`, `k==v`, `k!=v`,
  `k in (a,b)`, `k notin (a,b)`), `fieldSelector` (`metadata.name`,
  `metadata.namespace`), `limit` + `continue` (a token older than the compaction point
  is 410 Expired);
- `?watch=true&resourceVersion=RV`: chunked JSON lines of every event after RV, then
  new events as they happen, until `timeoutSeconds` or `close_watches()`; RV ""/"0"
  starts with the current objects as ADDED; a selector sees an object that stops
  (starts) matching as DELETED (ADDED); BOOKMARK events on `bookmark()` for watches
  that allow them; an RV older than the compaction point gets Kubernetes' 410 ERROR;
- POST (409 AlreadyExists; `generateName`), PUT (409 Conflict on a stale
  `metadata.resourceVersion`; 404 when missing), PATCH merge (RFC 7386), json
  (RFC 6902, 422 when an operation fails), strategic (built-in groups only, applied as
  a merge patch: lists are replaced, not merged by key; 415 for custom resources, as the
  API server answers) and apply (server-side apply, approximated as a create-or-merge
  without field ownership; needs `fieldManager`); a patch that carries
  `metadata.resourceVersion` is checked like a PUT;
- the status subresource, as for a CRD with one: `/status` changes only `status`; the
  main resource ignores `status` (on create too);
- DELETE (404 when missing; `preconditions` on uid / resourceVersion: 409), answered
  with the deleted object;
- scripted failures (`fail(...)`), slow answers (`stall(...)`) and a record of every
  request (`requests`).

Tests change objects through the controller-side helpers (no HTTP, watch events sent):
`create` (a TaskSet), `apply` (any object), `update` (merge patch), `delete`, and read
them with `get`, `objects` and `nodes`. `FakeKubeApi(port=N)` binds a fixed port, so a
test can point a kubeconfig at an API that is not up yet.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonpatch
import yaml

PREFIX = "/apis/argoproj.io/v1alpha1"


@dataclass(frozen=True)
class Resource:
    """What the API server knows of a resource: its kind, scope and subresources."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`<plural>.<group>`, as the API server's messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def builtin(self) -> bool:
        """Served by the API server itself (strategic merge works), not a CRD."""
        return (
            not self.group
            or self.group.endswith(".k8s.io")
            or self.group in {"apps", "batch", "policy", "autoscaling"}
        )


RESOURCES = [
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "pods", "Pod", status_subresource=True),
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True),
    Resource("argoproj.io", "v1alpha1", "workflowtasksets", "WorkflowTaskSet", True, True),
    Resource("argoproj.io", "v1alpha1", "workflows", "Workflow"),
    Resource("argoproj.io", "v1alpha1", "workflowtemplates", "WorkflowTemplate"),
    Resource(
        "argoproj.io", "v1alpha1", "clusterworkflowtemplates", "ClusterWorkflowTemplate", False
    ),
    Resource("argoproj.io", "v1alpha1", "cronworkflows", "CronWorkflow", True, True),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    Resource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    Resource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    Resource("wgpolicyk8s.io", "v1alpha2", "policyreports", "PolicyReport"),
    Resource("wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports", "ClusterPolicyReport", False),
]

_CORE = re.compile(r"^/api/(?P<version>[^/]+)(?P<rest>(?:/[^/]+)*)$")
_GROUP = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)(?P<rest>(?:/[^/]+)*)$")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s rand.String, for generateName
_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


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


def _apply_merge(target: Any, intent: Any) -> Any:
    """Server-side apply, roughly: the intent's fields over the live object (no removals)."""
    if not isinstance(intent, dict) or not isinstance(target, dict):
        return copy.deepcopy(intent)
    result = dict(target)
    for key, value in intent.items():
        result[key] = _apply_merge(result.get(key), value)
    return result


# --------------------------------------------------------------------------- selectors

_SET_REQUIREMENT = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    """Requirements split on the commas outside `(...)`."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


class SelectorError(ValueError):
    pass


def label_matcher(selector: str) -> Callable[[dict[str, str]], bool]:
    """A Kubernetes label selector as a predicate on a labels dict."""
    requirements: list[tuple[str, str, frozenset[str]]] = []  # (key, operator, values)
    for requirement in _split_selector(selector):
        if match := _SET_REQUIREMENT.match(requirement):
            values = frozenset(v.strip() for v in match[3].split(",") if v.strip())
            requirements.append((match[1], match[2], values))
        elif "=" in requirement:
            operator = "!=" if "!=" in requirement else "==" if "==" in requirement else "="
            key, _, value = requirement.partition(operator)
            requirements.append(
                (key.strip(), "notin" if operator == "!=" else "in", frozenset([value.strip()]))
            )
        elif requirement.startswith("!"):
            requirements.append((requirement[1:].strip(), "absent", frozenset()))
        elif re.fullmatch(r"[A-Za-z0-9._/-]+", requirement):
            requirements.append((requirement, "present", frozenset()))
        else:
            raise SelectorError(f"unable to parse requirement: {requirement!r}")

    def matches(labels: dict[str, str]) -> bool:
        for key, operator, values in requirements:
            if operator == "in":
                ok = labels.get(key) in values
            elif operator == "notin":
                ok = labels.get(key) not in values
            else:
                ok = (key in labels) == (operator == "present")
            if not ok:
                return False
        return True

    return matches


def field_matcher(selector: str) -> Callable[[dict[str, Any]], bool]:
    """`metadata.name` / `metadata.namespace` with `=`, `==`, `!=`."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for requirement in _split_selector(selector):
        negate = "!=" in requirement
        key, _, value = requirement.partition(
            "!=" if negate else "==" if "==" in requirement else "="
        )
        key, value = key.strip(), value.strip()
        if key not in ("metadata.name", "metadata.namespace"):
            raise SelectorError(f'field label not supported: "{key}"')
        attr = key.partition(".")[2]

        def test(obj: dict[str, Any], a: str = attr, v: str = value, n: bool = negate) -> bool:
            return (str(obj["metadata"].get(a) or "") == v) != n

        tests.append(test)
    return lambda obj: all(test(obj) for test in tests)


# --------------------------------------------------------------------------- records


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
    status: int  # 0: no error, only the delay
    reason: str
    message: str
    times: int = 1
    delay: float = 0.0  # seconds before the answer


@dataclass
class _Event:
    version: int
    type: str  # ADDED, MODIFIED, DELETED
    collection: tuple[str, str]  # (group, plural)
    obj: dict[str, Any]
    previous: dict[str, Any] | None  # the object before a MODIFIED


@dataclass
class _State:
    # (group, plural, namespace or "", name) -> object
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)
    version: int = 100
    compacted: int = 0  # watches (and continue tokens) from an RV below this get 410
    generation: int = 0  # bumped by close_watches()
    bookmarks: int = 0  # bumped by bookmark()


class ApiError(Exception):
    """An answer with a Status body (raised inside the handlers)."""

    def __init__(self, code: int, message: str, reason: str | None = None, **details: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class _Target:
    """One request's resource, namespace, name and subresource."""

    resource: Resource
    namespace: str | None  # None: no namespace in the path
    name: str | None
    subresource: str


class FakeKubeApi:
    """`with FakeKubeApi() as api:` serves on `api.url` until the block ends."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._state = _State()
        self._cond = threading.Condition(threading.RLock())
        self._resources: dict[tuple[str, str], Resource] = {
            (r.group, r.plural): r for r in RESOURCES
        }
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

            def do_POST(self) -> None:
                api._handle(self, "POST")

            def do_PUT(self) -> None:
                api._handle(self, "PUT")

            def do_PATCH(self) -> None:
                api._handle(self, "PATCH")

            def do_DELETE(self) -> None:
                api._handle(self, "DELETE")

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

    def register(
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        *,
        namespaced: bool = True,
        status_subresource: bool = False,
    ) -> None:
        """Declare a resource the table does not know (scope and status subresource)."""
        with self._cond:
            self._resources[(group, plural)] = Resource(
                group, version, plural, kind, namespaced, status_subresource
            )

    # ------------------------------------------------------------------ the "controller"

    def _resource_of_kind(self, obj: dict[str, Any], plural: str | None) -> Resource:
        group = str(obj.get("apiVersion") or "v1").rpartition("/")[0]
        if plural is not None:
            return self._resources.get((group, plural)) or Resource(
                group, str(obj.get("apiVersion")).rpartition("/")[2], plural, obj["kind"]
            )
        for resource in self._resources.values():
            if resource.group == group and resource.kind == obj.get("kind"):
                return resource
        raise KeyError(f"unknown kind {obj.get('kind')!r}: pass plural= or register() it")

    def _record(
        self,
        kind: str,
        key: tuple[str, str, str, str],
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> None:
        """A new resourceVersion on `obj` and its watch event (under the lock)."""
        self._state.version += 1
        obj["metadata"]["resourceVersion"] = str(self._state.version)
        self._state.events.append(
            _Event(self._state.version, kind, key[:2], copy.deepcopy(obj), previous)
        )
        self._cond.notify_all()

    @staticmethod
    def _stamp_new(obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        metadata.setdefault("generation", 1)

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
        """A WorkflowTaskSet as Argo's controller writes it (`status` set directly)."""
        obj: dict[str, Any] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTaskSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
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
        return self.apply(obj)

    def apply(self, obj: dict[str, Any], *, plural: str | None = None) -> dict[str, Any]:
        """Create or replace any object (ADDED or MODIFIED), as `kubectl apply` would; the
        resource comes from `apiVersion` + `kind` (or `plural`)."""
        obj = copy.deepcopy(obj)
        resource = self._resource_of_kind(obj, plural)
        namespace = str(obj["metadata"].get("namespace") or "") if resource.namespaced else ""
        key = (resource.group, resource.plural, namespace, obj["metadata"]["name"])
        with self._cond:
            previous = self._state.objects.get(key)
            if previous is not None:
                for kept in ("uid", "creationTimestamp"):
                    obj["metadata"][kept] = previous["metadata"].get(kept)
            self._stamp_new(obj)
            self._state.objects[key] = obj
            self._record("MODIFIED" if previous else "ADDED", key, obj, previous)
            return copy.deepcopy(obj)

    def update(
        self,
        name: str,
        patch: dict[str, Any],
        *,
        namespace: str = "argo",
        plural: str | None = None,
    ) -> dict[str, Any]:
        """A merge patch on the whole object (status too), as a controller sends it."""
        with self._cond:
            key = self._key(name, namespace, plural)
            previous = self._state.objects[key]
            obj = merge_patch(previous, patch)
            self._state.objects[key] = obj
            self._record("MODIFIED", key, obj, previous)
            return copy.deepcopy(obj)

    def delete(
        self,
        name: str,
        *,
        namespace: str = "argo",
        plural: str | None = None,
        watched: bool = True,
    ) -> None:
        """Remove an object; `watched=False` leaves no event (as if the deletion was lost
        in a compacted history: only a new list shows it)."""
        with self._cond:
            key = self._key(name, namespace, plural)
            obj = self._state.objects.pop(key)
            if watched:
                self._record("DELETED", key, obj)

    def get(
        self, name: str, *, namespace: str = "argo", plural: str | None = None
    ) -> dict[str, Any]:
        with self._cond:
            return copy.deepcopy(self._state.objects[self._key(name, namespace, plural)])

    def objects(self, plural: str | None = None, namespace: str | None = None) -> list[dict]:
        """Copies of the stored objects (of one plural, of one namespace), by key."""
        with self._cond:
            return [
                copy.deepcopy(obj)
                for key, obj in sorted(self._state.objects.items())
                if (plural is None or key[1] == plural)
                and (namespace is None or key[2] == namespace)
            ]

    def nodes(self, name: str, *, namespace: str = "argo") -> dict[str, Any]:
        with self._cond:
            obj = self._state.objects.get(("argoproj.io", "workflowtasksets", namespace, name))
            return copy.deepcopy(((obj or {}).get("status") or {}).get("nodes") or {})

    @property
    def resource_version(self) -> str:
        """The API's current resourceVersion."""
        with self._cond:
            return str(self._state.version)

    def _key(self, name: str, namespace: str, plural: str | None) -> tuple[str, str, str, str]:
        """The object of that name (in `namespace`, or cluster-scoped): with no `plural`,
        the one object of that name whatever its kind."""
        keys = [
            k
            for k in self._state.objects
            if k[3] == name and k[2] in (namespace, "") and (plural is None or k[1] == plural)
        ]
        namespaced = [k for k in keys if k[2] == namespace]
        [key] = namespaced or keys
        return key

    def compact(self) -> None:
        """Forget history: a watch (or a continue token) from any RV seen so far now gets
        410 Gone."""
        with self._cond:
            self._state.compacted = self._state.version
            self._state.events.clear()

    def close_watches(self) -> None:
        """End every open watch stream, as an API server does on its timeout."""
        with self._cond:
            self._state.generation += 1
            self._cond.notify_all()

    def bookmark(self) -> None:
        """Send a BOOKMARK (the current resourceVersion) to every watch that allows them."""
        with self._cond:
            self._state.bookmarks += 1
            self._cond.notify_all()

    def fail(
        self,
        method: str,
        path_suffix: str,
        status: int,
        message: str,
        *,
        times: int = 1,
        reason: str | None = None,
    ) -> None:
        """The next `times` requests `method` on a path ending with `path_suffix` get this
        Status instead of their answer."""
        with self._cond:
            self.failures.append(
                Failure(
                    method,
                    path_suffix,
                    status,
                    reason or _REASONS.get(status, "Unknown"),
                    message,
                    times,
                )
            )

    def stall(self, method: str, path_suffix: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` matching requests are answered only after `seconds`."""
        with self._cond:
            self.failures.append(Failure(method, path_suffix, 0, "", "", times, seconds))

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
            _parse_body(raw),
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
        try:
            if failure is not None and failure.delay:
                time.sleep(failure.delay)
            if failure is not None and failure.status:
                raise ApiError(failure.status, failure.message, failure.reason)
            target = self._target(split.path)
            if method == "GET" and target.name is None and query.get("watch") in ("true", "1"):
                self._watch(handler, target, query)
                return
            code, body = self._dispatch(method, target, request)
        except ApiError as exc:
            code, body = exc.code, exc.status()
        self._send_json(handler, code, body)

    def _target(self, path: str) -> _Target:
        match = _CORE.match(path) or _GROUP.match(path)
        if match is None:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        group = match.groupdict().get("group") or ""
        parts = [unquote(p) for p in match["rest"].split("/") if p]
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] not in ("status", "finalize"):
            namespace, parts = parts[1], parts[2:]
        if not parts or len(parts) > 3:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        plural, name, sub = parts[0], (parts[1:2] or [None])[0], (parts[2:3] or [""])[0]
        with self._cond:
            resource = self._resources.get((group, plural))
        if resource is None:  # unknown: scope from the path, kind from the plural
            kind = plural[:-1].capitalize() if plural.endswith("s") else plural.capitalize()
            resource = Resource(group, match["version"], plural, kind, namespace is not None)
        if resource.namespaced and name is not None and namespace is None:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        if not resource.namespaced and namespace is not None:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        if sub and (sub != "status" or not resource.status_subresource):
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        return _Target(resource, namespace, name, sub)

    def _dispatch(self, method: str, target: _Target, request: Request) -> tuple[int, Any]:
        if target.name is None:
            if method == "GET":
                return 200, self._list(target, request.query)
            if method == "POST":
                return 201, self._create(target, request.body)
        elif method == "GET":
            with self._cond:
                return 200, copy.deepcopy(self._stored(target))
        elif method == "PUT":
            return 200, self._update(target, request.body)
        elif method == "PATCH":
            return self._patch(target, request)
        elif method == "DELETE":
            return 200, self._delete(target, request.body)
        raise ApiError(405, f"{method} is not supported on this path", "MethodNotAllowed")

    @staticmethod
    def _send_json(handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        try:
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (its timeout)

    # ------------------------------------------------------------------ reads

    def _key_of(self, target: _Target, name: str) -> tuple[str, str, str, str]:
        resource = target.resource
        return (resource.group, resource.plural, target.namespace or "", name)

    def _stored(self, target: _Target) -> dict[str, Any]:
        """The object at `target` (under the lock), or 404."""
        assert target.name is not None
        obj = self._state.objects.get(self._key_of(target, target.name))
        if obj is None:
            raise _not_found(target.resource, target.name)
        return obj

    @staticmethod
    def _matcher(
        target: _Target, query: dict[str, str]
    ) -> Callable[[tuple[str, str], dict[str, Any]], bool]:
        try:
            labels = label_matcher(query.get("labelSelector", ""))
            fields = field_matcher(query.get("fieldSelector", ""))
        except SelectorError as exc:
            raise ApiError(400, str(exc)) from exc
        resource = target.resource

        def selected(collection: tuple[str, str], obj: dict[str, Any]) -> bool:
            if collection != (resource.group, resource.plural):
                return False
            metadata = obj["metadata"]
            if target.namespace is not None and metadata.get("namespace") != target.namespace:
                return False
            return labels(metadata.get("labels") or {}) and fields(obj)

        return selected

    def _list(self, target: _Target, query: dict[str, str]) -> dict[str, Any]:
        selected = self._matcher(target, query)
        limit = int(query.get("limit") or 0)
        start: list[Any] = []
        with self._cond:
            version = self._state.version
            if token := query.get("continue"):
                try:
                    decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                    version, start = int(decoded["rv"]), list(decoded["start"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ApiError(400, "continue key is not valid") from exc
                if version < self._state.compacted:
                    raise ApiError(
                        410,
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.",
                        "Expired",
                    )
            keys = [
                key
                for key, obj in sorted(self._state.objects.items())
                if list(key) > start and selected(key[:2], obj)
            ]
            more = bool(limit) and len(keys) > limit
            keys = keys[:limit] if limit else keys
            items = [copy.deepcopy(self._state.objects[key]) for key in keys]
        metadata: dict[str, Any] = {"resourceVersion": str(version)}
        if more:
            cursor = {"rv": version, "start": list(keys[-1])}
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode()
        resource = target.resource
        for item in items:  # the API server leaves TypeMeta out of built-in list items
            if resource.builtin:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {
            "apiVersion": resource.api_version,
            "kind": f"{resource.kind}List",
            "metadata": metadata,
            "items": items,
        }

    def _watch(self, handler: BaseHTTPRequestHandler, target: _Target, q: dict[str, str]) -> None:
        selected = self._matcher(target, q)
        requested = q.get("resourceVersion") or ""
        timeout = float(q.get("timeoutSeconds") or 3600)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        resource = target.resource
        with self._cond:
            generation, bookmark_count = self._state.generation, self._state.bookmarks
            if requested in ("", "0"):  # the current objects first, as ADDED
                since = self._state.version
                pending = [
                    {"type": "ADDED", "object": copy.deepcopy(obj)}
                    for key, obj in sorted(self._state.objects.items())
                    if selected(key[:2], obj)
                ]
                expired = None
            else:
                since = int(requested)
                pending = []
                expired = since < self._state.compacted and self._state.compacted
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()

        def chunk(event: dict[str, Any]) -> None:
            data = (json.dumps(event) + "\n").encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()

        deadline = time.monotonic() + timeout
        try:
            if expired:
                message = f"too old resource version: {since} ({expired})"
                chunk({"type": "ERROR", "object": ApiError(410, message, "Expired").status()})
            else:
                for event in pending:
                    chunk(event)
                self._stream(
                    chunk,
                    selected,
                    since,
                    deadline,
                    generation,
                    bookmark_count,
                    bookmarks,
                    resource,
                )
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        handler.close_connection = True

    def _stream(
        self,
        chunk: Callable[[dict[str, Any]], None],
        selected: Callable[[tuple[str, str], dict[str, Any]], bool],
        cursor: int,
        deadline: float,
        generation: int,
        bookmark_count: int,
        bookmarks: bool,
        resource: Resource,
    ) -> None:
        """Events after `cursor` until the deadline or `close_watches()`."""
        while True:
            with self._cond:
                fresh = []
                for event in self._state.events:
                    if event.version <= cursor:
                        continue
                    now = selected(event.collection, event.obj)
                    before = event.previous is not None and selected(
                        event.collection, event.previous
                    )
                    if event.type == "MODIFIED" and now != before:
                        fresh.append(("ADDED" if now else "DELETED", event))
                    elif now:
                        fresh.append((event.type, event))
                if self._state.events:
                    cursor = max(cursor, self._state.events[-1].version)
                mark = None
                if self._state.bookmarks != bookmark_count:
                    bookmark_count = self._state.bookmarks
                    if bookmarks:
                        mark = str(self._state.version)
                if not fresh and mark is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._state.generation != generation:
                        return
                    self._cond.wait(min(remaining, 0.5))
                    continue
            for kind, event in fresh:
                chunk({"type": kind, "object": event.obj})
                with self._cond:
                    self.sent_versions.append(str(event.version))
            if mark is not None:
                chunk(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "apiVersion": resource.api_version,
                            "kind": resource.kind,
                            "metadata": {"resourceVersion": mark},
                        },
                    }
                )
                with self._cond:
                    self.sent_versions.append(mark)

    # ------------------------------------------------------------------ writes

    def _checked_body(self, target: _Target, body: Any) -> dict[str, Any]:
        resource = target.resource
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})
        if body.get("kind", resource.kind) != resource.kind:
            raise ApiError(400, f"the kind {body.get('kind')!r} does not match {resource.kind}")
        body["apiVersion"], body["kind"] = resource.api_version, resource.kind
        metadata = body["metadata"]
        if resource.namespaced:
            if metadata.get("namespace", target.namespace) != target.namespace:
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            metadata["namespace"] = target.namespace
        else:
            metadata.pop("namespace", None)
        return body

    def _create(self, target: _Target, body: Any) -> dict[str, Any]:
        obj = self._checked_body(target, body)
        resource, metadata = target.resource, obj["metadata"]
        for server_set in ("uid", "resourceVersion", "creationTimestamp", "generation"):
            metadata.pop(server_set, None)
        if resource.status_subresource:
            obj.pop("status", None)
        with self._cond:
            if not metadata.get("name"):
                prefix = metadata.get("generateName")
                if not prefix:
                    raise ApiError(
                        422,
                        f'{resource.kind} "" is invalid: metadata.name: Required value: name '
                        "or generateName is required",
                    )
                metadata["name"] = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
            key = self._key_of(target, metadata["name"])
            if key in self._state.objects:
                raise ApiError(
                    409,
                    f'{resource.qualified} "{metadata["name"]}" already exists',
                    "AlreadyExists",
                    name=metadata["name"],
                    group=resource.group,
                    kind=resource.plural,
                )
            self._stamp_new(obj)
            self._state.objects[key] = obj
            self._record("ADDED", key, obj)
            return copy.deepcopy(obj)

    def _replace(
        self, target: _Target, current: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        """Store `new` in place of `current` (under the lock), as the API server does:
        optimistic concurrency, immutable metadata, the status subresource's split."""
        resource = target.resource
        assert target.name is not None
        metadata = new.setdefault("metadata", {})
        if metadata.get("name", target.name) != target.name:
            raise ApiError(400, "the name of the object does not match the name on the URL")
        sent = str(metadata.get("resourceVersion") or "")
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {resource.qualified} "{target.name}": the '
                "object has been modified; please apply your changes to the latest version "
                "and try again",
                "Conflict",
                name=target.name,
                group=resource.group,
                kind=resource.plural,
            )
        if resource.status_subresource and target.subresource == "status":
            obj = copy.deepcopy(current)
            obj["status"] = new.get("status")
            if obj["status"] is None:
                obj.pop("status")
        else:
            obj = new
            if resource.status_subresource:  # the main resource ignores status
                obj.pop("status", None)
                if "status" in current:
                    obj["status"] = copy.deepcopy(current["status"])
            for kept in ("name", "uid", "creationTimestamp", "generation"):
                obj["metadata"][kept] = current["metadata"].get(kept)
            if resource.namespaced:
                obj["metadata"]["namespace"] = current["metadata"]["namespace"]
            if _spec_of(obj) != _spec_of(current):
                obj["metadata"]["generation"] = int(current["metadata"].get("generation") or 0) + 1
        key = self._key_of(target, target.name)
        self._state.objects[key] = obj
        self._record("MODIFIED", key, obj, current)
        return copy.deepcopy(obj)

    def _update(self, target: _Target, body: Any) -> dict[str, Any]:
        new = self._checked_body(target, body)
        with self._cond:
            return self._replace(target, self._stored(target), new)

    def _patch(self, target: _Target, request: Request) -> tuple[int, dict[str, Any]]:
        resource = target.resource
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        patch_type = _PATCH_TYPES.get(content_type)
        if patch_type is None or (patch_type == "strategic" and not resource.builtin):
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(t for t in _PATCH_TYPES if resource.builtin or 'strat' not in t)}",
            )
        patch = request.body
        if patch_type == "apply":
            if not request.query.get("fieldManager"):
                raise ApiError(
                    400,
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch",
                )
            patch = self._checked_body(target, patch)
        with self._cond:
            assert target.name is not None
            current = self._state.objects.get(self._key_of(target, target.name))
            if current is None:
                if patch_type == "apply" and not target.subresource:
                    return 201, self._create(target, patch)  # the lock is re-entrant
                raise _not_found(resource, target.name)
            if patch_type == "json":
                if not isinstance(patch, list):
                    raise ApiError(400, "a JSON patch is a list of operations")
                try:
                    new = jsonpatch.apply_patch(current, patch)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                    raise ApiError(422, f"the JSON patch could not be applied: {exc}") from exc
            elif patch_type == "apply":
                new = _apply_merge(current, patch)
            else:
                if not isinstance(patch, dict):
                    raise ApiError(400, "a merge patch is a JSON object")
                new = merge_patch(current, patch)
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise ApiError(422, "the patched object is not an object with metadata")
            return 200, self._replace(target, current, new)

    def _delete(self, target: _Target, body: Any) -> dict[str, Any]:
        preconditions = (body or {}).get("preconditions") if isinstance(body, dict) else None
        with self._cond:
            current = self._stored(target)
            for field_name in ("uid", "resourceVersion"):
                wanted = (preconditions or {}).get(field_name)
                if wanted and wanted != current["metadata"].get(field_name):
                    raise ApiError(
                        409,
                        f"Precondition failed: {field_name}: {wanted}, object has "
                        f"{current['metadata'].get(field_name)}",
                        "Conflict",
                    )
            assert target.name is not None
            key = self._key_of(target, target.name)
            obj = self._state.objects.pop(key)
            self._record("DELETED", key, obj)
            return copy.deepcopy(obj)


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        f'{resource.qualified} "{name}" not found',
        "NotFound",
        name=name,
        group=resource.group,
        kind=resource.plural,
    )


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw.decode("utf-8", "replace")
