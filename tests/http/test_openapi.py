"""The OpenAPI document matches the registered routes and carries the request schemas."""

from __future__ import annotations

from tests.support.functions import call_http, json_body, registered_functions


def registered_routes() -> set[tuple[str, str]]:
    routes = set()
    for function in registered_functions().values():
        for binding in function.get_bindings():
            if binding.type == "httpTrigger":
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
