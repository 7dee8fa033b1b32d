"""The sweeper: every few minutes, run records that disagree with their orchestrations are put
right, a bounded number per pass (evalruns.services.reconcile says how)."""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from evalruns.lazy import lazy
from http_api.orchestrations import DurableOrchestrations

log = logging.getLogger(__name__)
bp = df.Blueprint()
container = lazy("evalruns.services.container")
reconcile = lazy("evalruns.services.reconcile")

SCHEDULE = "0 */5 * * * *"


@bp.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=False)
@bp.durable_client_input(client_name="client")
async def sweep_runs(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    services = container.get_services()
    report = await reconcile.sweep(
        services, DurableOrchestrations(client), services.settings.sweep_limit
    )
    log.info(
        "sweep: %d runs checked, %d reconciled, %d settled, %d still settling",
        report.checked,
        len(report.reconciled),
        len(report.settled),
        len(report.still_settling),
    )
