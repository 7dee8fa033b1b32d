"""PATCH /api/runs/{id} (budget) and POST /api/runs/estimate over the HTTP functions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devhost.durable import DurableEngine
from evalruns.services import Services
from tests.http.test_definitions_api import assert_problem, create, example
from tests.http.test_run_control_api import act, assert_terminated, started_run
from tests.http.test_run_control_api import instant_cancel as instant_cancel
from tests.support.functions import call_http, json_body

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def patch(run_id: str, body: object) -> object:
    return call_http("runs_patch", "PATCH", route_params={"runId": run_id}, body=body)


@pytest.mark.usefixtures("instant_cancel")
def test_patch_changes_the_budget_and_refuses_bad_values(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    configure()
    run_id = started_run(engine)
    changed = patch(run_id, {"budgetUsd": 2.5})
    assert changed.status_code == 200 and json_body(changed)["budgetUsd"] == 2.5
    assert_problem(patch(run_id, {"budgetUsd": 0}), 400, "budgetUsd")
    assert_problem(patch(run_id, {"budgetUsd": "lots"}), 400, "budgetUsd")
    assert_problem(patch("nope", {"budgetUsd": 1}), 404)
    cleared = patch(run_id, {"budgetUsd": None})
    assert cleared.status_code == 200 and json_body(cleared)["budgetUsd"] is None
    assert act(engine, "cancel", run_id).status_code == 202
    assert_terminated(engine, run_id)
    assert assert_problem(patch(run_id, {"budgetUsd": 3}), 409)["currentStatus"] == "CANCELLED"


@pytest.mark.usefixtures("instant_cancel")
def test_a_null_name_is_refused_and_the_runs_list_still_answers(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    # Found by fuzzing: `{"name": null}` was stored, and every later GET /api/runs was a 500.
    configure()
    run_id = started_run(engine)
    assert_problem(patch(run_id, {"name": None}), 400, "name", "leave `name` out")
    assert_problem(patch(run_id, {"name": ""}), 400, "name")
    renamed = patch(run_id, {"name": "renamed"})
    assert renamed.status_code == 200 and json_body(renamed)["name"] == "renamed"
    listing = call_http("runs_list")
    assert listing.status_code == 200
    assert [run["name"] for run in json_body(listing)["items"]] == ["renamed"]


def test_estimate_before_anything_is_spent(services: Services) -> None:
    definition = create(example("library_funding"))
    body = {
        "definitionId": definition["id"],
        "models": ["mock-small", "mock-large"],
        "samplePercentage": 20,
        "samplesPerScenario": 2,
        "maxTokens": 100,
    }
    response = call_http("runs_estimate", "POST", body=body)
    assert response.status_code == 200
    estimate = json_body(response)
    assert estimate["jobs"] == 2 * 25 * 2
    small = estimate["byModel"]["mock-small"]
    assert small["jobs"] == 50 and small["outputTokens"] == 50 * 100
    assert small["outputTokensBasis"] == "maxTokens" and small["inputTokens"] > 50
    assert estimate["costUsd"] == pytest.approx(
        sum(entry["costUsd"] for entry in estimate["byModel"].values()), abs=1e-6
    )
    assert json_body(call_http("runs_list"))["items"] == []  # nothing was started
    assert_problem(
        call_http("runs_estimate", "POST", body={**body, "models": ["nope"]}), 400, "nope"
    )
    assert_problem(
        call_http("runs_estimate", "POST", body={**body, "definitionId": "missing"}), 404
    )
