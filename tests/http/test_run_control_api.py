"""Run control over the HTTP functions: 202 with the run, 409 problem+json naming the status
for every action the status does not allow, 404 for unknown runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devhost.durable import DurableEngine
from evalruns.services import Services
from http_api import run_control
from tests.http.test_definitions_api import assert_problem, create, example
from tests.support.functions import call_http, json_body

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
    pytest.mark.usefixtures("instant_cancel"),
]


@pytest.fixture
def instant_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    """No settle wait after a cancel's terminate: the stepped engine applies it only when
    the test steps it, so waiting would change nothing but take seconds."""
    monkeypatch.setattr(run_control, "CANCEL_SETTLE_SECONDS", 0.0)


def assert_terminated(engine: DurableEngine, run_id: str) -> None:
    """The cancel terminated the run's own orchestration (terminate swallows errors, so the
    202 alone would not show a terminate sent to the wrong instance)."""
    engine.run_until_idle()
    status = engine.status(run_id)
    assert status is not None and status.runtime_status == "Terminated", status


def act(engine: DurableEngine, action: str, run_id: str, body: Any = None) -> Any:
    return call_http(
        f"runs_{action}",
        "POST",
        route_params={"runId": run_id},
        body=body,
        client=engine.client_binding(),
    )


def started_run(engine: DurableEngine) -> str:
    definition = create(example("shift_policy"))
    response = call_http(
        "runs_create",
        "POST",
        body={"definitionId": definition["id"], "models": ["mock-small"]},
        client=engine.client_binding(),
    )
    assert response.status_code == 202
    return str(json_body(response)["run"]["id"])


def test_every_action_answers_202_or_409_by_status(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    configure()
    run_id = started_run(engine)
    conflict = assert_problem(act(engine, "resume", run_id), 409, "PENDING", "resume")
    assert conflict["currentStatus"] == "PENDING"

    paused = act(engine, "pause", run_id)
    assert paused.status_code == 202 and json_body(paused)["status"] == "PAUSED"
    assert assert_problem(act(engine, "pause", run_id), 409)["currentStatus"] == "PAUSED"

    resumed = act(engine, "resume", run_id)
    assert resumed.status_code == 202 and json_body(resumed)["status"] == "RUNNING"
    assert assert_problem(act(engine, "resume", run_id), 409)["currentStatus"] == "RUNNING"

    cancelled = act(engine, "cancel", run_id)
    assert cancelled.status_code == 202
    body = json_body(cancelled)
    assert body["status"] == "CANCELLED" and body["completedAt"]
    assert_terminated(engine, run_id)
    for action in ("pause", "resume", "cancel"):
        problem = assert_problem(act(engine, action, run_id), 409, action)
        assert problem["currentStatus"] == "CANCELLED"


def test_completed_runs_refuse_every_action(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    configure()
    run_id = started_run(engine)
    engine.run_until_complete(run_id)
    for action in ("pause", "resume", "cancel"):
        assert assert_problem(act(engine, action, run_id), 409)["currentStatus"] == "COMPLETED"


def test_unknown_runs_are_404(services: Services, engine: DurableEngine) -> None:
    for action in ("pause", "resume", "cancel", "rerun"):
        assert_problem(act(engine, action, "no-such-run", body={}), 404, "no-such-run")


def test_rerun_validates_its_body(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    configure()
    run_id = started_run(engine)
    engine.run_until_complete(run_id)
    assert_problem(
        act(engine, "rerun", run_id, {"onlyFailed": True, "models": ["mock-large"]}),
        400,
        "onlyFailed",
    )
    assert_problem(act(engine, "rerun", run_id, {"models": ["nope"]}), 400, "nope")
    assert_problem(act(engine, "rerun", run_id, {"models": []}), 400, "models")
    response = act(engine, "rerun", run_id, {"models": ["mock-large"]})
    assert response.status_code == 202
    child = json_body(response)["run"]
    assert child["parentRunId"] == run_id
    assert [m["id"] for m in child["config"]["models"]] == ["mock-large"]
    parent = json_body(
        call_http("runs_get", route_params={"runId": run_id}, client=engine.client_binding())
    )
    assert parent["childRunIds"] == [child["id"]]
