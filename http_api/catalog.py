"""GET /api/models: the catalog with availability."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from evalruns.lazy import lazy
from http_api.params import AVAILABLE_ONLY
from http_api.problems import api_errors
from http_api.requests import json_response
from http_api.routes import http

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
container = lazy("evalruns.services.container")
catalog = lazy("evalruns.services.catalog")


@http(bp)
@api_errors
def models_list(req: func.HttpRequest) -> func.HttpResponse:
    listings = catalog.list_models(container.get_services(), AVAILABLE_ONLY.read(req) or False)
    return json_response({"items": [listing.to_json_dict() for listing in listings]})
