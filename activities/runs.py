"""Activities that plan a run, look at it, hand out its work, probe its jobs and summarise
their transcripts."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.lazy import lazy

bp = df.Blueprint()
container = lazy("evalruns.services.container")
lanes = lazy("evalruns.domain.lanes")
orchestration = lazy("evalruns.domain.orchestration")
execution = lazy("evalruns.services.execution")
summaries = lazy("evalruns.services.summaries")
work = lazy("evalruns.services.work")


@bp.activity_trigger(input_name="payload", activity=names.PLAN_ACTIVITY)
def plan_run_activity(payload: dict[str, Any]) -> dict[str, Any]:
    request = orchestration.RunInput.model_validate(payload)
    return execution.plan_run(container.get_services(), request.run_id).to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.TICK_ACTIVITY)
@bp.durable_client_input(client_name="client")
async def tick_run_activity(
    payload: dict[str, Any], client: df.DurableOrchestrationClient
) -> dict[str, Any]:
    """Look at the run, and start the lanes it opened that are not running yet: lanes are
    orchestrations of their own, not sub-orchestrations, so the run orchestrator can continue
    as new while they run (DTFx completes an orchestration only once its tasks are done)."""
    services = container.get_services()
    change = orchestration.TickInput.model_validate(payload)
    result = await services.run_io(work.tick, services, change)
    for lane in result.start:
        status = await client.get_status(lane.lane_id)
        if status is None or status.runtime_status is None:
            state = lanes.LaneState(
                run_id=result.run_id,
                lane_id=lane.lane_id,
                kind=lane.kind,
                max_attempts=result.max_attempts,
            )
            await client.start_new(names.LANE_ORCHESTRATOR, lane.lane_id, state.to_json_dict())
    return result.to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.CLAIM_ACTIVITY)
def claim_work_activity(payload: dict[str, Any]) -> dict[str, Any]:
    request = orchestration.ClaimInput.model_validate(payload)
    return work.claim(container.get_services(), request.run_id, request.request).to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.PROBE_ACTIVITY)
async def probe_job_activity(payload: dict[str, Any]) -> list[dict[str, Any]]:
    request = orchestration.WorkInput.model_validate(payload)
    outcome = await execution.probe_job(container.get_services(), request)
    return [outcome.to_json_dict()]


@bp.activity_trigger(input_name="payload", activity=names.SUMMARISE_ACTIVITY)
async def summarise_jobs_activity(payload: dict[str, Any]) -> list[dict[str, Any]]:
    request = orchestration.WorkInput.model_validate(payload)
    outcomes = await summaries.summarise_jobs(container.get_services(), request)
    return [outcome.to_json_dict() for outcome in outcomes]
