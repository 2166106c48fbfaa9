"""The per-plugin RPC client: Argo's `rpc.New(address, token)` and `Client.Call`
(spec section 6.3; request and reply shapes in section 7).

One `PluginClient` per plugin sidecar. It POSTs `<address>/api/v1/<method>` with the
Bearer token, retries transient failures on Argo's schedule (5 attempts, sleeps of 1, 2,
4 and 8 s, each plus up to 20% jitter), remembers a 404 for the rest of its life, and
decodes a 200 into an `ExecuteTemplateReply` the way Go's `json.Decoder` would. The
sleep and the jitter source are injectable so tests never wait for the real schedule.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.dispatch.duration import DurationError, parse_go_duration
from webhook.dispatch.transport import HTTPReply, PooledHTTPTransport, Transport, TransportError

log = logging.getLogger(__name__)

TEMPLATE_EXECUTE = "template.execute"
DEFAULT_CALL_TIMEOUT = 30.0  # http.Client{Timeout: 30s} (spec 6.3)
PLUGIN_NAME_SUFFIX = "-executor-plugin"


@dataclass(frozen=True, slots=True)
class Backoff:
    """k8s `wait.Backoff{Duration: 1s, Factor: 2, Jitter: 0.2, Steps: 5}` (spec 6.3)."""

    duration: float = 1.0
    factor: float = 2.0
    jitter: float = 0.2
    steps: int = 5


ARGO_BACKOFF = Backoff()


class PluginCallError(Exception):
    """The call failed for good; the message becomes the node's message (spec 6.4)."""


class _TransientCallError(Exception):
    """A failure Argo's predicate retries (503, connection refused, timeouts, resets)."""


@dataclass(frozen=True, slots=True)
class NodeResult:
    """`NodeResult` (spec 7.2). `progress` is part of Argo's type but ignored by the
    controller for plugin nodes, so it is not kept."""

    phase: str = ""
    message: str = ""
    outputs: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "message": self.message, "outputs": self.outputs}


@dataclass(slots=True)
class ExecuteTemplateReply:
    """`ExecuteTemplateReply` (spec 7.2), mutable on purpose: Argo decodes every plugin's
    answer into the *same* reply value (spec 6.4 step 4), so a `requeue` sent by a plugin
    that did not take the template carries over to a later plugin that does."""

    node: NodeResult | None = None
    requeue: str | None = None
    requeue_ns: int = 0


@dataclass(frozen=True, slots=True)
class PluginEndpoint:
    """Where a plugin listens and the token it expects. `name` is the sidecar container
    name (Argo's `ARGO_PLUGIN_NAMES`); it is only used for logs and route-by-key."""

    address: str
    token: str = ""
    name: str = ""

    def __repr__(self) -> str:  # never show the token, even in a debugger or a log line
        return f"PluginEndpoint(address={self.address!r}, name={self.name!r}, token=***)"

    @property
    def label(self) -> str:
        return self.name or self.address

    @property
    def plugin_name(self) -> str:
        """The ExecutorPlugin name: the container name without Argo's conventional suffix."""
        return self.name.removesuffix(PLUGIN_NAME_SUFFIX)


class PluginClient:
    """One plugin sidecar, as Argo's agent sees it (spec 6.3)."""

    def __init__(
        self,
        endpoint: PluginEndpoint,
        *,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        transport: Transport | None = None,
        backoff: Backoff = ARGO_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        on_retry: Callable[[PluginEndpoint], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._on_retry = on_retry  # the agent counts retries in its metrics
        self.transport: Transport = transport or PooledHTTPTransport(
            endpoint.address, timeout=timeout
        )
        self.backoff = backoff
        self._sleep = sleep
        self._jitter = jitter
        self._unsupported: set[str] = set()
        self._unsupported_lock = threading.Lock()
        self.http_requests = 0  # attempts sent, for tests and the benchmark

    def __repr__(self) -> str:
        return f"PluginClient({self.endpoint!r})"

    def is_unsupported(self, method: str) -> bool:
        return method in self._unsupported

    def call(self, method: str, args: Mapping[str, Any]) -> bytes | None:
        """The 200 body, or None when the plugin does not implement `method` (404, now or
        earlier). Raises `PluginCallError` for anything fatal or after the last retry."""
        if method in self._unsupported:  # spec 6.3 "Before sending": no HTTP at all
            return None
        path = f"/api/v1/{method}"
        delay = self.backoff.duration
        last: _TransientCallError | None = None
        for attempt in range(1, self.backoff.steps + 1):
            try:
                return self._attempt(method, path, args)
            except _TransientCallError as exc:
                last = exc
            if attempt == self.backoff.steps:
                break
            # wait.Jitter(duration, 0.2) = duration + rand[0,1) * 0.2 * duration
            pause = delay + self._jitter() * self.backoff.jitter * delay
            log.info(
                "plugin %s: transient error (attempt %d of %d), retrying in %.2fs: %s",
                self.endpoint.label,
                attempt,
                self.backoff.steps,
                pause,
                last,
            )
            if self._on_retry is not None:
                self._on_retry(self.endpoint)
            self._sleep(pause)
            delay *= self.backoff.factor
        assert last is not None
        raise PluginCallError(str(last))  # spec 6.3: the *last* transient error

    def execute_template(self, args: Mapping[str, Any], reply: ExecuteTemplateReply) -> None:
        """`TemplateExecutor.ExecuteTemplate` (spec 7.4): decode into the shared `reply`."""
        body = self.call(TEMPLATE_EXECUTE, args)
        if body is not None:
            decode_reply(body, reply)

    def close(self) -> None:
        self.transport.close()

    def _attempt(self, method: str, path: str, args: Mapping[str, Any]) -> bytes | None:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.endpoint.token}",
        }
        self.http_requests += 1
        try:
            reply: HTTPReply = self.transport.post(path, go_json_marshal(args), headers)
        except TransportError as exc:
            if exc.transient:
                raise _TransientCallError(str(exc)) from None
            raise PluginCallError(str(exc)) from None
        if reply.status == 200:
            return reply.body
        if reply.status == 404:
            log.info("plugin %s: method not found, not calling again", self.endpoint.label)
            with self._unsupported_lock:
                self._unsupported.add(method)
            return None
        text = reply.body.decode("utf-8", errors="replace")
        if reply.status == 503:
            raise _TransientCallError(text)  # spec 6.3: the message is the body text
        raise PluginCallError(f"{reply.status_line}: {text}")


_GO_HTML_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_json_marshal(value: Any) -> bytes:
    """`json.Marshal`: compact, UTF-8, with Go's HTML-safe escapes. The escaped characters
    can only occur inside JSON strings, so translating the whole text is safe."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_HTML_ESCAPES).encode("utf-8")


_DECODER = json.JSONDecoder()


def decode_reply(body: bytes, reply: ExecuteTemplateReply) -> None:
    """`json.NewDecoder(body).Decode(reply)` (spec 6.3, 200 row).

    Like Go's decoder it reads the first JSON value only; an empty body is `EOF`; `null`
    and `{}` leave `reply` unchanged ("not handled"); unknown fields are ignored; a
    `requeue` that is not a Go duration string is an error (spec 6.6). Errors raise
    `PluginCallError`, which is fatal (no retry).
    """
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise PluginCallError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise PluginCallError(_go_syntax_error(text, exc)) from None
    if value is None:
        return
    if not isinstance(value, dict):
        raise PluginCallError(
            f"json: cannot unmarshal {_go_json_kind(value)} into Go value of type "
            "executor.ExecuteTemplateReply"
        )
    if "node" in value:
        reply.node = _decode_node(value["node"])
    if "requeue" in value:
        _decode_requeue(value["requeue"], reply)


def _decode_node(raw: Any) -> NodeResult | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PluginCallError(
            f"json: cannot unmarshal {_go_json_kind(raw)} into Go struct field "
            "ExecuteTemplateReply.node of type v1alpha1.NodeResult"
        )
    fields: dict[str, Any] = {}
    for key in ("phase", "message"):
        item = raw.get(key)
        if item is not None and not isinstance(item, str):
            raise PluginCallError(
                f"json: cannot unmarshal {_go_json_kind(item)} into Go struct field "
                f"NodeResult.node.{key} of type {'v1alpha1.NodePhase' if key == 'phase' else 'string'}"
            )
        fields[key] = item or ""
    outputs = raw.get("outputs")
    if outputs is not None and not isinstance(outputs, dict):
        raise PluginCallError(
            f"json: cannot unmarshal {_go_json_kind(outputs)} into Go struct field "
            "NodeResult.node.outputs of type v1alpha1.Outputs"
        )
    return NodeResult(phase=fields["phase"], message=fields["message"], outputs=outputs)


def _decode_requeue(raw: Any, reply: ExecuteTemplateReply) -> None:
    if raw is None:  # a JSON null sets Go's *metav1.Duration back to nil
        reply.requeue, reply.requeue_ns = None, 0
        return
    if not isinstance(raw, str):  # spec 6.6: a JSON number fails to decode
        raise PluginCallError(
            f"json: cannot unmarshal {_go_json_kind(raw)} into Go value of type string"
        )
    try:
        reply.requeue_ns = parse_go_duration(raw)
    except DurationError as exc:
        raise PluginCallError(str(exc)) from None
    reply.requeue = raw


def _go_json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """Go's wording for the common cases; the position is where Python gave up."""
    if exc.pos >= len(text) or exc.msg.startswith("Unterminated"):
        return "unexpected EOF"  # the body ends inside a value
    char = text[exc.pos]
    if exc.pos == 0:
        return f"invalid character {_go_quote_char(char)} looking for beginning of value"
    return f"invalid character {_go_quote_char(char)} ({exc.msg.lower()})"


def _go_quote_char(char: str) -> str:
    if char == "'":
        return "'\\''"
    if char.isprintable():
        return f"'{char}'"
    return repr(char)
