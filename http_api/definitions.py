"""Definitions and their scenarios."""

from __future__ import annotations

from http import HTTPStatus

import azure.durable_functions as df
import azure.functions as func

from evalruns.domain.definitions import DefinitionInput
from evalruns.services import get_services
from evalruns.services.access import touch_definition
from evalruns.services.definitions import (
    create_definition,
    get_definition,
    list_definitions,
    list_scenarios,
)
from http_api.params import page
from http_api.problems import api_errors
from http_api.requests import json_response, page_response, parse_body
from http_api.routes import http

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@http(bp)
@api_errors
def definitions_create(req: func.HttpRequest) -> func.HttpResponse:
    definition = create_definition(get_services(), parse_body(req, DefinitionInput))
    return json_response(
        definition.to_json_dict(),
        HTTPStatus.CREATED,
        headers={"Location": f"/api/definitions/{definition.id}"},
    )


@http(bp)
@api_errors
def definitions_list(req: func.HttpRequest) -> func.HttpResponse:
    return page_response(list_definitions(get_services(), *page(req)))


@http(bp)
@api_errors
def definitions_get(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    definition = get_definition(services, req.route_params["definitionId"])
    touch_definition(services, definition)
    return json_response(definition.to_json_dict())


@http(bp)
@api_errors
def definitions_scenarios(req: func.HttpRequest) -> func.HttpResponse:
    scenarios = list_scenarios(get_services(), req.route_params["definitionId"], *page(req))
    return json_response(
        {
            "items": [scenario.to_json_dict() for scenario in scenarios.items],
            "total": scenarios.total,
            "nextCursor": scenarios.next_cursor,
        }
    )
