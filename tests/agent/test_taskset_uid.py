"""A TaskSet deleted and re-created under the same name never gets a result meant for
the old one: the status patch carries the old object's resourceVersion, the API answers
409, and the result waits until the old uid's DELETED event drops it."""

from __future__ import annotations

from webhook.agent import PatchBackoff, PatchWorker, TaskSetRef
from webhook.kube import Cluster, kinds

TASK = {"name": "hello", "inputs": {}, "outputs": {}, "plugin": {"hello": {}}}


def test_a_result_for_the_old_uid_never_lands_on_its_namesake(kube, kubeconfig):
    old = kube.create("wf", {"n": TASK})
    cluster = Cluster.connect(str(kubeconfig))
    tasksets = cluster.resource(kinds.WORKFLOW_TASKSET)
    errors: list[str] = []
    patcher = PatchWorker(
        lambda ns, name, body: tasksets.patch_status(name, body, namespace=ns),
        backoff=PatchBackoff(steps=2),
        sleep=lambda s: None,
        on_error=errors.append,
    )
    ref = TaskSetRef("argo", "wf", old["metadata"]["uid"])
    patcher.observe(ref.uid, old["metadata"]["resourceVersion"])
    patcher.add(ref, "n", {"phase": "Succeeded"})
    # the controller deletes the workflow's TaskSet and a new workflow of the same name
    # gets a new one, before the agent's watch has shown either event
    kube.delete("wf")
    new = kube.create("wf", {"n": TASK}, workflow_uid="wf-uid-2")
    patcher.flush()
    assert errors == ["conflict", "conflict"]
    assert kube.nodes("wf") == {}  # nothing written into the namesake
    assert patcher.pending() == {"argo/wf": {"n": {"phase": "Succeeded"}}}  # not an Error
    patcher.forget(ref.uid)  # the old uid's DELETED event
    assert patcher.pending() == {}
    # the new uid's own result goes through
    fresh = TaskSetRef("argo", "wf", new["metadata"]["uid"])
    patcher.observe(fresh.uid, new["metadata"]["resourceVersion"])
    patcher.add(fresh, "n", {"phase": "Failed"})
    patcher.flush()
    assert kube.nodes("wf") == {"n": {"phase": "Failed"}}
    cluster.close()
