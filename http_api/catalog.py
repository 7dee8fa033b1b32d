"""GET /api/models: the catalog with availability."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from evalruns.services import get_services
from evalruns.services.catalog import list_models
from http_api.problems import api_errors
from http_api.requests import json_response, query_bool

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@bp.route(route="models", methods=["GET"])
@api_errors
def models_list(req: func.HttpRequest) -> func.HttpResponse:
    listings = list_models(get_services(), query_bool(req, "availableOnly", default=False))
    return json_response({"items": [listing.to_json_dict() for listing in listings]})
