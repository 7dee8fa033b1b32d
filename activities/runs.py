"""Activities that plan a run, probe its jobs and record its state."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.domain.orchestration import BatchJobsInput, ProbeInput, RunInput, SaveRunInput
from evalruns.services import get_services
from evalruns.services.execution import load_jobs, plan_run, probe_job
from evalruns.services.runs import record_state

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.PLAN_ACTIVITY)
def plan_run_activity(payload: dict[str, Any]) -> dict[str, Any]:
    request = RunInput.model_validate(payload)
    return plan_run(get_services(), request.run_id).to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.LOAD_JOBS_ACTIVITY)
def load_jobs_activity(payload: dict[str, Any]) -> list[dict[str, Any]]:
    request = BatchJobsInput.model_validate(payload)
    jobs = load_jobs(get_services(), request.run_id, request.first, request.last)
    return [job.to_json_dict() for job in jobs]


@bp.activity_trigger(input_name="payload", activity=names.PROBE_ACTIVITY)
async def probe_job_activity(payload: dict[str, Any]) -> dict[str, Any]:
    outcome = await probe_job(get_services(), ProbeInput.model_validate(payload))
    return outcome.to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.SAVE_RUN_ACTIVITY)
def save_run_state_activity(payload: dict[str, Any]) -> dict[str, Any]:
    change = SaveRunInput.model_validate(payload)
    run = record_state(get_services(), change.run_id, change.status, change.progress, change.error)
    return {"runId": run.id, "status": run.status.value}
