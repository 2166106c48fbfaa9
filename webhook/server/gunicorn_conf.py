"""Default gunicorn settings for `plugin-guard serve`, in the style of a gunicorn.conf.py.

Every module-level name that is a gunicorn setting is applied, then the `serve` options
(`--host/--port`, `--workers`, `--cert-file/--key-file`, ...) override them. Reference:
https://gunicorn.org/reference/settings/ (and `examples/example_config.py`).
"""

from __future__ import annotations

import os
from typing import Any

from webhook.server.metrics import mark_worker_dead

# --------------------------------------------------------------------------- Server socket

# bind: where to listen. serve replaces it with `--host:--port`. The API server reaches
# the webhook through a Service on 443 -> this port.
bind = ["127.0.0.1:8443"]

# backlog: connections the kernel queues before gunicorn accepts them.
backlog = 2048

# --------------------------------------------------------------------------- Worker processes

# workers: processes. Reviews are CPU-bound (policy evaluation), so one per core; in a
# cluster scale with replicas. `--workers` overrides.
workers = 2

# worker_class: gthread is gunicorn's answer to "need keep-alive?": the API server keeps
# a few long-lived TLS connections to each webhook, and a thread per in-flight request
# keeps a slow client from blocking the others.
worker_class = "gthread"

# threads: per worker. Evaluation holds the GIL, so more threads only add latency.
threads = 4

# worker_connections: open connections per worker, kept-alive ones included.
worker_connections = 1000

# max_requests: 0 = never recycle. Nothing is known to leak; policies reload in place.
max_requests = 0

# timeout: the arbiter kills a worker silent for this long. Well above the API server's
# webhook timeoutSeconds (default 10 s): a review that slow has already failed there.
timeout = 30

# graceful_timeout: on SIGTERM, in-flight requests get this long to finish. The API
# server gives up on a call after timeoutSeconds (10 s), so waiting longer is pointless.
graceful_timeout = 10

# keepalive: seconds an idle connection stays open. Long, so the API server (Go's idle
# timeout is 90 s) reuses its TLS connections instead of a new handshake per review.
keepalive = 30

# worker_tmp_dir: the heartbeat file is fchmod'ed every second; on a disk-backed /tmp
# that "can block" (gunicorn FAQ). /dev/shm is tmpfs in containers and on Linux.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# --------------------------------------------------------------------------- Security

# limit_request_*: gunicorn's defaults; admission requests have few, short headers.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# --------------------------------------------------------------------------- TLS

# certfile/keyfile: set by serve (given, or the local CA's). ssl_context: also set by
# serve, to its `webhook.server.tls.CertificateReloader` (TLS 1.2+, and a context rebuilt
# when the files change on disk); the app's /readyz reads the same object.

# --------------------------------------------------------------------------- Logging

# One JSON line per review is written by the app; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
loglevel = "info"
logger_class = "webhook.server.gunicorn_app.JsonLogger"
proc_name = "plugin-guard"

# control_socket: gunicorn 27's runtime management socket (~/.gunicorn/gunicorn.ctl).
# Not needed (signals do the job) and a shared path would clash between servers.
control_socket_disable = True

# --------------------------------------------------------------------------- Server hooks


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: drop its live metric files (prometheus multiprocess mode)."""
    mark_worker_dead(worker.pid)
