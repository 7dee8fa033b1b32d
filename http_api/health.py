"""GET /api/health, /api/health/providers, /api/health/queue, /api/health/workers.

Anonymous, so that load balancers and uptime probes can call them; nothing they return is a
secret (see evalruns.services.health).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from evalruns.lazy import lazy
from http_api.params import REFRESH
from http_api.problems import api_errors, problem
from http_api.requests import json_response
from http_api.routes import http

if TYPE_CHECKING:
    from evalruns.services.health import OrchestrationInstance

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)
container = lazy("evalruns.services.container")
checks = lazy("evalruns.services.health")


class DurableInstances:
    """`evalruns.services.health.InstanceListing` over the Durable client."""

    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self._client = client

    async def instances(self, runtime_status: str) -> Sequence[OrchestrationInstance]:
        statuses = await self._client.get_status_by(
            runtime_status=[df.OrchestrationRuntimeStatus(runtime_status)]
        )
        return [
            checks.OrchestrationInstance(
                instance_id=status.instance_id or "",
                name=status.name or "",
                runtime_status=status.runtime_status.value
                if status.runtime_status
                else runtime_status,
                created_time=status.created_time,
                last_updated_time=status.last_updated_time,
            )
            for status in statuses
        ]


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def health(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    report = await checks.overall_health(
        container.get_services(), DurableInstances(client), os.environ
    )
    if report.status == "unhealthy":
        storage = report.checks.storage
        failures = [
            f"{name}: {check.error}"
            for name, check in (("tables", storage.tables), ("blobs", storage.blobs))
            if not check.ok
        ]
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"storage is unreachable ({'; '.join(failures)})",
            checks=report.checks.to_json_dict(),
            checkedAt=report.to_json_dict()["checkedAt"],
        )
    return json_response(report.to_json_dict())


@http(bp)
@api_errors
async def health_providers(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()
    report = await checks.provider_health(
        services.settings, services.catalog, refresh=REFRESH.read(req) or False
    )
    return json_response(report.to_json_dict())


@http(bp)
@bp.durable_client_input(client_name="client")
@api_errors
async def health_queue(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    report = await checks.queue_health(DurableInstances(client), services=container.get_services())
    return json_response(report.to_json_dict())


@http(bp)
@api_errors
def health_workers(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()
    return json_response(
        checks.worker_health(services.settings, services.catalog, os.environ).to_json_dict()
    )
