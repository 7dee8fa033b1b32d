"""CSV exports: a link when the file is ready within a few seconds, else 202 and Durable work."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from evalruns import names
from evalruns.lazy import lazy
from http_api.problems import api_errors
from http_api.requests import json_response, parse_body
from http_api.routes import http

if TYPE_CHECKING:
    from evalruns.exports.background import ExportStatus, Instance
    from evalruns.exports.jobs import ExportJob
    from evalruns.exports.service import ExportLink

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
container = lazy("evalruns.services.container")
base = lazy("evalruns.domain.base")
background = lazy("evalruns.exports.background")
service = lazy("evalruns.exports.service")
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
        return background.Instance(
            runtime_status=status.runtime_status.value,
            custom_status=status.custom_status,
            output=status.output,
            last_updated=status.last_updated_time,
        )


def _answer(run_id: str, outcome: ExportLink | ExportStatus) -> func.HttpResponse:
    if isinstance(outcome, service.ExportLink):
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
    parse_body(req, background.ExportRequest)
    run_id = req.route_params["runId"]
    durable = DurableExports(client)
    outcome = await background.request_export(
        container.get_services(), durable, run_id, base.utcnow()
    )
    return _answer(run_id, outcome)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def exports_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    run_id, export_id = req.route_params["runId"], req.route_params["exportId"]
    durable = DurableExports(client)
    status = await background.export_status(
        container.get_services(), durable, run_id, export_id, base.utcnow()
    )
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
    outcome = await background.request_export(
        container.get_services(), durable, run_id, base.utcnow()
    )
    if isinstance(outcome, background.ExportStatus):
        return _answer(run_id, outcome)
    return func.HttpResponse(
        status_code=int(HTTPStatus.FOUND),
        headers={"Location": outcome.url, "Cache-Control": "no-store"},
    )
