"""Run control: pause, resume, cancel and re-run (DESIGN.md section 4)."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import azure.durable_functions as df
import azure.functions as func

from evalruns.domain.runs import RerunRequest
from evalruns.services import get_services
from evalruns.services.control import (
    TERMINATE_WAIT_SECONDS,
    cancel_run,
    create_rerun,
    pause_run,
    resume_run,
)
from http_api.orchestrations import DurableOrchestrations, start_run
from http_api.problems import api_errors
from http_api.requests import json_response, parse_body
from http_api.routes import http

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
# How long a cancel waits for the orchestration to stop before its last look for batches to
# terminate. Tests on the stepped engine set 0: nothing stops there until the test steps it.
CANCEL_SETTLE_SECONDS = TERMINATE_WAIT_SECONDS


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_pause(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    run = await pause_run(get_services(), DurableOrchestrations(client), req.route_params["runId"])
    return json_response(run.to_json_dict(), HTTPStatus.ACCEPTED)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_resume(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    run = await resume_run(get_services(), DurableOrchestrations(client), req.route_params["runId"])
    return json_response(run.to_json_dict(), HTTPStatus.ACCEPTED)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_cancel(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    run = await cancel_run(
        get_services(),
        DurableOrchestrations(client),
        req.route_params["runId"],
        settle_seconds=CANCEL_SETTLE_SECONDS,
    )
    return json_response(run.to_json_dict(), HTTPStatus.ACCEPTED)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_rerun(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    services = get_services()
    request = parse_body(req, RerunRequest)
    child = await asyncio.to_thread(create_rerun, services, req.route_params["runId"], request)
    return await start_run(services, client, req, child)
