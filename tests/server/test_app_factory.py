"""The app factory in-process: services built in one place and passed in, readiness owned
by the state (with probes other parts register), reloads counted through a listener."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.policy import bundled_policies_dir
from webhook.server.app import create_app
from webhook.server.config import ServerConfig
from webhook.server.readiness import Condition
from webhook.server.services import Services
from webhook.server.state import ServingState
from webhook.server.tls import CertificateReloader, certificate_probe


def copy_policies(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        (folder / name).write_text((bundled_policies_dir() / name).read_text())
    return folder


def readyz(app: Any) -> tuple[int, dict[str, Any]]:
    response = app.test_client().get("/readyz")
    return response.status_code, json.loads(response.data)


def test_the_app_routes_over_the_services_it_is_given(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path / "policies", "plugin-security-context.yaml")
    config = ServerConfig(policies_dir=policies, reload_interval=0, review_log=False)
    services = Services.start(config)
    app = create_app(config, services)
    assert app.extensions["plugin_guard"] is services
    assert readyz(app) == (200, {"status": "ready", "policies": 1, "plugins": 0})


def test_a_probe_that_is_not_ready_makes_readyz_503_and_a_problem_degrades(
    tmp_path: Path,
) -> None:
    config = ServerConfig(reload_interval=0, review_log=False)
    state = ServingState.preload(None)
    answers = [Condition(ready=False, problem="no certificate from the Secret yet")]
    state.add_readiness_probe("certificate", lambda: answers[-1])
    app = create_app(config, Services.start(config, state=state))

    code, body = readyz(app)
    assert code == 503
    assert body["status"] == "not ready"
    assert body["problems"] == ["certificate: no certificate from the Secret yet"]

    answers.append(Condition(problem="renewal failed: Forbidden"))
    code, body = readyz(app)
    assert (code, body["status"]) == (200, "degraded")
    assert body["problems"] == ["certificate: renewal failed: Forbidden"]

    answers.append(Condition())
    assert readyz(app)[1] == {
        "status": "ready",
        "policies": len(state.policy_set.policy_ids),
        "plugins": 0,
    }


def test_missing_certificate_files_degrade_readiness(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    reloader = CertificateReloader()
    probe = certificate_probe(cert, key, reloader)
    assert probe() == Condition(problem=f"{cert} or its key is missing")
    cert.write_text("x")
    key.write_text("y")
    assert probe() == Condition()
    reloader.last_error = "SSLError: key values mismatch"
    assert probe() == Condition(problem="SSLError: key values mismatch")


def test_reloads_reach_every_listener_and_a_bad_edit_keeps_the_last_good_set(
    tmp_path: Path,
) -> None:
    policies = copy_policies(tmp_path / "policies", "plugin-security-context.yaml")
    state = ServingState(policies_dir=policies)
    heard: list[bool] = []
    state.add_reload_listener(heard.append)
    first = state.policy_set

    broken = yaml.safe_load((policies / "plugin-security-context.yaml").read_text())
    broken["action"] = "Enforse"
    (policies / "plugin-security-context.yaml").write_text(yaml.safe_dump(broken))
    assert state.check() is False
    assert heard == [False]
    assert state.policy_set is first
    readiness = state.readiness()
    assert readiness.status == "degraded"
    assert readiness.http_status == 200
    assert "did you mean 'Enforce'" in readiness.problems[0]

    (policies / "plugin-security-context.yaml").unlink()
    assert state.check() is True
    assert heard == [False, True]
    assert state.readiness().status == "ready"
    assert state.policy_set.policy_ids == []


def test_metrics_count_the_reloads_of_a_preloaded_state(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path / "policies", "plugin-security-context.yaml")
    config = ServerConfig(policies_dir=policies, reload_interval=0, review_log=False)
    state = ServingState.preload(policies)
    app = create_app(config, Services.start(config, state=state))
    (policies / "plugin-security-context.yaml").unlink()
    assert state.check()
    metrics = app.test_client().get("/metrics").data.decode()
    assert 'plugin_guard_policy_reloads_total{result="success"} 1.0' in metrics


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
def test_admission_routes_call_the_services(path: str) -> None:
    config = ServerConfig(reload_interval=0, review_log=False)
    app = create_app(config)
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "namespace": "argo",
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        },
    }
    response = app.test_client().post(path, json=review)
    assert response.status_code == 200
    assert json.loads(response.data)["response"] == {"uid": "u-1", "allowed": True}
