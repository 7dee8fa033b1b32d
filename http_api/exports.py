"""CSV exports: a fresh read-only SAS link per request."""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal

import azure.durable_functions as df
import azure.functions as func

from evalruns.domain.base import ApiModel, utcnow
from evalruns.exports.service import export_run
from evalruns.services import get_services
from http_api.problems import api_errors
from http_api.requests import json_response, parse_body

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


class ExportRequest(ApiModel):
    format: Literal["csv"] = "csv"


@bp.route(route="runs/{runId}/exports", methods=["POST"])
@api_errors
def exports_create(req: func.HttpRequest) -> func.HttpResponse:
    parse_body(req, ExportRequest)
    link = export_run(get_services(), req.route_params["runId"], utcnow())
    return json_response(link.to_json_dict(), HTTPStatus.CREATED)


@bp.route(route="runs/{runId}/export.csv", methods=["GET"])
@api_errors
def exports_download(req: func.HttpRequest) -> func.HttpResponse:
    link = export_run(get_services(), req.route_params["runId"], utcnow())
    return func.HttpResponse(
        status_code=int(HTTPStatus.FOUND),
        headers={"Location": link.url, "Cache-Control": "no-store"},
    )
