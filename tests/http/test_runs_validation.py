"""POST /api/runs refuses bad input with problem+json before anything is started."""

from __future__ import annotations

from typing import Any

import pytest

from evalruns.services import Services
from tests.http.test_definitions_api import assert_problem, create, example
from tests.integration.storage.test_repositories import make_run
from tests.support.functions import call_http, json_body


@pytest.fixture
def definition_id(services: Services) -> str:
    return str(create(example("shift_policy"))["id"])


def start(body: dict[str, Any]) -> Any:
    return call_http("runs_create", "POST", "/api/runs", body=body)


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"models": []}, ["models"]),
        ({"models": ["mock-small", "mock-small"]}, ["listed twice"]),
        ({"models": ["mock-small", "mock:mock-small@mock-small-20250101"]}, ["listed twice"]),
        ({"models": ["nope-model"]}, ["nope-model"]),
        ({"models": ["mock-small@v9"]}, ["mock-small@v9", "version"]),
        ({"models": ["openai:mock-small"]}, ["openai:mock-small"]),
        ({"samplePercentage": 0}, ["samplePercentage"]),
        ({"samplePercentage": 101}, ["samplePercentage"]),
        ({"samplesPerScenario": 0}, ["samplesPerScenario"]),
        ({"samplesPerScenario": 101}, ["samplesPerScenario"]),
        ({"temperature": 2.5}, ["temperature"]),
        ({"maxTokens": 0}, ["maxTokens"]),
        ({"sampleSeed": -1}, ["sampleSeed"]),
        ({"definitionId": ""}, ["definitionId"]),
    ],
)
def test_bad_run_requests_are_400(
    definition_id: str, changes: dict[str, Any], fragments: list[str]
) -> None:
    body = {"definitionId": definition_id, "models": ["mock-small"], **changes}
    assert_problem(start(body), 400, *fragments)


def test_every_unavailable_model_is_named(definition_id: str) -> None:
    body = {"definitionId": definition_id, "models": ["gpt-4o-mini", "mock-small", "grok-3"]}
    problem = assert_problem(start(body), 400, "gpt-4o-mini", "grok-3", "credentials")
    assert [error["loc"] for error in problem["errors"]] == [
        ["body", "models", 0],
        ["body", "models", 2],
    ]


def test_unknown_definition_is_404(services: Services) -> None:
    assert_problem(start({"definitionId": "missing", "models": ["mock-small"]}), 404, "missing")


def test_missing_body_names_the_required_fields(services: Services) -> None:
    problem = assert_problem(start({}), 400, "definitionId", "models")
    assert {tuple(error["loc"]) for error in problem["errors"]} == {
        ("body", "definitionId"),
        ("body", "models"),
    }


def test_no_run_is_recorded_for_refused_requests(definition_id: str) -> None:
    start({"definitionId": definition_id, "models": ["nope"]})
    listed = json_body(call_http("runs_list"))
    assert listed == {"items": [], "nextCursor": None}


def test_run_list_status_filter_is_validated(services: Services) -> None:
    problem = assert_problem(
        call_http("runs_list", params={"status": "sleeping"}), 400, "status", "CANCELLED"
    )
    assert [error["loc"] for error in problem["errors"]] == [["query", "status"]]
    # As the document types it: the values as listed (a lowercase one is refused too).
    assert_problem(call_http("runs_list", params={"status": "completed"}), 400, "COMPLETED")
    assert call_http("runs_list", params={"status": "COMPLETED"}).status_code == 200
    assert_problem(call_http("runs_get", route_params={"runId": "nope"}), 404, "nope")


def test_transcript_list_status_filter_is_validated(services: Services) -> None:
    run = services.runs.create(make_run())
    route = {"runId": run.id}
    problem = assert_problem(
        call_http("transcripts_list", params={"status": "lost"}, route_params=route),
        400,
        "status",
        "SUCCEEDED",
        "FAILED",
    )
    assert [error["loc"] for error in problem["errors"]] == [["query", "status"]]
    listed = call_http("transcripts_list", params={"status": "FAILED"}, route_params=route)
    assert json_body(listed) == {"items": [], "nextCursor": None}


def test_transcript_list_checks_the_run_without_loading_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = services.runs.create(make_run())

    def no_full_read(run_id: str) -> None:
        raise AssertionError("the whole run (with its definition snapshot) was read")

    monkeypatch.setattr(services.runs, "get", no_full_read)

    listed = call_http("transcripts_list", route_params={"runId": run.id})
    assert listed.status_code == 200, listed.get_body()
    for unknown in ("nope", "a/b", "a#b"):
        assert_problem(call_http("transcripts_list", route_params={"runId": unknown}), 404)
