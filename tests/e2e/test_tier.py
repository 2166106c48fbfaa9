"""The tier itself: a real API server with the behaviour the loopback fake only imitates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from .controlplane import ControlPlane
from .guard import NOBODY

pytestmark = pytest.mark.realapi


def configmap(name: str, namespace: str, data: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": data,
        }
    )


def test_it_is_a_real_kube_apiserver_with_rbac(control_plane: ControlPlane) -> None:
    version = control_plane.kubectl("version", "-o", "json", check=True).json()
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert control_plane.server_version().count(".") == 2
    whoami = control_plane.kubectl("auth", "whoami", "-o", "json", check=True).json()
    assert "system:masters" in whoami["status"]["userInfo"]["groups"]

    denied = control_plane.kubectl("get", "configmaps", "-n", "default", user=NOBODY)
    assert denied.returncode == 1
    assert 'User "e2e-nobody" cannot list resource "configmaps"' in denied.stderr
    can_i = control_plane.kubectl(
        "auth",
        "can-i",
        "patch",
        "workflowtasksets",
        "--subresource=status",
        "-n",
        "default",
        user=NOBODY,
    )
    assert (can_i.returncode, can_i.stdout.strip()) == (1, "no")
    admin = control_plane.kubectl(
        "auth", "can-i", "patch", "workflowtasksets", "--subresource=status", "-n", "default"
    )
    assert (admin.returncode, admin.stdout.strip()) == (0, "yes")


def test_second_create_is_409_and_a_stale_update_is_a_conflict(
    control_plane: ControlPlane, make_namespace
) -> None:
    ns = make_namespace("tier")
    first = control_plane.kubectl("create", "-f", "-", input=configmap("cm", ns, {"a": "1"}))
    assert first.returncode == 0, first.stderr
    again = control_plane.kubectl("create", "-f", "-", input=configmap("cm", ns, {"a": "2"}))
    assert again.returncode == 1
    assert 'configmaps "cm" already exists' in again.stderr

    stored = control_plane.kubectl("get", "configmap", "cm", "-n", ns, "-o", "json").json()
    stale = dict(stored, data={"a": "stale"})
    control_plane.kubectl(
        "patch",
        "configmap",
        "cm",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"data":{"a":"new"}}',
        check=True,
    )
    conflict = control_plane.kubectl("replace", "-f", "-", input=yaml.safe_dump(stale))
    assert conflict.returncode == 1
    assert "the object has been modified" in conflict.stderr


def test_taskset_status_is_a_subresource(argo_crds: ControlPlane, make_namespace) -> None:
    ns = make_namespace("tier")
    taskset = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": {"name": "wf-1", "namespace": ns},
        "spec": {"tasks": {"node-1": {"name": "hello", "plugin": {"hello": {}}}}},
    }
    argo_crds.apply([taskset], check=True)
    # a status written with the main resource is dropped ...
    argo_crds.kubectl(
        "patch",
        "wfts",
        "wf-1",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"status":{"nodes":{"node-1":{"phase":"Succeeded"}}}}',
        check=True,
    )
    assert "status" not in argo_crds.kubectl("get", "wfts", "wf-1", "-n", ns, "-o", "json").json()
    # ... and kept through the subresource, typed as Argo's NodeResult
    argo_crds.kubectl(
        "patch",
        "wfts",
        "wf-1",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"nodes":{"node-1":{"phase":"Succeeded","message":"hi"}}}}',
        check=True,
    )
    stored = argo_crds.kubectl("get", "wfts", "wf-1", "-n", ns, "-o", "json").json()
    assert stored["status"]["nodes"]["node-1"] == {"phase": "Succeeded", "message": "hi"}
    wrong = argo_crds.kubectl(
        "patch",
        "wfts",
        "wf-1",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"nodes":{"node-1":{"phase":3}}}}',
    )
    assert wrong.returncode == 1
    assert "status.nodes.node-1.phase" in wrong.stderr


def test_an_interrupted_session_leaves_no_process_and_no_file(control_plane: ControlPlane) -> None:
    """A second control plane in a child Python, interrupted (SIGINT, as Ctrl-C) once it is
    up: its etcd and kube-apiserver are gone and its folder removed."""
    here = Path(__file__).resolve().parent
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(here.parents[1])!r})
        from tests.e2e.assets import Assets
        from tests.e2e.controlplane import ControlPlane
        plane = ControlPlane(Assets(__import__("pathlib").Path({str(control_plane.assets.folder)!r})))
        plane.start()
        print(plane.workdir, plane.etcd.pid, plane.apiserver.pid, flush=True)
        time.sleep(120)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=here
    )
    try:
        assert child.stdout is not None
        workdir, etcd_pid, apiserver_pid = child.stdout.readline().split()
        assert Path(workdir).is_dir()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert not Path(workdir).exists()
    for pid in (int(etcd_pid), int(apiserver_pid)):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
