"""A loopback fake of the core/v1 ConfigMap list and watch, for the real `kubernetes` client.

Mirrors tests/agent/fakeapi.py (which fakes WorkflowTaskSets; see its docstring for why
not kmock): one resourceVersion counter, a list answers with the collection's version,
`?watch=true&resourceVersion=RV` streams every event after RV as chunked JSON lines and
then new ones until `timeoutSeconds` or `close_watches()`, an RV older than `compact()`
gets the 410 ERROR event. `labelSelector` supports what the registry sends: a label key
(existence). The server can be started on a fixed port, so a test can point a
kubeconfig at an API that is not up yet.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_PATH = re.compile(r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/configmaps$")
TYPE_LABEL = "workflows.argoproj.io/configmap-type"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeCoreApi:
    """`with FakeCoreApi() as api:` serves on `api.url` until the block ends."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._version = 100
        self._compacted = 0
        self._generation = 0
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []

    def __enter__(self) -> FakeCoreApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeCoreApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api._handle(self)

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
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

    def kubeconfig(self) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {"token": "fake-api-bearer-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )

    # ------------------------------------------------------------------ objects

    def _bump(self, kind: str, obj: dict[str, Any]) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        self._events.append((self._version, kind, copy.deepcopy(obj)))
        self._cond.notify_all()

    def apply(self, obj: dict[str, Any]) -> None:
        """Create or replace (ADDED or MODIFIED)."""
        obj = copy.deepcopy(obj)
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._cond:
            kind = "MODIFIED" if key in self._objects else "ADDED"
            self._objects[key] = obj
            self._bump(kind, obj)

    def delete(self, name: str, namespace: str = "argo") -> None:
        with self._cond:
            obj = self._objects.pop((namespace, name))
            self._bump("DELETED", obj)

    def compact(self) -> None:
        with self._cond:
            self._compacted = self._version
            self._events.clear()

    def close_watches(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def watch_count(self) -> int:
        with self._cond:
            return sum(1 for path, q in self.requests if q.get("watch") == "true")

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    # ------------------------------------------------------------------ HTTP

    @staticmethod
    def _selected(obj: dict[str, Any], namespace: str | None, selector: str) -> bool:
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        labels = obj["metadata"].get("labels") or {}
        return not selector or selector in labels

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        with self._cond:
            self.requests.append((split.path, query))
        match = _PATH.match(split.path)
        if match is None:
            body = {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound"}
            self._send(handler, 404, body)
            return
        namespace = match["ns"]
        selector = query.get("labelSelector", "")
        if query.get("watch") in ("true", "1"):
            self._watch(handler, namespace, selector, query)
            return
        with self._cond:
            items = [
                copy.deepcopy(o)
                for _, o in sorted(self._objects.items())
                if self._selected(o, namespace, selector)
            ]
            version = str(self._version)
        self._send(
            handler,
            200,
            {
                "apiVersion": "v1",
                "kind": "ConfigMapList",
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _watch(
        self,
        handler: BaseHTTPRequestHandler,
        namespace: str | None,
        selector: str,
        query: dict[str, str],
    ) -> None:
        since = int(query.get("resourceVersion") or 0)
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 3600)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(event: dict[str, Any]) -> None:
            data = (json.dumps(event) + "\n").encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()

        try:
            with self._cond:
                generation = self._generation
                gone = since < self._compacted
            if gone:
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({self._compacted})",
                    "reason": "Expired",
                    "code": 410,
                }
                chunk({"type": "ERROR", "object": status})
            cursor = since
            while not gone:
                with self._cond:
                    fresh = [
                        (rv, kind, obj)
                        for rv, kind, obj in self._events
                        if rv > cursor and self._selected(obj, namespace, selector)
                    ]
                    if self._events:
                        cursor = max(cursor, self._events[-1][0])
                    if not fresh:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self._generation != generation:
                            break
                        self._cond.wait(min(remaining, 0.5))
                        continue
                for _, kind, obj in fresh:
                    chunk({"type": kind, "object": obj})
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            pass
        handler.close_connection = True
