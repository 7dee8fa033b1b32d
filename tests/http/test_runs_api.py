"""A run started over the HTTP API, executed by the orchestrators on the in-process Durable
engine (real RPC endpoints, real replay), read back, listed and exported over the API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from devhost.durable import DurableEngine
from evalruns.services import Services
from tests.http.test_definitions_api import assert_problem, create, example
from tests.support.functions import call_http, json_body

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def start(engine: DurableEngine, body: dict[str, Any]) -> Any:
    return call_http("runs_create", "POST", "/api/runs", body=body, client=engine.client_binding())


def get_run(engine: DurableEngine, run_id: str) -> dict[str, Any]:
    response = call_http("runs_get", route_params={"runId": run_id}, client=engine.client_binding())
    assert response.status_code == 200, response.get_body()
    run: dict[str, Any] = json_body(response)
    return run


def test_run_over_the_api_from_start_to_export(
    configure: Callable[..., Services],
    engine: DurableEngine,
) -> None:
    # Rate limits make lanes wait on timers, so the engine's clock moves (and the run ticks)
    # while jobs remain: the run is seen RUNNING with progress part way.
    configure(provider_caps={"mock": 2}, mock_rate_limit_rate=0.5, mock_seed=3, max_attempts=20)
    definition = create(example("shift_policy"))
    response = start(
        engine,
        {
            "definitionId": definition["id"],
            "models": ["mock-small@mock-small-20250101", "mock-large"],
            "samplesPerScenario": 2,
            "sampleSeed": 42,
            "name": "api run",
        },
    )
    assert response.status_code == 202, response.get_body()
    body = json_body(response)
    run = body["run"]
    assert response.headers["Location"] == f"/api/runs/{run['id']}"
    assert run["status"] == "PENDING" and run["name"] == "api run"
    assert run["config"]["sampleSeed"] == 42
    assert [m["version"] for m in run["config"]["models"]] == [
        "mock-small-20250101",
        "mock-large-20250301",
    ]
    assert run["progress"]["total"] == 36
    assert run["id"] in body["statusQueryGetUri"]
    assert {"sendEventPostUri", "terminatePostUri"} <= body.keys()

    # Part way: the run reads RUNNING with the orchestration's live progress.
    engine.run_until(
        lambda: (
            engine.status(run["id"]) is not None
            and isinstance(engine.status(run["id"]).custom_status, dict)
            and engine.status(run["id"]).custom_status["completed"] >= 8
        )
    )
    live = get_run(engine, run["id"])
    assert live["status"] == "RUNNING"
    assert 8 <= live["progress"]["completed"] < 36
    assert live["progress"]["byModel"]["mock-small"]["total"] == 18

    # The Durable extension's own status endpoint shows the same progress. The link names the
    # Functions host; in process, the webhooks are served by the engine's server instead.
    hook_base = json.loads(engine.client_binding())["baseUrl"]
    hook_path = body["statusQueryGetUri"].split("/runtime/webhooks/durabletask", 1)[1]
    webhook = httpx.get(hook_base + hook_path)
    assert webhook.status_code == 202
    assert webhook.json()["customStatus"]["completed"] == live["progress"]["completed"]

    engine.run_until_complete(run["id"])
    done = get_run(engine, run["id"])
    assert done["status"] == "COMPLETED"
    assert done["progress"]["completed"] == 36 and done["progress"]["percent"] == 100
    assert done["completedAt"] >= done["startedAt"] >= done["createdAt"]
    assert done["costUsd"] > 0

    listed = json_body(call_http("runs_list", params={"status": "COMPLETED"}))["items"]
    assert [item["id"] for item in listed] == [run["id"]]
    assert json_body(call_http("runs_list", params={"status": "RUNNING"}))["items"] == []
    by_definition = json_body(call_http("runs_list", params={"definitionId": definition["id"]}))
    assert [item["id"] for item in by_definition["items"]] == [run["id"]]
    assert "definition" not in listed[0]

    # Transcripts: paged, filtered, and one whole conversation.
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "10", "modelId": "mock-small", **({"cursor": cursor} if cursor else {})}
        page = json_body(
            call_http("transcripts_list", params=params, route_params={"runId": run["id"]})
        )
        seen.extend(page["items"])
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 18 and {item["modelId"] for item in seen} == {"mock-small"}
    assert len({item["id"] for item in seen}) == 18
    failed = json_body(
        call_http(
            "transcripts_list", params={"status": "FAILED"}, route_params={"runId": run["id"]}
        )
    )
    assert failed["items"] == []
    one = json_body(
        call_http(
            "transcripts_get", route_params={"runId": run["id"], "transcriptId": seen[0]["id"]}
        )
    )
    assert [turn["role"] for turn in one["turns"]] == ["user", "assistant"]
    assert one["turns"][-1]["content"].startswith("Rating: ")
    assert one["decisionCode"] == one["turns"][-1]["content"][8]
    assert set(one["dimensions"]) == {"action", "staff"}
    assert one["error"] is None

    # Export: a SAS link, and the 302 download.
    exported = call_http(
        "exports_create",
        "POST",
        route_params={"runId": run["id"]},
        body={"format": "csv"},
        client=engine.client_binding(),
    )
    assert exported.status_code == 201
    link = json_body(exported)
    assert link["rows"] == 36 and link["filename"].startswith(f"summary_{run['id'][:8]}_")
    download = httpx.get(link["url"])
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{link["filename"]}"'
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Scenario", "AI Model Name", "action", "staff"]
    assert len(rows) == 37
    assert [row[1] for row in rows[1:]] == ["mock-large"] * 18 + ["mock-small"] * 18

    redirect = call_http(
        "exports_download", route_params={"runId": run["id"]}, client=engine.client_binding()
    )
    assert redirect.status_code == 302
    assert httpx.get(redirect.headers["Location"]).content == download.content


def test_export_and_transcript_errors(services: Services) -> None:
    assert_problem(call_http("exports_create", "POST", route_params={"runId": "nope"}), 404)
    assert_problem(call_http("exports_download", route_params={"runId": "nope"}), 404)
    assert_problem(call_http("transcripts_list", route_params={"runId": "nope"}), 404)
    assert_problem(
        call_http("transcripts_get", route_params={"runId": "nope", "transcriptId": "x"}), 404
    )
    assert_problem(
        call_http("exports_create", "POST", route_params={"runId": "x"}, body={"format": "xlsx"}),
        400,
        "format",
    )


def test_unreachable_orchestration_service_is_503_and_the_run_is_failed(
    services: Services,
) -> None:
    definition = create(example("single_prompt"))
    response = call_http(
        "runs_create",
        "POST",
        "/api/runs",
        body={"definitionId": definition["id"], "models": ["mock-small"]},
    )
    problem = assert_problem(response, 503, "could not be started")
    assert "Traceback" not in problem["detail"]
    runs = json_body(call_http("runs_list"))["items"]
    assert [run["status"] for run in runs] == ["FAILED"]
