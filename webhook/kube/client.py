"""One generic client for every resource kind: `Cluster.connect().resource(kind)`.

    cluster = Cluster.connect()                      # kubeconfig or in-cluster (config.py)
    leases = cluster.resource(kinds.LEASE)
    lease = leases.get("plugin-guard", namespace="argo")
    leases.update(lease, namespace="argo")           # stale resourceVersion -> 409 conflict

Requests go out on the `kubernetes` package's connection pool and credentials (TLS,
client certificates, bearer tokens with their refresh hooks, proxies), with JSON in and
out: objects are plain dicts, as the API server sends them. Every call has a timeout
(`request_timeout`, connect and read seconds); a watch reads for its server-side
`timeout` plus a margin. Every failure is one `KubeApiError` (errors.py) with the
cause kept.

- `list` follows `limit`/`continue` pages into one `ObjectList` (items and the list's
  resourceVersion); `pages` yields them one at a time. List items get their
  `apiVersion` and `kind` filled in (the API server leaves them out of built-in lists).
- `watch` streams `WatchEvent`s from a resourceVersion, with bookmarks; a watch ERROR
  event is raised as its `KubeApiError` (410 `gone`: list again, then watch from the
  new list's version). `stop()` from another thread ends a blocked read.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from webhook.kube.config import ClusterConfig, kubernetes_package, load_config
from webhook.kube.errors import KubeApiError
from webhook.kube.kinds import Kind

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse, PoolManager

JsonObject = dict[str, Any]
PatchType = Literal["merge", "json", "strategic", "apply"]
Timeout = tuple[float, float]  # (connect, read) seconds

DEFAULT_REQUEST_TIMEOUT: Timeout = (10.0, 30.0)
DEFAULT_WATCH_TIMEOUT = 300  # seconds the server keeps a watch open
WATCH_READ_MARGIN = 30.0  # a watch read waits this much longer than its server-side timeout
DEFAULT_PAGE_SIZE = 500
MAX_PAGES = 100_000  # a bound on `continue` loops (50 M objects at the default page size)
FIELD_MANAGER = "argo-plugin-guard"
USER_AGENT = "argo-plugin-guard"
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",  # JSON is YAML: the body is sent as JSON
}
_ERROR_TEXT_LIMIT = 300


@dataclass(frozen=True, slots=True)
class ObjectList:
    """A list's objects and its resourceVersion (where a watch starts from)."""

    items: list[JsonObject]
    resource_version: str
    continue_token: str = ""  # set on a page (`pages`) that has more after it


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK, and the object."""

    type: str
    object: JsonObject

    @property
    def resource_version(self) -> str:
        metadata = self.object.get("metadata") or {}
        return str(metadata.get("resourceVersion") or "")


class Transport:
    """HTTP to the API server on the `kubernetes` package's pool and credentials."""

    def __init__(self, config: ClusterConfig, request_timeout: Timeout) -> None:
        import urllib3

        self._urllib3 = urllib3
        self.config = config
        self.request_timeout = request_timeout
        self._configuration = config.configuration
        self._host = str(config.configuration.host).rstrip("/")
        self._api_client = kubernetes_package().client.ApiClient(config.configuration)
        self._pool: PoolManager = self._api_client.rest_client.pool_manager
        # Retried here: a failed connection (nothing was sent), and one read failure of
        # an idempotent request (GET, PUT, DELETE: a kept-alive connection the server
        # closed meanwhile). Every other failure goes back to the caller.
        self._retries = urllib3.Retry(total=2, connect=2, read=1, redirect=False, status=0, other=0)

    def close(self) -> None:
        self._pool.clear()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        # The bearer token (its refresh hook runs here: exec plugins, projected tokens).
        for auth in self._configuration.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"])] = str(auth["value"])
        return headers

    def open(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        read_timeout: float | None = None,
    ) -> BaseHTTPResponse:
        """Send one request; a 2xx answer is returned unread, anything else raised."""
        url = self._host + path
        if query:
            url += "?" + urlencode(query)
        payload = None if body is None else json.dumps(body).encode()
        if payload is not None and content_type is None:
            content_type = "application/json"
        connect, read = self.request_timeout
        timeout = self._urllib3.Timeout(
            connect=connect, read=read if read_timeout is None else read_timeout
        )
        try:
            response = self._pool.request(
                method,
                url,
                body=payload,
                headers=self._headers(content_type),
                timeout=timeout,
                preload_content=False,
                retries=self._retries,
            )
        except (self._urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise KubeApiError.transport(exc) from exc
        if 200 <= response.status < 300:
            return response
        try:
            data = response.read()
        except (self._urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError.transport(exc) from exc
        finally:
            response.release_conn()
        raise _error_answer(response.status, str(response.reason or ""), data)

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> JsonObject:
        """One request whose answer is a JSON object."""
        response = self.open(method, path, query, body, content_type)
        try:
            data = response.read()
        except (self._urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError.transport(exc) from exc
        finally:
            response.release_conn()
        try:
            answer = json.loads(data)
        except ValueError as exc:
            raise KubeApiError(0, "", f"{method} {path}: the answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise KubeApiError(0, "", f"{method} {path}: the answer is not a JSON object")
        return answer


def _error_answer(code: int, http_reason: str, data: bytes) -> KubeApiError:
    """An error answer: its Status object when it is one, else its text, shortened."""
    try:
        status = json.loads(data)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return KubeApiError.from_status(status, code)
    text = " ".join(data.decode("utf-8", "replace").split())[:_ERROR_TEXT_LIMIT]
    return KubeApiError(code, http_reason, text or http_reason or f"HTTP {code}")


class Watch:
    """One watch request: iterate for events (once); `stop()` from any thread ends it."""

    def __init__(
        self, transport: Transport, path: str, query: dict[str, str], timeout: float
    ) -> None:
        self._transport = transport
        self._path = path
        self._query = query
        self._timeout = timeout
        self._lock = threading.Lock()
        self._response: BaseHTTPResponse | None = None
        self._stopped = False

    def __iter__(self) -> Iterator[WatchEvent]:
        response = self._transport.open(
            "GET", self._path, self._query, read_timeout=self._timeout + WATCH_READ_MARGIN
        )
        with self._lock:
            self._response = response
            stopped = self._stopped
        try:
            if not stopped:
                yield from self._events(response)
        except KubeApiError:
            raise
        except Exception as exc:
            if self._stopped:  # the socket was shut down under the reader on purpose
                return
            raise KubeApiError.transport(exc) from exc
        finally:
            with self._lock:
                self._response = None
            response.close()  # a watch's connection is not reused: it may be half-read
            response.release_conn()

    def _events(self, response: BaseHTTPResponse) -> Iterator[WatchEvent]:
        for line in _lines(response):
            try:
                event = json.loads(line)
            except ValueError as exc:
                raise KubeApiError(0, "", f"watch {self._path}: not a JSON event") from exc
            if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
                raise KubeApiError(0, "", f"watch {self._path}: not a watch event")
            kind, obj = str(event.get("type") or ""), event["object"]
            if kind == "ERROR":  # a Status: 410 Expired when the version is too old
                raise KubeApiError.from_status(obj)
            yield WatchEvent(kind, obj)

    def stop(self) -> None:
        """Unblock a thread waiting in `__iter__` (shuts the socket down)."""
        with self._lock:
            self._stopped = True
            response = self._response
        if response is None:
            return
        connection = getattr(response, "connection", None)
        sock = getattr(connection, "sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            else:
                response.shutdown()
        except (OSError, ValueError, RuntimeError):
            pass  # already closed


def _lines(response: BaseHTTPResponse) -> Iterator[bytes]:
    """The stream's non-empty lines (events may span chunks, or share one)."""
    buffer = bytearray()
    for chunk in response.stream(amt=None, decode_content=False):
        buffer.extend(chunk)
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end]).strip()
            del buffer[: end + 1]
            if line:
                yield line
    if buffer.strip():
        yield bytes(buffer).strip()


class ResourceClient:
    """Every call for one `Kind`. `namespace` is required for the objects of a namespaced
    kind; `None` on `list`/`watch` of a namespaced kind means every namespace."""

    def __init__(self, transport: Transport, kind: Kind) -> None:
        self.transport = transport
        self.kind = kind

    def __repr__(self) -> str:
        return f"ResourceClient({self.kind})"

    # ------------------------------------------------------------------ reads

    def get(self, name: str, namespace: str | None = None) -> JsonObject:
        return self._typed(self.transport.request("GET", self.kind.path(namespace, name)))

    def pages(
        self,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[ObjectList]:
        """One `ObjectList` per page (`limit` objects at most), following `continue`.
        An expired continue token raises a `gone` KubeApiError: list again."""
        query = _selectors(label_selector, field_selector)
        if limit > 0:
            query["limit"] = str(limit)
        path = self.kind.path(namespace)
        token = ""
        for _ in range(MAX_PAGES):
            page_query = {**query, "continue": token} if token else query
            answer = self.transport.request("GET", path, page_query)
            metadata = answer.get("metadata") or {}
            token = str(metadata.get("continue") or "")
            items = [
                self._typed(item) for item in answer.get("items") or [] if isinstance(item, dict)
            ]
            yield ObjectList(items, str(metadata.get("resourceVersion") or ""), token)
            if not token:
                return
        raise KubeApiError(0, "", f"list {path}: more than {MAX_PAGES} pages")

    def list(
        self,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> ObjectList:
        """Every object (all pages), and the list's resourceVersion to watch from."""
        items: list[JsonObject] = []
        version = ""
        for page in self.pages(
            namespace, label_selector=label_selector, field_selector=field_selector, limit=limit
        ):
            items.extend(page.items)
            version = page.resource_version
        return ObjectList(items, version)

    def watch(
        self,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        timeout: int = DEFAULT_WATCH_TIMEOUT,
        label_selector: str | None = None,
        field_selector: str | None = None,
        bookmarks: bool = True,
    ) -> Watch:
        """Events after `resource_version` (from a list), until the server ends the watch
        after `timeout` seconds, the connection drops, or `stop()`. Re-watch from the last
        event's version; on a `gone` error, list again."""
        query = _selectors(label_selector, field_selector)
        query["watch"] = "true"
        if resource_version:
            query["resourceVersion"] = resource_version
        if bookmarks:
            query["allowWatchBookmarks"] = "true"
        query["timeoutSeconds"] = str(int(timeout))
        return Watch(self.transport, self.kind.path(namespace), query, float(timeout))

    # ------------------------------------------------------------------ writes

    def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> JsonObject:
        """POST; an existing name is a 409 `already_exists`. `metadata.generateName`
        instead of a name lets the server pick one."""
        body = self._body(obj)
        namespace = self._namespace_of(body, namespace)
        return self._typed(self.transport.request("POST", self.kind.path(namespace), body=body))

    def update(self, obj: Mapping[str, Any], namespace: str | None = None) -> JsonObject:
        """PUT the whole object; a stale `metadata.resourceVersion` is a 409 `conflict`."""
        return self._put(obj, namespace, "")

    def update_status(self, obj: Mapping[str, Any], namespace: str | None = None) -> JsonObject:
        """PUT on the status subresource (only `status` changes)."""
        return self._put(obj, namespace, "status")

    def patch(
        self,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
    ) -> JsonObject:
        """PATCH: `merge` (RFC 7386), `json` (RFC 6902, a list of operations), `strategic`
        (built-in kinds only) or `apply` (server-side apply: `patch` is the whole intent,
        owned by `field_manager`; `force` takes fields other managers own)."""
        return self._patch(name, patch, namespace, "", patch_type, field_manager, force)

    def patch_status(
        self,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
    ) -> JsonObject:
        """PATCH on the status subresource (only `status` changes)."""
        return self._patch(name, patch, namespace, "status", patch_type, field_manager, force)

    def delete(
        self,
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation_policy: str | None = None,
    ) -> JsonObject:
        """DELETE; `resource_version` / `uid` are preconditions (409 `conflict` when the
        object changed). The answer is the deleted object or a Status."""
        body: JsonObject = {"kind": "DeleteOptions", "apiVersion": "v1"}
        preconditions = {
            key: value
            for key, value in (("resourceVersion", resource_version), ("uid", uid))
            if value
        }
        if preconditions:
            body["preconditions"] = preconditions
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        return self.transport.request("DELETE", self.kind.path(namespace, name), body=body)

    # ------------------------------------------------------------------ helpers

    def _put(self, obj: Mapping[str, Any], namespace: str | None, sub: str) -> JsonObject:
        body = self._body(obj)
        namespace = self._namespace_of(body, namespace)
        name = str(body["metadata"].get("name") or "")
        if not name:
            raise ValueError(f"{self.kind.kind}: update needs metadata.name")
        path = self.kind.path(namespace, name, sub)
        return self._typed(self.transport.request("PUT", path, body=body))

    def _patch(
        self,
        name: str,
        patch: Any,
        namespace: str | None,
        sub: str,
        patch_type: PatchType,
        field_manager: str | None,
        force: bool,
    ) -> JsonObject:
        query: dict[str, str] = {}
        if patch_type == "apply":
            query["fieldManager"] = field_manager or FIELD_MANAGER
            if force:
                query["force"] = "true"
            patch = self._body(patch)
            patch["metadata"].setdefault("name", name)
        elif field_manager:
            query["fieldManager"] = field_manager
        content_type = PATCH_CONTENT_TYPES[patch_type]
        path = self.kind.path(namespace, name, sub)
        answer = self.transport.request("PATCH", path, query, body=patch, content_type=content_type)
        return self._typed(answer)

    def _body(self, obj: Mapping[str, Any]) -> JsonObject:
        """A copy with `apiVersion`, `kind` and a `metadata` mapping."""
        body = copy.deepcopy(dict(obj))
        body.setdefault("apiVersion", self.kind.api_version)
        body.setdefault("kind", self.kind.kind)
        if not isinstance(body.get("metadata"), dict):
            body["metadata"] = {}
        return body

    def _namespace_of(self, body: JsonObject, namespace: str | None) -> str | None:
        """The namespace argument, else the object's own (namespaced kinds only)."""
        if not self.kind.namespaced:
            return None
        return namespace or str(body["metadata"].get("namespace") or "") or None

    def _typed(self, obj: JsonObject) -> JsonObject:
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        return obj


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    query: dict[str, str] = {}
    if label_selector:
        query["labelSelector"] = label_selector
    if field_selector:
        query["fieldSelector"] = field_selector
    return query


class Cluster:
    """One API server connection (pool, credentials, timeouts) shared by its resources."""

    def __init__(
        self, config: ClusterConfig, *, request_timeout: Timeout = DEFAULT_REQUEST_TIMEOUT
    ) -> None:
        self.config = config
        self.transport = Transport(config, request_timeout)

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, *, request_timeout: Timeout = DEFAULT_REQUEST_TIMEOUT
    ) -> Cluster:
        """`kubeconfig` or `$KUBECONFIG`, else `~/.kube/config`, else in-cluster
        (`KubeConfigError` when none works)."""
        return cls(load_config(kubeconfig), request_timeout=request_timeout)

    @property
    def namespace(self) -> str:
        """The namespace kubectl would use: the context's, the pod's, or `default`."""
        return self.config.namespace

    def resource(self, kind: Kind) -> ResourceClient:
        return ResourceClient(self.transport, kind)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
