"""The run orchestrator: one instance per run (instance id = run id).

It plans the jobs, dispatches them in waves of batch sub-orchestrations, keeps live progress
in its custom status, persists snapshots, and continues as new every few waves so its history
stays bounded however large the run.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.domain.orchestration import (
    PERSIST_INTERVAL_SECONDS,
    WAVES_PER_GENERATION,
    BatchInput,
    BatchResult,
    PlanResult,
    RunInput,
    RunState,
    SaveRunInput,
    final_status,
    merge_progress,
)
from evalruns.domain.runs import Progress, RunStatus
from orchestrators.payloads import decode, encode
from orchestrators.retries import INFRASTRUCTURE_RETRY

bp = df.Blueprint()


def batch_instance_id(run_id: str, batch: int) -> str:
    """Deterministic, so a cancel can find every batch of a run."""
    return f"{run_id}:batch:{batch:06d}"


@bp.orchestration_trigger(context_name="context", orchestration=names.RUN_ORCHESTRATOR)
def run_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    state = decode(context.get_input(), RunState)
    try:
        return (yield from _run(context, state))
    except Exception as error:
        reason = (str(error).strip().splitlines() or ["the orchestration failed"])[0]
        failed = SaveRunInput(run_id=state.run_id, status=RunStatus.FAILED, error=reason[:500])
        yield context.call_activity_with_retry(
            names.SAVE_RUN_ACTIVITY, INFRASTRUCTURE_RETRY, encode(failed)
        )
        raise


def _run(context: df.DurableOrchestrationContext, state: RunState) -> Generator[Any, Any, Any]:
    if state.plan is None:
        yield _save(context, SaveRunInput(run_id=state.run_id, status=RunStatus.RUNNING))
        plan = PlanResult.model_validate(
            (
                yield context.call_activity_with_retry(
                    names.PLAN_ACTIVITY, INFRASTRUCTURE_RETRY, encode(RunInput(run_id=state.run_id))
                )
            )
        )
        state = state.model_copy(
            update={"plan": plan, "progress": Progress.planned(plan.totals_by_model)}
        )
    plan = state.plan
    assert plan is not None
    context.set_custom_status(encode(state.progress))

    for _ in range(WAVES_PER_GENERATION):
        if state.next_batch >= plan.batches:
            break
        wave = range(state.next_batch, min(plan.batches, state.next_batch + plan.parallel_batches))
        results = yield context.task_all(
            [
                context.call_sub_orchestrator(
                    names.BATCH_ORCHESTRATOR,
                    encode(
                        BatchInput(
                            run_id=state.run_id,
                            batch=batch,
                            first=plan.batch_range(batch).start,
                            last=plan.batch_range(batch).stop - 1,
                            max_attempts=plan.max_attempts,
                        )
                    ),
                    batch_instance_id(state.run_id, batch),
                )
                for batch in wave
            ]
        )
        progress = state.progress
        for result in results:
            progress = merge_progress(progress, BatchResult.model_validate(result))
        state = state.model_copy(update={"progress": progress, "next_batch": wave.stop})
        context.set_custom_status(encode(progress))
        now = context.current_utc_datetime
        due = state.last_persisted is None or now - state.last_persisted >= timedelta(
            seconds=PERSIST_INTERVAL_SECONDS
        )
        if due and state.next_batch < plan.batches:
            yield _save(context, SaveRunInput(run_id=state.run_id, progress=progress))
            state = state.model_copy(update={"last_persisted": now})

    if state.next_batch < plan.batches:
        context.continue_as_new(
            encode(state.model_copy(update={"generation": state.generation + 1}))
        )
        return None

    status = final_status(state.progress)
    if status == RunStatus.COMPLETED:
        yield _save(
            context,
            SaveRunInput(
                run_id=state.run_id, status=RunStatus.SUMMARIZING, progress=state.progress
            ),
        )
        yield _save(context, SaveRunInput(run_id=state.run_id, status=RunStatus.COMPLETED))
    else:
        yield _save(
            context,
            SaveRunInput(
                run_id=state.run_id,
                status=status,
                progress=state.progress,
                error=f"all {state.progress.total} jobs failed",
            ),
        )
    return encode(state.progress)


def _save(context: df.DurableOrchestrationContext, change: SaveRunInput) -> df.Task:
    return context.call_activity_with_retry(
        names.SAVE_RUN_ACTIVITY, INFRASTRUCTURE_RETRY, encode(change)
    )
