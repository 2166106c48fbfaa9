"""The embedded dispatcher: Argo's agent side of the executor plugin protocol
(spec sections 6 and 7), for `plugin-guard execute`, `plugin-guard dev` and the
in-cluster agent.

    clients = [PluginClient(PluginEndpoint("http://localhost:4355", token, "hello"))]
    executor = TemplateExecutor(clients)               # Argo's fall-through order
    with WorkerPool(executor, on_result=patch) as pool:  # 16 workers, requeue
        pool.submit(Task(node_id, WorkflowMeta(name, namespace, uid), template))
"""

from webhook.dispatch.duration import DurationError, parse_go_duration
from webhook.dispatch.executor import (
    NO_PLUGIN_MESSAGE,
    Execution,
    TemplateExecutor,
    WorkflowMeta,
    plugin_key,
)
from webhook.dispatch.pool import (
    DEFAULT_WORKERS,
    ManualScheduler,
    Scheduler,
    Task,
    TaskKey,
    TaskResult,
    ThreadScheduler,
    WorkerPool,
)
from webhook.dispatch.rpc import (
    ARGO_BACKOFF,
    Backoff,
    ExecuteTemplateReply,
    NodeResult,
    PluginCallError,
    PluginClient,
    PluginEndpoint,
    decode_reply,
)
from webhook.dispatch.transport import PooledHTTPTransport, RequestsTransport, TransportError

__all__ = [
    "ARGO_BACKOFF",
    "DEFAULT_WORKERS",
    "NO_PLUGIN_MESSAGE",
    "Backoff",
    "DurationError",
    "ExecuteTemplateReply",
    "Execution",
    "ManualScheduler",
    "NodeResult",
    "PluginCallError",
    "PluginClient",
    "PluginEndpoint",
    "PooledHTTPTransport",
    "RequestsTransport",
    "Scheduler",
    "Task",
    "TaskKey",
    "TaskResult",
    "TemplateExecutor",
    "ThreadScheduler",
    "TransportError",
    "WorkerPool",
    "WorkflowMeta",
    "decode_reply",
    "parse_go_duration",
    "plugin_key",
]
