"""GET /api/openapi.json: an OpenAPI 3.1 document built from the route table (http_api.routes)
and the pydantic models that validate requests, so it says what the API does."""

from __future__ import annotations

from functools import cache
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from evalruns.lazy import lazy
from http_api.params import CURSOR
from http_api.problems import api_errors
from http_api.requests import json_response
from http_api.routes import ID_SCHEMA, ROUTES, Route, http, model

container = lazy("evalruns.services.container")
catalog = lazy("evalruns.services.catalog")
json_schema = lazy("pydantic.json_schema")

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
LOCATION = {"Location": {"schema": {"type": "string"}, "description": "where to look next"}}
RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "string"}, "description": "seconds to wait before asking"}
}
ERROR_TEXTS = {
    400: "the request is not valid: `detail` and `errors` say what to change",
    404: "no such resource",
    409: "not allowed in the resource's current status (`currentStatus`)",
    503: "storage or the Durable runtime cannot be reached; try again after `Retry-After`",
}


@http(bp)
@api_errors
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(build_document())


@cache
def build_document() -> dict[str, Any]:
    refs = {ref for route in ROUTES for ref in (route.response, route.body, route.accepted) if ref}
    models = sorted((model(ref) for ref in refs), key=lambda m: m.__name__)
    _, schemas = json_schema.models_json_schema(
        [(m, "validation") for m in models],
        ref_template="#/components/schemas/{model}",
        by_alias=True,
    )
    components: dict[str, Any] = schemas.get("$defs", {})
    components["Problem"] = PROBLEM_SCHEMA
    _name_the_models(components)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "evalruns",
            "version": "1.0.0",
            "description": "LLM evaluation runs on Azure Durable Functions.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionCode": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
        "security": [{"functionKey": []}, {"functionCode": []}],
    }


def _name_the_models(components: dict[str, Any]) -> None:
    """A run names models this deployment can run: each model id, with or without a version
    (`id@version`) and its provider (`provider:id`), listed once."""
    references = sorted(
        {
            f"{prefix}{listing.id}{suffix}"
            for listing in catalog.list_models(container.get_services(), available_only=True)
            for prefix in ("", f"{listing.provider}:")
            for suffix in ("", *(f"@{version}" for version in listing.versions))
        }
    )
    names = {"type": "string", "enum": references}
    components["RunRequest"]["properties"]["models"]["items"] = names
    for option in components["RerunRequest"]["properties"]["models"]["anyOf"]:
        if option.get("type") == "array":
            option["items"] = names


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": dict(ID_SCHEMA)}
        for name in _path_names(route.path)
    ] + [
        {
            "name": p.name,
            "in": "query",
            "description": f"{p.description} (an empty value counts as left out)",
            # The host drops empty query values before the function sees them.
            "schema": {"anyOf": [dict(p.schema), {"type": "string", "maxLength": 0}]},
        }
        for p in route.query
    ]
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.function,
        "parameters": parameters,
        "responses": _responses(route),
    }
    if route.anonymous:
        operation["security"] = []
    if route.body is not None:
        body = model(route.body)
        operation["requestBody"] = {
            # A body whose every field has a default may be left out (`{}` is assumed).
            "required": any(f.is_required() for f in body.model_fields.values()),
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    return operation


def _responses(route: Route) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": route.summary}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _body_schema(route)}}
    if route.location:
        ok["headers"] = LOCATION
    responses: dict[str, Any] = {str(route.ok): ok}
    if route.accepted is not None:
        responses["202"] = {
            "description": "going on in the background: poll `Location`",
            "headers": LOCATION | RETRY_AFTER,
            "content": {"application/json": {"schema": _ref(route.accepted)}},
        }
    for status in route.errors:
        responses[str(status)] = {"description": ERROR_TEXTS[status], "content": PROBLEM}
    if not route.anonymous:
        responses["401"] = {"description": "the function key is missing or wrong"}
    if not route.stateless:
        responses["503"] = {
            "description": ERROR_TEXTS[503],
            "headers": RETRY_AFTER,
            "content": PROBLEM,
        }
    return responses


def _body_schema(route: Route) -> dict[str, Any]:
    assert route.response is not None
    ref = _ref(route.response)
    if not route.listing:
        return ref
    return {
        "type": "object",
        "required": ["items", "nextCursor"] if CURSOR in route.query else ["items"],
        "properties": {
            "items": {"type": "array", "items": ref},
            "nextCursor": {"type": ["string", "null"]},
            "total": {"type": "integer", "description": "all items (scenarios only)"},
        },
    }


def _ref(model_ref: str) -> dict[str, str]:
    """The schema reference of a model (its "module:Name" or its name)."""
    return {"$ref": f"#/components/schemas/{model_ref.rpartition(':')[2]}"}


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
            },
        },
        "currentStatus": {"type": "string", "description": "the resource's status (409)"},
        "incident": {"type": "string", "description": "quote it when reporting a fault"},
    },
}
