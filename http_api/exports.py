"""CSV exports: a link when the file is ready within a few seconds, else 202 and Durable work."""

from __future__ import annotations

from http import HTTPStatus

import azure.durable_functions as df
import azure.functions as func

from evalruns import names
from evalruns.domain.base import utcnow
from evalruns.exports.background import (
    ExportRequest,
    ExportStatus,
    Instance,
    export_status,
    request_export,
)
from evalruns.exports.jobs import ExportJob
from evalruns.exports.service import ExportLink
from evalruns.services import get_services
from http_api.problems import api_errors
from http_api.requests import json_response, parse_body
from http_api.routes import http

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
# How long a client told 202 should wait before it asks again.
RETRY_AFTER_SECONDS = 2


class DurableExports:
    """`evalruns.exports.background.ExportOrchestrations` over the Durable client."""

    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self._client = client

    async def start(self, instance_id: str, job: ExportJob) -> None:
        await self._client.start_new(names.EXPORT_ORCHESTRATOR, instance_id, job.to_json_dict())

    async def instance(self, instance_id: str) -> Instance | None:
        status = await self._client.get_status(instance_id)
        if not status or status.runtime_status is None:
            return None
        return Instance(
            runtime_status=status.runtime_status.value,
            custom_status=status.custom_status,
            output=status.output,
            last_updated=status.last_updated_time,
        )


def _answer(run_id: str, outcome: ExportLink | ExportStatus) -> func.HttpResponse:
    if isinstance(outcome, ExportLink):
        return json_response(outcome.to_json_dict(), HTTPStatus.CREATED)
    return json_response(
        outcome.to_json_dict(),
        HTTPStatus.ACCEPTED,
        headers={
            "Location": f"/api/runs/{run_id}/exports/{outcome.export_id}",
            "Retry-After": str(RETRY_AFTER_SECONDS),
        },
    )


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def exports_create(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    parse_body(req, ExportRequest)
    run_id = req.route_params["runId"]
    durable = DurableExports(client)
    return _answer(run_id, await request_export(get_services(), durable, run_id, utcnow()))


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def exports_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    run_id, export_id = req.route_params["runId"], req.route_params["exportId"]
    durable = DurableExports(client)
    status = await export_status(get_services(), durable, run_id, export_id, utcnow())
    return json_response(status.to_json_dict())


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def exports_download(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """302 to the file; for an export that goes on in the background, the 202 of POST: the
    same URL redirects once it has finished."""
    run_id = req.route_params["runId"]
    durable = DurableExports(client)
    outcome = await request_export(get_services(), durable, run_id, utcnow())
    if isinstance(outcome, ExportStatus):
        return _answer(run_id, outcome)
    return func.HttpResponse(
        status_code=int(HTTPStatus.FOUND),
        headers={"Location": outcome.url, "Cache-Control": "no-store"},
    )
