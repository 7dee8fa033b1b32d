"""Runs: start (one orchestration per run), read with live progress, list."""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from evalruns.domain.runs import RunPatch, RunRequest, RunStatus
from evalruns.services import get_services
from evalruns.services.access import touch_run
from evalruns.services.control import patch_run
from evalruns.services.estimates import estimate_run
from evalruns.services.reconcile import current_run
from evalruns.services.runs import create_run, list_runs
from http_api.orchestrations import DurableOrchestrations, start_run
from http_api.params import DEFINITION_ID, RUN_STATUS, page
from http_api.problems import api_errors
from http_api.requests import (
    json_response,
    page_response,
    parse_body,
)
from http_api.routes import http

log = logging.getLogger(__name__)
bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_create(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    services = get_services()
    request = parse_body(req, RunRequest)
    run = await asyncio.to_thread(create_run, services, request)
    return await start_run(services, client, req, run)


@http(bp)
@api_errors
def runs_list(req: func.HttpRequest) -> func.HttpResponse:
    status = RUN_STATUS.read(req)
    return page_response(
        list_runs(
            get_services(),
            *page(req),
            status=RunStatus(status) if status else None,
            definition_id=DEFINITION_ID.read(req),
        ),
        transform=lambda run: run.public(),
    )


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_get(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    services = get_services()
    run = await current_run(services, DurableOrchestrations(client), req.route_params["runId"])
    touch_run(services, run)
    return json_response(run.public().to_json_dict())


@http(bp)
@api_errors
def runs_estimate(req: func.HttpRequest) -> func.HttpResponse:
    estimate = estimate_run(get_services(), parse_body(req, RunRequest))
    return json_response(estimate.to_json_dict())


@http(bp)
@api_errors
def runs_patch(req: func.HttpRequest) -> func.HttpResponse:
    run = patch_run(get_services(), req.route_params["runId"], parse_body(req, RunPatch))
    return json_response(run.to_json_dict())
