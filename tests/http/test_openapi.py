"""The OpenAPI document matches the registered routes and carries the request schemas."""

from __future__ import annotations

import azure.functions as func

from tests.support.functions import call_http, json_body, registered_functions

ANONYMOUS_ROUTES = {
    ("get", "/api/openapi.json"),
    ("get", "/api/health"),
    ("get", "/api/health/providers"),
}


def registered_routes(*, anonymous_only: bool = False) -> set[tuple[str, str]]:
    routes = set()
    for function in registered_functions().values():
        for binding in function.get_bindings():
            if binding.type != "httpTrigger":
                continue
            if anonymous_only and binding.auth_level != func.AuthLevel.ANONYMOUS:
                continue
            for method in binding.methods:
                routes.add((str(method).split(".")[-1].lower(), f"/api/{binding.route}"))
    return routes


def test_document_lists_exactly_the_registered_routes() -> None:
    document = json_body(call_http("openapi_document"))
    assert document["openapi"].startswith("3.1")
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert documented == registered_routes()


def test_schemas_come_from_the_validating_models() -> None:
    schemas = json_body(call_http("openapi_document"))["components"]["schemas"]
    run_request = schemas["RunRequest"]
    assert set(run_request["required"]) == {"definitionId", "models"}
    assert run_request["properties"]["samplePercentage"]["maximum"] == 100
    assert "template" in schemas["DefinitionInput"]["properties"]
    assert "Problem" in schemas


def test_only_the_anonymous_routes_waive_the_function_key() -> None:
    document = json_body(call_http("openapi_document"))
    assert document["security"] == [{"functionKey": []}]
    waived = {
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == []
    }
    assert waived == registered_routes(anonymous_only=True) == ANONYMOUS_ROUTES
    keyed = [
        operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if (method, path) not in ANONYMOUS_ROUTES
    ]
    assert all("security" not in operation for operation in keyed)
    assert all("anonymous" not in operation["summary"] for operation in keyed)
