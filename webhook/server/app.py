"""The Flask app factory: routes, JSON errors, and the one place errors become HTTP.

Routes decode, call and encode; what they call is `webhook.server.services.Services`
(built in one place, passed in).

Routes: `POST /validate`, `POST /mutate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
Every answer is JSON (or Prometheus text); Flask's HTML error pages never reach a client.

The two admission routes do their own body handling (`AdmissionEndpoint.respond`: the
content type, the 3 MiB limit, strict UTF-8 JSON) and are also served by a small WSGI
pre-dispatcher in front of Flask (`fast_path`, on by default) that calls the very same
`respond` without building Flask's request context: that saves ~0.1 ms per review
(see README, performance). Everything else, including wrong methods on the admission
paths, goes through Flask.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from webhook.admission import BadReview, Outcome
from webhook.server.config import ServerConfig
from webhook.server.logs import ReviewLog
from webhook.server.metrics import Metrics
from webhook.server.services import Services

log = logging.getLogger("webhook.server")

JSON = "application/json"
_ENCODER = json.JSONEncoder(separators=(",", ":"))

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a body is decoded: decoding allocates one
    container per JSON object and array and frees none, so every collection it triggers
    walks a growing heap for nothing (a deeply nested 1.5 MiB body: about a third of
    its review). Nothing is lost: the collector runs again at the next allocations."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def status_body(code: int, message: str, reason: str | None = None) -> bytes:
    """A Kubernetes-style `Status` object: what kubectl and client-go print for errors."""
    if reason is None:
        try:
            reason = HTTPStatus(code).phrase.replace(" ", "")
        except ValueError:
            reason = "Error"
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    return _ENCODER.encode(body).encode()


# A body over the limit is still read to its end (and dropped), so the client, still
# sending, gets the 413 answer: a server that answers and closes with unread data makes
# the kernel reset the connection, and a client that sends its whole body before reading
# (http.client, curl) then sees "connection reset" instead of the 413. It used to be read
# up to 4x the limit only, so a 13 MB body got its 413 and a 40 MB one a reset. The
# reading is bounded in time instead (a client slower than that is cut off).
DRAIN_SECONDS = 10.0


def _drain(stream: Any, length: int | None, seconds: float = DRAIN_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    remaining = length
    while remaining is None or remaining > 0:
        chunk = stream.read(65536 if remaining is None else min(remaining, 65536))
        if not chunk or time.monotonic() > deadline:
            return
        if remaining is not None:
            remaining -= len(chunk)


class AdmissionEndpoint:
    """One admission route: body in, (HTTP status, JSON body) out, never an exception."""

    def __init__(
        self,
        webhook: str,
        review: Callable[[object], Outcome],
        *,
        max_body_bytes: int,
        metrics: Metrics,
        review_log: ReviewLog,
    ) -> None:
        self.webhook = webhook
        self.review = review
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.review_log = review_log

    def _error(self, code: int, message: str) -> tuple[int, bytes]:
        self.metrics.http_error(code)
        return code, status_body(code, message)

    def respond(self, environ: Mapping[str, Any]) -> tuple[int, bytes]:
        length_text = environ.get("CONTENT_LENGTH") or ""
        limit = self.max_body_bytes
        stream = environ["wsgi.input"]
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                return self._error(400, "invalid Content-Length")
            if length > limit:
                _drain(stream, length)
                return self._error(413, f"request body larger than {limit} bytes")
            body = stream.read(length) if length > 0 else b""
        else:  # chunked: read at most one byte past the limit
            body = stream.read(limit + 1)
            if len(body) > limit:
                _drain(stream, None)
                return self._error(413, f"request body larger than {limit} bytes")
        # Checked after reading the body, so the client gets this answer, not a reset.
        content_type = environ.get("CONTENT_TYPE") or ""
        if content_type.partition(";")[0].strip().lower() != JSON:
            return self._error(415, "Content-Type must be application/json")
        started = time.perf_counter()
        try:
            text = body.decode("utf-8")
            with _collector_paused():
                review_in = _DECODER.decode(text)
        except UnicodeDecodeError:
            return self._error(400, "request body is not UTF-8")
        except RecursionError:
            return self._error(400, "request body is nested too deeply")
        except ValueError as exc:
            return self._error(400, f"request body is not JSON: {str(exc)[:200]}")
        try:
            outcome = self.review(review_in)
        except BadReview as exc:
            return self._error(400, f"not a valid AdmissionReview: {str(exc)[:300]}")
        except RecursionError:
            return self._error(400, "request body is nested too deeply")
        answer = _ENCODER.encode(outcome.review).encode()
        seconds = time.perf_counter() - started
        self.metrics.observe(self.webhook, outcome, seconds)
        self.review_log.write(self.webhook, outcome, seconds)
        return 200, answer

    def safe_respond(self, environ: Mapping[str, Any]) -> tuple[int, bytes]:
        try:
            return self.respond(environ)
        except Exception:
            log.exception("internal error answering an admission review")
            return self._error(500, "internal error; see the server log")


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


class AdmissionFastPath:
    """WSGI middleware: POST to an admission path goes straight to its endpoint."""

    def __init__(self, app: WSGIApp, endpoints: Mapping[str, AdmissionEndpoint]) -> None:
        self.app = app
        self.endpoints = dict(endpoints)
        self._status = {code: _status_line(code) for code in (200, 400, 413, 415, 500)}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        endpoint = self.endpoints.get(environ.get("PATH_INFO", ""))
        if endpoint is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        code, body = endpoint.safe_respond(environ)
        start_response(
            self._status.get(code) or _status_line(code),
            [("Content-Type", JSON), ("Content-Length", str(len(body)))],
        )
        return [body]


def _json_response(payload: Mapping[str, Any], code: int = 200) -> Response:
    return Response(_ENCODER.encode(payload), status=code, mimetype=JSON)


def create_app(
    config: ServerConfig | Mapping[str, Any] | None = None, services: Services | None = None
) -> Flask:
    """Build the webhook app: routes over `services` (started from `config` when None).

    `config` may be a ServerConfig or a mapping of its fields.
    """
    if config is None:
        config = ServerConfig()
    elif not isinstance(config, ServerConfig):
        config = ServerConfig.from_mapping(config)
    if services is None:
        services = Services.start(config)
    app = Flask("webhook.server")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["WEBHOOK"] = config
    app.extensions["plugin_guard"] = services
    metrics = services.metrics

    endpoints = {
        f"/{webhook}": AdmissionEndpoint(
            webhook,
            review,
            max_body_bytes=config.max_body_bytes,
            metrics=metrics,
            review_log=services.review_log,
        )
        for webhook, review in (("validate", services.validate), ("mutate", services.mutate))
    }

    def admission_view(path: str) -> Response:
        code, body = endpoints[path].safe_respond(request.environ)
        return Response(body, status=code, mimetype=JSON)

    app.add_url_rule("/validate", "validate", lambda: admission_view("/validate"), methods=["POST"])
    app.add_url_rule("/mutate", "mutate", lambda: admission_view("/mutate"), methods=["POST"])

    @app.get("/healthz")
    def healthz() -> Response:
        return _json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        readiness = services.state.readiness()  # see webhook.server.readiness
        return _json_response(readiness.as_dict(), readiness.http_status)

    @app.get("/metrics")
    def metrics_view() -> Response:
        data, content_type = metrics.render()
        return Response(data, status=200, content_type=content_type)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        metrics.http_error(code)
        response = Response(status_body(code, exc.description or exc.name), status=code)
        response.mimetype = JSON
        valid_methods = getattr(exc, "valid_methods", None)
        if code == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        log.exception("internal error")
        metrics.http_error(500)
        return Response(status_body(500, "internal error; see the server log"), 500, mimetype=JSON)

    if config.fast_path:
        app.wsgi_app = AdmissionFastPath(app.wsgi_app, endpoints)  # type: ignore[method-assign]
    return app
