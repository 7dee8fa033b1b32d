"""Definitions, scenarios and models over the registered functions, on real Azurite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalruns.domain.definitions import DefinitionInput
from evalruns.services import Services, reset_services
from evalruns.storage.paging import encode_cursor
from tests.support.functions import call_http, json_body

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def create(definition: dict[str, Any]) -> dict[str, Any]:
    response = call_http("definitions_create", "POST", "/api/definitions", body=definition)
    assert response.status_code == 201, response.get_body()
    created: dict[str, Any] = json_body(response)
    return created


def assert_problem(response: Any, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    assert response.mimetype == "application/problem+json"
    problem: dict[str, Any] = json_body(response)
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= problem.keys()
    text = json.dumps(problem).lower()
    for fragment in fragments:
        assert fragment.lower() in text, (fragment, problem)
    return problem


def test_create_and_get_definition(services: Services) -> None:
    created = create(example("library_funding"))
    assert created["scenarioCount"] == 125
    assert created["name"] == "Library funding vote"
    assert created["createdAt"].endswith("Z")
    response = call_http(
        "definitions_get",
        path=f"/api/definitions/{created['id']}",
        route_params={"definitionId": created["id"]},
    )
    assert response.status_code == 200
    assert json_body(response) == created


def test_values_shorthand_expands_to_levels(services: Services) -> None:
    created = create(example("shift_policy"))
    action = created["dimensions"][0]
    assert action["levels"][1] == {
        "score": 2,
        "label": "cut hourly wages",
        "options": ["cut hourly wages"],
    }
    assert created["scenarioCount"] == 9


def test_definition_list_is_newest_first_with_cursor(services: Services) -> None:
    ids = [create({**example("single_prompt"), "name": f"d{index}"})["id"] for index in range(3)]
    first = json_body(call_http("definitions_list", params={"limit": "2"}))
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    second = json_body(
        call_http("definitions_list", params={"limit": "2", "cursor": first["nextCursor"]})
    )
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert second["nextCursor"] is None


def test_scenarios_page_through_the_expansion(services: Services) -> None:
    created = create(example("library_funding"))
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
        page = json_body(
            call_http(
                "definitions_scenarios",
                params=params,
                route_params={"definitionId": created["id"]},
            )
        )
        assert page["total"] == 125
        seen.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert [item["id"] for item in seen] == [f"s{n:06d}" for n in range(1, 126)]
    first = seen[0]
    assert first["dimensions"] == {"Reliance": 1, "Traffic": 1, "BusinessView": 1}
    assert "[" not in first["prompt"]
    assert first["preamble"].startswith("You are a thoughtful advisor")


def test_single_prompt_definition_has_one_scenario(services: Services) -> None:
    created = create(example("single_prompt"))
    page = json_body(
        call_http("definitions_scenarios", route_params={"definitionId": created["id"]})
    )
    assert page["total"] == 1
    assert page["items"][0]["prompt"] == example("single_prompt")["template"]


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"name": "x", "template": "   "}, ["template", "empty"]),
        (
            {
                "name": "x",
                "template": "[A] [a]",
                "dimensions": [{"name": "A", "values": ["1"]}, {"name": "a", "values": ["2"]}],
            },
            ["defined twice"],
        ),
        ({"name": "x", "template": "Hello [Missing]"}, ["[Missing]", "no dimension"]),
        ({"name": "x", "template": "[A]", "dimensions": [{"name": "A", "levels": []}]}, ["levels"]),
        (
            {
                "name": "x",
                "template": "[A]",
                "dimensions": [
                    {"name": "A", "levels": [{"score": 1, "label": "l", "options": []}]}
                ],
            },
            ["options"],
        ),
        ({"template": "x"}, ["name"]),
        ({"name": "x", "template": "x", "dimensions": "nope"}, ["dimensions"]),
    ],
)
def test_invalid_definitions_are_400(
    services: Services, body: dict[str, Any], fragments: list[str]
) -> None:
    response = call_http("definitions_create", "POST", "/api/definitions", body=body)
    problem = assert_problem(response, 400, *fragments)
    assert problem["errors"], problem


def test_definition_too_large_to_store_is_a_400_not_a_500(services: Services) -> None:
    # Two dimensions of 5 levels x 50 options x 2,000 characters: each field is within the
    # model's limits, but the whole is about 2 MB of UTF-16, over a table entity's 1 MiB.
    option = "o" * 2000
    levels = [
        {"score": score, "label": f"level {score}", "options": [option] * 50}
        for score in range(1, 6)
    ]
    body = {
        "name": "too large",
        "template": "[A] [B]",
        "dimensions": [{"name": "A", "levels": levels}, {"name": "B", "levels": levels}],
    }
    DefinitionInput.model_validate(body)  # valid input: only its size is refused

    response = call_http("definitions_create", "POST", "/api/definitions", body=body)

    problem = assert_problem(response, 400, "definition is too large to store", "split it")
    assert "incident" not in problem
    assert json_body(call_http("definitions_list"))["items"] == []


def test_a_server_misconfiguration_is_a_500_not_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    # A setting out of range fails pydantic validation while the services are built: that is
    # our fault, not the request's, and must not come back as a 400 about the body.
    monkeypatch.setenv("EVALRUNS_MAX_ATTEMPTS", "0")
    reset_services(None)
    try:
        response = call_http("definitions_create", "POST", "/api/definitions", body={})
    finally:
        reset_services(None)

    problem = assert_problem(response, 500, "incident")
    assert problem["incident"] in problem["detail"]
    assert "errors" not in problem and "body" not in problem["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
def test_body_that_is_not_a_json_object_is_400(services: Services, raw: bytes) -> None:
    response = call_http("definitions_create", "POST", "/api/definitions", raw_body=raw)
    assert_problem(response, 400, "json")


def test_unknown_definition_is_404(services: Services) -> None:
    for name in ("definitions_get", "definitions_scenarios"):
        response = call_http(name, route_params={"definitionId": "nope"})
        assert_problem(response, 404, "nope")


@pytest.mark.parametrize("bad_id", ["a/b", "a#b", "a?b", "a\\b", "a\x01b"])
def test_ids_with_forbidden_key_characters_are_404(services: Services, bad_id: str) -> None:
    response = call_http("definitions_get", route_params={"definitionId": bad_id})
    assert_problem(response, 404)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"limit": "x"}, "limit"), ({"limit": "0"}, "limit"), ({"cursor": "!!!"}, "cursor")],
)
def test_bad_paging_parameters_are_400(
    services: Services, params: dict[str, str], fragment: str
) -> None:
    assert_problem(call_http("definitions_list", params=params), 400, fragment)


@pytest.mark.parametrize("offset", [126, 10**6, -1, "5"])
def test_scenario_cursor_outside_the_expansion_is_400(services: Services, offset: object) -> None:
    created = create(example("library_funding"))
    response = call_http(
        "definitions_scenarios",
        params={"cursor": str(encode_cursor({"offset": offset}))},
        route_params={"definitionId": created["id"]},
    )
    problem = assert_problem(response, 400, "cursor")
    assert problem["errors"] == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]


def test_scenario_cursor_at_the_end_gives_an_empty_last_page(services: Services) -> None:
    created = create(example("library_funding"))
    page = json_body(
        call_http(
            "definitions_scenarios",
            params={"cursor": str(encode_cursor({"offset": 125}))},
            route_params={"definitionId": created["id"]},
        )
    )
    assert page == {"items": [], "total": 125, "nextCursor": None}


def test_limit_is_capped_at_100(services: Services) -> None:
    created = create(example("library_funding"))
    page = json_body(
        call_http(
            "definitions_scenarios",
            params={"limit": "500"},
            route_params={"definitionId": created["id"]},
        )
    )
    assert len(page["items"]) == 100


def test_models_list_marks_availability(services: Services) -> None:
    everything = json_body(call_http("models_list"))["items"]
    available = json_body(call_http("models_list", params={"availableOnly": "true"}))["items"]
    assert {"mock-small", "mock-large"} <= {item["id"] for item in available}
    assert all(item["isAvailable"] for item in available)
    assert len(everything) > len(available)  # real providers have no keys in tests
    sample = next(item for item in everything if item["id"] == "mock-small")
    assert set(sample) >= {
        "id",
        "provider",
        "displayName",
        "versions",
        "defaultVersion",
        "isAvailable",
        "costInputPerMillion",
        "costOutputPerMillion",
    }
    assert_problem(call_http("models_list", params={"availableOnly": "maybe"}), 400)
