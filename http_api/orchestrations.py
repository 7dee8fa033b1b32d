"""The Durable client behind run start and run control: one adapter, used by the routes."""

from __future__ import annotations

import asyncio
import functools
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import azure.durable_functions as df
import azure.functions as func

from evalruns import names
from evalruns.domain.statuses import RunStatus
from evalruns.errors import Unavailable
from evalruns.lazy import lazy
from http_api.requests import json_response

if TYPE_CHECKING:
    from evalruns.services.container import Services
    from evalruns.services.reconcile import OrchestrationState
    from evalruns.storage.runs import StoredRun

log = logging.getLogger(__name__)
orchestration = lazy("evalruns.domain.orchestration")
reconcile = lazy("evalruns.services.reconcile")
runs = lazy("evalruns.services.runs")


class DurableOrchestrations:
    """`evalruns.services.control.Orchestrations` over the Durable client."""

    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self._client = client

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        await self._client.raise_event(instance_id, name, data)

    async def terminate(self, instance_id: str, reason: str) -> None:
        try:
            await self._client.terminate(instance_id, reason)
        except Exception as error:  # the SDK raises bare Exceptions for 404 and 410
            log.info("terminate %s: %s", instance_id, error)

    async def state(self, instance_id: str) -> OrchestrationState:
        status = await self._client.get_status(instance_id)
        if not status or status.runtime_status is None:
            return reconcile.OrchestrationState(None)
        return reconcile.OrchestrationState(
            status.runtime_status.value, status.custom_status, status.output
        )


async def start_run(
    services: Services,
    client: df.DurableOrchestrationClient,
    req: func.HttpRequest,
    run: StoredRun,
) -> func.HttpResponse:
    """Start the run's orchestration (instance id = run id) and answer 202 with its links.

    If the runtime refuses, the run is recorded FAILED and the caller gets a 503.
    """
    try:
        await client.start_new(
            names.RUN_ORCHESTRATOR,
            run.id,
            orchestration.RunState(run_id=run.id).to_json_dict(),
        )
    except Exception as exc:
        log.exception("could not start the orchestration of run %s", run.id)
        await asyncio.to_thread(
            functools.partial(
                runs.move_run,
                services,
                run.id,
                RunStatus.FAILED,
                error="the orchestration could not be started",
            )
        )
        raise Unavailable(
            "the run was recorded but its orchestration could not be started; try again in a moment"
        ) from exc
    links = client.get_client_response_links(req, run.id)
    return json_response(
        {
            "run": run.public().to_json_dict(),
            "statusQueryGetUri": links["statusQueryGetUri"],
            "sendEventPostUri": links["sendEventPostUri"],
            "terminatePostUri": links["terminatePostUri"],
        },
        HTTPStatus.ACCEPTED,
        headers={"Location": f"/api/runs/{run.id}"},
    )
