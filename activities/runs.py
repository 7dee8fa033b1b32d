"""Activities that plan a run, probe its jobs, summarise them and record its state."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.domain.orchestration import (
    BatchJobsInput,
    ProbeInput,
    RunInput,
    SummaryPageInput,
    SyncInput,
)
from evalruns.services import get_services
from evalruns.services.execution import load_jobs, plan_run, probe_job
from evalruns.services.runs import sync_run
from evalruns.services.summaries import summarise_run_page

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.PLAN_ACTIVITY)
def plan_run_activity(payload: dict[str, Any]) -> dict[str, Any]:
    request = RunInput.model_validate(payload)
    return plan_run(get_services(), request.run_id).to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.LOAD_JOBS_ACTIVITY)
def load_jobs_activity(payload: dict[str, Any]) -> list[dict[str, Any]]:
    request = BatchJobsInput.model_validate(payload)
    return [
        job.to_json_dict() for job in load_jobs(get_services(), request.run_id, request.ordinals)
    ]


@bp.activity_trigger(input_name="payload", activity=names.PROBE_ACTIVITY)
async def probe_job_activity(payload: dict[str, Any]) -> dict[str, Any]:
    outcome = await probe_job(get_services(), ProbeInput.model_validate(payload))
    return outcome.to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.SUMMARISE_ACTIVITY)
async def summarise_page_activity(payload: dict[str, Any]) -> dict[str, Any]:
    page = await summarise_run_page(get_services(), SummaryPageInput.model_validate(payload))
    return page.to_json_dict()


@bp.activity_trigger(input_name="payload", activity=names.SYNC_RUN_ACTIVITY)
def sync_run_activity(payload: dict[str, Any]) -> dict[str, Any]:
    change = SyncInput.model_validate(payload)
    result = sync_run(
        get_services(), change.run_id, change.progress, change.target, change.error, change.reason
    )
    return result.to_json_dict()
