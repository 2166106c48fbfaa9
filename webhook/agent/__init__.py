"""The in-cluster agent for Argo's `disableAgentPodCreation` mode (spec 4.1, 5, 6):
serves WorkflowTaskSets with the embedded dispatcher.

    cluster = Cluster.connect()                       # webhook.kube: KUBECONFIG or in-cluster
    clients = [PluginClient(PluginEndpoint("http://localhost:4355", token, "hello"))]
    agent = Agent(cluster.resource(kinds.WORKFLOW_TASKSET), clients, AgentConfig(namespaces=("argo",)))
    agent.run(stop_event)                             # until stop_event is set; then drains
"""

from webhook.agent.agent import Agent, AgentConfig, AgentExecutor, workflow_uid
from webhook.agent.patcher import (
    ARGO_PATCH_BACKOFF,
    PATCH_FAILED_MESSAGE,
    PatchBackoff,
    PatchWorker,
    TaskSetRef,
    node_json,
)
from webhook.agent.tokens import AgentInputError, endpoints_from_env, write_token_files
from webhook.httptemplate import HTTPTemplateRunner

__all__ = [
    "ARGO_PATCH_BACKOFF",
    "PATCH_FAILED_MESSAGE",
    "Agent",
    "AgentConfig",
    "AgentExecutor",
    "AgentInputError",
    "HTTPTemplateRunner",
    "PatchBackoff",
    "PatchWorker",
    "TaskSetRef",
    "endpoints_from_env",
    "node_json",
    "workflow_uid",
    "write_token_files",
]
