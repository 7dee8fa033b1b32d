"""Runs: start (one orchestration per run), read with live progress, list."""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from evalruns.domain.statuses import RunStatus
from evalruns.lazy import lazy
from http_api.orchestrations import DurableOrchestrations, start_run
from http_api.params import DEFINITION_ID, RUN_STATUS, page
from http_api.problems import api_errors
from http_api.requests import json_response, page_response, parse_body
from http_api.routes import http

log = logging.getLogger(__name__)
bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
container = lazy("evalruns.services.container")
access = lazy("evalruns.services.access")
control = lazy("evalruns.services.control")
estimates = lazy("evalruns.services.estimates")
reconcile = lazy("evalruns.services.reconcile")
runs = lazy("evalruns.services.runs")
models = lazy("evalruns.domain.runs")


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def runs_create(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    services = container.get_services()
    request = parse_body(req, models.RunRequest)
    run = await asyncio.to_thread(runs.create_run, services, request)
    return await start_run(services, client, req, run)


@http(bp)
@api_errors
def runs_list(req: func.HttpRequest) -> func.HttpResponse:
    status = RUN_STATUS.read(req)
    return page_response(
        runs.list_runs(
            container.get_services(),
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
    services = container.get_services()
    run_id = req.route_params["runId"]
    run = await reconcile.current_run(services, DurableOrchestrations(client), run_id)
    access.touch_run(services, run)
    return json_response(run.public().to_json_dict())


@http(bp)
@api_errors
def runs_estimate(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()
    estimate = estimates.estimate_run(services, parse_body(req, models.RunRequest))
    return json_response(estimate.to_json_dict())


@http(bp)
@api_errors
def runs_patch(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()
    patch = parse_body(req, models.RunPatch)
    run = control.patch_run(services, req.route_params["runId"], patch)
    return json_response(run.to_json_dict())
