"""The OpenAPI document and the registered functions come from one route table and cannot
drift: every route, typed parameter, body and answer is in the document, and the API reads
query parameters exactly as the document types them."""

from __future__ import annotations

from typing import Any

import azure.functions as func
import pytest

from http_api.routes import ROUTES
from tests.http.test_definitions_api import assert_problem
from tests.support.functions import call_http, json_body, registered_functions

ANONYMOUS_ROUTES = {
    ("get", "/api/openapi.json"),
    ("get", "/api/health"),
    ("get", "/api/health/providers"),
}


def document() -> dict[str, Any]:
    body: dict[str, Any] = json_body(call_http("openapi_document"))
    return body


def registered_routes(*, anonymous_only: bool = False) -> dict[tuple[str, str], str]:
    """(method, path) → function name, for every registered HTTP function."""
    routes = {}
    for name, function in registered_functions().items():
        for binding in function.get_bindings():
            if binding.type != "httpTrigger":
                continue
            if anonymous_only and binding.auth_level != func.AuthLevel.ANONYMOUS:
                continue
            for method in binding.methods:
                routes[(str(method).split(".")[-1].lower(), f"/api/{binding.route}")] = name
    return routes


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, by_method in doc["paths"].items()
        for method, operation in by_method.items()
    }


def test_the_document_and_the_registrations_are_the_same_table() -> None:
    documented = {key: op["operationId"] for key, op in operations(document()).items()}
    assert documented == registered_routes()
    assert len(ROUTES) == len(documented)  # no route twice


def test_schemas_come_from_the_validating_models() -> None:
    schemas = document()["components"]["schemas"]
    run_request = schemas["RunRequest"]
    assert set(run_request["required"]) == {"definitionId", "models"}
    assert run_request["properties"]["samplePercentage"]["maximum"] == 100
    models = run_request["properties"]["models"]
    assert models["uniqueItems"] is True
    assert {"mock-small", "mock:mock-small", "mock-small@mock-small-20250101"} <= set(
        models["items"]["enum"]
    )
    assert "template" in schemas["DefinitionInput"]["properties"]
    assert {"currentStatus", "incident", "errors"} <= schemas["Problem"]["properties"].keys()
    # Starting a run answers the run and its orchestration's management URLs.
    started = schemas["RunStarted"]
    assert set(started["required"]) >= {"run", "statusQueryGetUri", "terminatePostUri"}


def test_parameters_are_typed_with_their_bounds_and_values() -> None:
    runs_list = operations(document())[("get", "/api/runs")]
    by_name = {p["name"]: p["schema"]["anyOf"] for p in runs_list["parameters"]}
    empty = {"type": "string", "maxLength": 0}  # the host drops an empty value
    assert by_name["limit"] == [{"type": "integer", "minimum": 1}, empty]
    assert "PENDING" in by_name["status"][0]["enum"]
    models = operations(document())[("get", "/api/models")]
    assert models["parameters"][0]["schema"]["anyOf"][0] == {"type": "boolean"}
    run_get = operations(document())[("get", "/api/runs/{runId}")]
    assert (
        run_get["parameters"][0]["in"] == "path" and "pattern" in run_get["parameters"][0]["schema"]
    )


def test_every_answer_is_documented_with_its_headers() -> None:
    ops = operations(document())
    started = ops[("post", "/api/runs")]["responses"]
    assert "Location" in started["202"]["headers"]
    assert started["202"]["content"]["application/json"]["schema"]["$ref"].endswith("RunStarted")
    assert {"400", "401", "404", "503"} <= started.keys()
    assert "Retry-After" in started["503"]["headers"]
    export = ops[("post", "/api/runs/{runId}/exports")]["responses"]
    assert {"201", "202"} <= export.keys() and "Location" in export["202"]["headers"]
    assert "302" in ops[("get", "/api/runs/{runId}/export.csv")]["responses"]
    assert "401" not in ops[("get", "/api/health")]["responses"]  # anonymous
    assert "503" not in ops[("get", "/api/openapi.json")]["responses"]  # reads no storage


def test_only_the_anonymous_routes_waive_the_function_key() -> None:
    doc = document()
    assert doc["security"] == [{"functionKey": []}, {"functionCode": []}]
    waived = {key for key, operation in operations(doc).items() if operation.get("security") == []}
    assert waived == set(registered_routes(anonymous_only=True)) == ANONYMOUS_ROUTES


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("runs_list", {"limit": "ten"}, "whole number"),
        ("runs_list", {"limit": "0"}, "at least 1"),
        ("runs_list", {"status": "running"}, "one of PENDING"),
        ("models_list", {"availableOnly": "yes"}, "true or false"),
        ("definitions_list", {"limit": "9" * 40}, "whole number"),
    ],
)
def test_query_values_the_document_forbids_are_refused(
    services: object, name: str, params: dict[str, str], fragment: str
) -> None:
    assert_problem(call_http(name, params=params), 400, fragment)


def test_query_values_the_document_allows_are_accepted(services: object) -> None:
    assert call_http("runs_list", params={"limit": "500", "status": "PENDING"}).status_code == 200
    assert call_http("models_list", params={"availableOnly": "true"}).status_code == 200
    empty = {"cursor": "", "definitionId": "", "limit": "", "status": ""}  # as if left out
    assert call_http("runs_list", params=empty).status_code == 200
