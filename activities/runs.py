"""Activities that plan a run, look at it, hand out its work, probe its jobs and summarise
their transcripts."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.domain.lanes import LaneState
from evalruns.domain.orchestration import ClaimInput, RunInput, TickInput, WorkInput
from evalruns.services import get_services
from evalruns.services.execution import plan_run, probe_job
from evalruns.services.summaries import summarise_jobs
from evalruns.services.work import claim, tick

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.PLAN_ACTIVITY)
def plan_run_activity(payload: dict[str, Any]) -> dict[str, Any]:
    request = RunInput.model_validate(payload)
    return plan_run(get_services(), request.run_id).to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.TICK_ACTIVITY)
@bp.durable_client_input(client_name="client")
async def tick_run_activity(
    payload: dict[str, Any], client: df.DurableOrchestrationClient
) -> dict[str, Any]:
    """Look at the run, and start the lanes it opened that are not running yet: lanes are
    orchestrations of their own, not sub-orchestrations, so the run orchestrator can continue
    as new while they run (DTFx completes an orchestration only once its tasks are done)."""
    services = get_services()
    result = await services.run_io(tick, services, TickInput.model_validate(payload))
    for lane in result.start:
        status = await client.get_status(lane.lane_id)
        if status is None or status.runtime_status is None:
            state = LaneState(
                run_id=result.run_id,
                lane_id=lane.lane_id,
                kind=lane.kind,
                max_attempts=result.max_attempts,
            )
            await client.start_new(names.LANE_ORCHESTRATOR, lane.lane_id, state.to_json_dict())
    return result.to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.CLAIM_ACTIVITY)
def claim_work_activity(payload: dict[str, Any]) -> dict[str, Any]:
    request = ClaimInput.model_validate(payload)
    return claim(get_services(), request.run_id, request.request).to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.PROBE_ACTIVITY)
async def probe_job_activity(payload: dict[str, Any]) -> list[dict[str, Any]]:
    outcome = await probe_job(get_services(), WorkInput.model_validate(payload))
    return [outcome.to_json_dict()]


@bp.activity_trigger(input_name="payload", activity=names.SUMMARISE_ACTIVITY)
async def summarise_jobs_activity(payload: dict[str, Any]) -> list[dict[str, Any]]:
    outcomes = await summarise_jobs(get_services(), WorkInput.model_validate(payload))
    return [outcome.to_json_dict() for outcome in outcomes]
