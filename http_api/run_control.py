"""Run control: pause, resume, cancel and re-run (DESIGN.md section 4)."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import azure.durable_functions as df
import azure.functions as func

from evalruns.lazy import lazy
from http_api.orchestrations import DurableOrchestrations, start_run
from http_api.problems import api_errors
from http_api.requests import json_response, parse_body
from http_api.routes import http

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
container = lazy("evalruns.services.container")
control = lazy("evalruns.services.control")
models = lazy("evalruns.domain.runs")
# How long a cancel waits for the orchestration to stop before its last look for batches to
# terminate; None: the library's `TERMINATE_WAIT_SECONDS`. Tests on the stepped engine set 0:
# nothing stops there until the test steps it.
CANCEL_SETTLE_SECONDS: float | None = None


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_pause(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    orchestrations = DurableOrchestrations(client)
    run_id = req.route_params["runId"]
    run = await control.pause_run(container.get_services(), orchestrations, run_id)
    return json_response(run.to_json_dict(), HTTPStatus.ACCEPTED)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_resume(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    orchestrations = DurableOrchestrations(client)
    run_id = req.route_params["runId"]
    run = await control.resume_run(container.get_services(), orchestrations, run_id)
    return json_response(run.to_json_dict(), HTTPStatus.ACCEPTED)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_cancel(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    settle = CANCEL_SETTLE_SECONDS
    run = await control.cancel_run(
        container.get_services(),
        DurableOrchestrations(client),
        req.route_params["runId"],
        settle_seconds=control.TERMINATE_WAIT_SECONDS if settle is None else settle,
    )
    return json_response(run.to_json_dict(), HTTPStatus.ACCEPTED)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_rerun(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    services = container.get_services()
    request = parse_body(req, models.RerunRequest)
    run_id = req.route_params["runId"]
    child = await asyncio.to_thread(control.create_rerun, services, run_id, request)
    return await start_run(services, client, req, child)
