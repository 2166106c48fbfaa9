"""HTTP transports for the plugin RPC client: a pooled `http.client` one (the default)
and a `requests.Session` one, behind one small protocol so the benchmark can compare
them against the same plugin (see `bench/dispatch_bench.py` and the README numbers).

A transport turns every network failure into `TransportError` with a message in Go's
wording (`Post "<url>": dial tcp ...: connect: connection refused`), because that text
ends up in the node's message exactly as Argo's agent would write it (spec section 6.3).
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests


@dataclass(frozen=True, slots=True)
class HTTPReply:
    """What the RPC client needs from a response: Go's `resp.Status` parts and the body."""

    status: int
    reason: str
    body: bytes

    @property
    def status_line(self) -> str:
        """Go's `resp.Status`: the status line as sent, e.g. `500 Internal Server Error`."""
        return f"{self.status} {self.reason}" if self.reason else str(self.status)


class TransportError(Exception):
    """The request got no HTTP response. `transient` follows Argo's retry predicate."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class Transport(Protocol):
    def post(self, path: str, body: bytes, headers: dict[str, str]) -> HTTPReply: ...

    def close(self) -> None: ...


def split_address(address: str) -> tuple[str, str, int]:
    """`http://localhost:4355` -> (scheme, host, port); raises ValueError for anything else."""
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"plugin address must be http://HOST:PORT, got {address!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


class PooledHTTPTransport:
    """`http.client` with a pool of keep-alive connections shared by all worker threads.

    Why not one connection: sixteen workers call the same plugin at once. Why check an
    idle connection before reuse: a plugin built on `BaseHTTPRequestHandler` closes the
    connection after each reply, and Go's transport notices that on idle connections
    (its read loop sees EOF) instead of failing the next request; `_is_dropped` is the
    same check. A request that fails after being sent is never replayed here: POST is not
    idempotent, and the RPC client's retry schedule decides what happens next.
    """

    def __init__(self, address: str, *, timeout: float = 30.0, max_idle: int = 32) -> None:
        self.scheme, self.host, self.port = split_address(address)
        self.address = address.rstrip("/")
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> HTTPReply:
        url = self.address + path
        conn = self._acquire()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except Exception as exc:
            conn.close()
            raise _go_transport_error(url, self.host, self.port, exc) from None
        reply = HTTPReply(response.status, response.reason or "", data)
        self._release(conn)
        return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _acquire(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is None or not _is_dropped(conn.sock):
                    return conn
                conn.close()
        if self.scheme == "https":
            return _NoDelayHTTPSConnection(self.host, self.port, timeout=self.timeout)
        return _NoDelayHTTPConnection(self.host, self.port, timeout=self.timeout)

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()


class _NoDelayHTTPConnection(http.client.HTTPConnection):
    """TCP_NODELAY, as Go's dialer sets by default: without it a small request can wait
    for a delayed ACK (about 40 ms on Linux) before it leaves."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _NoDelayHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _is_dropped(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed by the server (or is out of
    sync): either way it must not carry the next request."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _go_transport_error(url: str, host: str, port: int, exc: Exception) -> TransportError:
    """Go's `*url.Error` text for the failure; everything Argo's predicate retries is
    transient (spec 6.3: timeouts, connection refused, resets, EOF, any `*net.OpError`)."""
    prefix = f'Post "{url}"'
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"{prefix}: dial tcp {host}:{port}: connect: connection refused")
    if isinstance(exc, TimeoutError):
        return TransportError(
            f"{prefix}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )
    if isinstance(exc, ConnectionResetError):
        return TransportError(f"{prefix}: read tcp {host}:{port}: read: connection reset by peer")
    if isinstance(exc, BrokenPipeError):
        return TransportError(f"{prefix}: write tcp {host}:{port}: write: broken pipe")
    if isinstance(exc, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return TransportError(f"{prefix}: EOF")
    if isinstance(exc, http.client.HTTPException):
        # A reply that is not HTTP at all: Go reports "malformed HTTP response", which its
        # transient-error predicate does not match, so it is fatal.
        return TransportError(f"{prefix}: malformed HTTP response: {exc}", transient=False)
    if isinstance(exc, OSError):
        return TransportError(f"{prefix}: {exc.strerror or exc}")
    return TransportError(f"{prefix}: {exc}", transient=False)


class RequestsTransport:
    """`requests.Session` (urllib3 pool); kept for comparison in the benchmark."""

    def __init__(self, address: str, *, timeout: float = 30.0, max_idle: int = 32) -> None:
        _, self.host, self.port = split_address(address)
        self.address = address.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max_idle)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> HTTPReply:
        url = self.address + path
        try:
            response = self._session.post(url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise TransportError(
                f'Post "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
            ) from None
        except requests.ConnectionError as exc:
            text = str(exc)
            if "refused" in text:
                text = f"dial tcp {self.host}:{self.port}: connect: connection refused"
            elif "reset" in text:
                text = "read: connection reset by peer"
            elif "RemoteDisconnected" in text or "aborted" in text.lower():
                text = "EOF"
            raise TransportError(f'Post "{url}": {text}') from None
        except requests.RequestException as exc:
            raise TransportError(f'Post "{url}": {exc}', transient=False) from None
        return HTTPReply(response.status_code, response.reason or "", response.content)

    def close(self) -> None:
        self._session.close()
