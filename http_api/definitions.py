"""Definitions and their scenarios."""

from __future__ import annotations

from http import HTTPStatus

import azure.durable_functions as df
import azure.functions as func

from evalruns.lazy import lazy
from http_api.params import page
from http_api.problems import api_errors
from http_api.requests import json_response, page_response, parse_body
from http_api.routes import http

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
container = lazy("evalruns.services.container")
access = lazy("evalruns.services.access")
definitions = lazy("evalruns.services.definitions")
models = lazy("evalruns.domain.definitions")


@http(bp)
@api_errors
def definitions_create(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()  # first: a misconfiguration is a 500, not a 400
    body = parse_body(req, models.DefinitionInput)
    definition = definitions.create_definition(services, body)
    return json_response(
        definition.to_json_dict(),
        HTTPStatus.CREATED,
        headers={"Location": f"/api/definitions/{definition.id}"},
    )


@http(bp)
@api_errors
def definitions_list(req: func.HttpRequest) -> func.HttpResponse:
    return page_response(definitions.list_definitions(container.get_services(), *page(req)))


@http(bp)
@api_errors
def definitions_get(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()
    definition = definitions.get_definition(services, req.route_params["definitionId"])
    access.touch_definition(services, definition)
    return json_response(definition.to_json_dict())


@http(bp)
@api_errors
def definitions_scenarios(req: func.HttpRequest) -> func.HttpResponse:
    scenarios = definitions.list_scenarios(
        container.get_services(), req.route_params["definitionId"], *page(req)
    )
    return json_response(
        {
            "items": [scenario.to_json_dict() for scenario in scenarios.items],
            "total": scenarios.total,
            "nextCursor": scenarios.next_cursor,
        }
    )
