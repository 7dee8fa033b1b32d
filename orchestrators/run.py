"""The run orchestrator: one instance per run (instance id = run id).

It plans the jobs, dispatches them in waves of batch sub-orchestrations, keeps live progress in
its custom status, records state through the `sync_run` activity, summarises, and continues as
new every few waves so its history stays bounded however large the run.

Pause, resume and cancel change the run record first; this orchestrator follows the record:
* before each wave it syncs (persisting progress) and learns the status; while PAUSED it waits
  for the run's next control event, `control-<n+1>` — names are never reused, so a stored or
  replayed event cannot answer a later wait (DESIGN.md rule 5) — with a timer beside it, both
  fresh in that yield (rule 4), so even a lost event only delays the resume;
* probes read the status before calling a provider, so a pause stops new calls at once; jobs a
  pause caught before their call come back as deferred and are dispatched after the resume;
* jobs a provider asked to retry later wait here, not in a batch, so a wave lasts as long as
  its slowest call, never its longest retry chain; when only waiting jobs are left, the
  orchestrator sleeps on a durable timer until the first is due (a command wakes it sooner);
* cancel terminates this instance and the batches it names in its custom status (rule 7).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.domain.orchestration import (
    SUMMARY_PAGES_PER_GENERATION,
    SUMMARY_WAVES_PER_GENERATION,
    WAVES_PER_GENERATION,
    BatchInput,
    BatchResult,
    PlanResult,
    RunInput,
    RunState,
    SummaryPage,
    SummaryPageInput,
    SummaryRange,
    SyncInput,
    SyncResult,
    final_status,
    merge_progress,
    retry_delay,
)
from evalruns.domain.runs import PAUSED_FOR_BUDGET, Progress, RunStatus
from evalruns.domain.waves import JobGroup, Lane, affordable_jobs, next_due, next_wave, work_left
from orchestrators.payloads import decode, encode
from orchestrators.retries import INFRASTRUCTURE_RETRY

bp = df.Blueprint()

# A control event nobody waits for (a pause: the record already stops new calls) is stored by
# the SDK with this warning on every replay; it is expected, not a lost completion.
warnings.filterwarnings(
    "ignore",
    message=f"Potential duplicate Task completion for TaskId: {names.CONTROL_EVENT_PREFIX}",
    category=UserWarning,
)

# While paused, the record is re-read this often even without an event; after this many
# re-reads the orchestration continues as new, so a long pause cannot grow its history.
PAUSE_RECHECK = timedelta(minutes=10)
PAUSE_RECHECKS_PER_GENERATION = 12

Steps = Generator[Any, Any, Any]


def batch_instance_id(run_id: str, dispatch: int) -> str:
    """Deterministic and never reused within a run (a re-dispatch gets a new number)."""
    return f"{run_id}:batch:{dispatch:06d}"


@bp.orchestration_trigger(context_name="context", orchestration=names.RUN_ORCHESTRATOR)
def run_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    state = decode(context.get_input(), RunState)
    try:
        return (yield from _run(context, state))
    except Exception as error:
        reason = (str(error).strip().splitlines() or ["the orchestration failed"])[0]
        failed = SyncInput(run_id=state.run_id, target=RunStatus.FAILED, error=reason[:500])
        yield from _synced(context, failed)
        raise


def _run(context: df.DurableOrchestrationContext, state: RunState) -> Steps:
    run_id = state.run_id
    if state.plan is None:
        sync = yield from _advance(context, SyncInput(run_id=run_id, target=RunStatus.RUNNING))
        if sync.status != RunStatus.RUNNING:
            return _stop_or_continue(context, state, sync)
        plan = PlanResult.model_validate(
            (
                yield context.call_activity_with_retry(
                    names.PLAN_ACTIVITY, INFRASTRUCTURE_RETRY, encode(RunInput(run_id=run_id))
                )
            )
        )
        planned = Progress.planned(plan.totals_by_model)
        progress = merge_progress(planned, plan.carried)
        lane_next = [lane.first for lane in plan.lanes]
        state = state.model_copy(
            update={"plan": plan, "progress": progress, "lane_next": lane_next}
        )
    context.set_custom_status(_custom_status(state.progress, []))
    if state.summarising:
        return (yield from _summarise(context, state))

    for _ in range(WAVES_PER_GENERATION):
        sync = yield from _synced(context, SyncInput(run_id=run_id, progress=state.progress))
        sync = yield from _while_paused(context, sync, SyncInput(run_id=run_id))
        if sync.status != RunStatus.RUNNING:
            return _stop_or_continue(context, state, sync)
        plan = state.plan
        assert plan is not None
        affordable = affordable_jobs(
            state.progress.cost_usd, sync.budget_usd, plan.worst_case_job_usd
        )
        wave = next_wave(
            plan.lanes,
            state.lane_next,
            state.waiting,
            plan.parallel_batches,
            affordable,
            _now(context),
        )
        if not wave.batches:
            if not _work_left(state):
                break
            due = next_due(state.waiting)
            if affordable == 0 or due is None:
                # The budget cannot cover one more job at its worst case: pause, not spend.
                budget = SyncInput(run_id=run_id, target=RunStatus.PAUSED, reason=PAUSED_FOR_BUDGET)
                yield from _synced(context, budget)
                continue
            # Only jobs waiting for a retry are left: sleep until the first is due.
            command = context.wait_for_external_event(names.control_event(sync.control_seq + 1))
            timer = context.create_timer(due)
            if (yield context.task_any([command, timer])) is command:
                timer.cancel()
            continue
        state = state.model_copy(update={"lane_next": wave.lane_next, "waiting": wave.waiting})
        state = yield from _dispatch(context, state, wave.batches)
    else:
        if _work_left(state):
            return _continue(context, state)

    return (yield from _finish(context, state))


def _work_left(state: RunState) -> bool:
    assert state.plan is not None
    return work_left(state.plan.lanes, state.lane_next, state.waiting)


def _now(context: df.DurableOrchestrationContext) -> datetime:
    """The replay-safe current time, always timezone-aware."""
    now = context.current_utc_datetime
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _dispatch(
    context: df.DurableOrchestrationContext, state: RunState, wave: list[JobGroup]
) -> Steps:
    plan = state.plan
    assert plan is not None
    ids = [batch_instance_id(state.run_id, state.dispatches + i) for i in range(len(wave))]
    # Named in the custom status of the same episode that starts them, for cancel to find.
    context.set_custom_status(_custom_status(state.progress, ids))
    results = yield context.task_all(
        [
            context.call_sub_orchestrator(
                names.BATCH_ORCHESTRATOR,
                encode(
                    BatchInput(
                        run_id=state.run_id,
                        batch=state.dispatches + i,
                        ordinals=batch.ordinals,
                        attempts=batch.attempts,
                        max_attempts=plan.max_attempts,
                    )
                ),
                instance_id,
            )
            for i, (instance_id, batch) in enumerate(zip(ids, wave, strict=True))
        ]
    )
    progress = state.progress
    waiting = list(state.waiting)
    now = _now(context)
    for batch, raw in zip(wave, results, strict=True):
        result = BatchResult.model_validate(raw)
        progress = merge_progress(progress, result.by_model)
        attempts = dict(zip(batch.ordinals, batch.attempts, strict=True))
        if result.deferred:
            again = [attempts[ordinal] for ordinal in result.deferred]
            waiting.append(JobGroup(ordinals=result.deferred, attempts=again))
        if result.retry:
            due = now + timedelta(seconds=result.retry_in)
            again = [attempts[ordinal] + 1 for ordinal in result.retry]
            waiting.append(JobGroup(ordinals=result.retry, attempts=again, due=due))
    context.set_custom_status(_custom_status(progress, []))
    return state.model_copy(
        update={
            "progress": progress,
            "waiting": waiting,
            "dispatches": state.dispatches + len(wave),
        }
    )


def _finish(context: df.DurableOrchestrationContext, state: RunState) -> Steps:
    run_id = state.run_id
    outcome = final_status(state.progress)
    if outcome == RunStatus.FAILED:
        error = f"all {state.progress.total} jobs failed"
        failed = SyncInput(run_id=run_id, progress=state.progress, target=outcome, error=error)
        yield from _synced(context, failed)
        return encode(state.progress)
    start = SyncInput(run_id=run_id, progress=state.progress, target=RunStatus.SUMMARIZING)
    sync = yield from _advance(context, start)
    if sync.status != RunStatus.SUMMARIZING:
        return _stop_or_continue(context, state, sync)
    return (yield from _summarise(context, state.model_copy(update={"summarising": True})))


def _summarise(context: df.DurableOrchestrationContext, state: RunState) -> Steps:
    """Summarise the jobs in waves of pages, then sweep transcripts carried over from a
    parent run; continue as new while pages are left."""
    plan = state.plan
    assert plan is not None
    lane = plan.summary_lane
    if lane is not None and not state.sweeping:
        summarised = yield from _summary_waves(context, state, lane, plan.max_attempts)
        if summarised is None:
            return None
        state = summarised
        if state.summary_retries or state.summary_next <= lane.last:
            return _continue(context, state)
    if plan.carried and not (yield from _sweep_carried(context, state)):
        return None
    yield from _synced(context, SyncInput(run_id=state.run_id, target=RunStatus.COMPLETED))
    return encode(state.progress)


def _summary_waves(
    context: df.DurableOrchestrationContext, state: RunState, lane: Lane, max_attempts: int
) -> Steps:
    """A generation's waves of summary pages (as many at once as the summariser's provider
    allows); returns the state after them, None if the run ended meanwhile. A page left
    pending by a retryable summariser error is summarised again once its delay has passed,
    holding its slot meanwhile; other pages go on, and with nothing else to do the
    orchestrator sleeps on a durable timer until the first retry is due."""
    for _ in range(SUMMARY_WAVES_PER_GENERATION):
        now = _now(context)
        due: list[SummaryRange] = []
        later: list[SummaryRange] = []
        for page in state.summary_retries:
            (due if page.due is None or page.due <= now else later).append(page)
        slots = max(0, lane.parallel - len(later))
        pages, waiting = due[:slots], due[slots:] + later
        next_job = state.summary_next
        while len(pages) < slots and next_job <= lane.last:
            last = min(lane.last, next_job + lane.batch_size - 1)
            pages.append(SummaryRange(first=next_job, last=last))
            next_job = last + 1
        if not pages:
            if not later:
                return state
            yield context.create_timer(min(page.due for page in later if page.due is not None))
            continue
        results = yield context.task_all(
            [
                _summary_page(
                    context,
                    SummaryPageInput(
                        run_id=state.run_id,
                        first=page.first,
                        last=page.last,
                        attempt=page.attempt,
                        final=page.attempt >= max_attempts,
                    ),
                )
                for page in pages
            ]
        )
        done = [SummaryPage.model_validate(raw) for raw in results]
        if any(result.stopped for result in done):
            return None
        now = _now(context)
        retries = [
            _retry_later(state.run_id, page, result, now)
            for page, result in zip(pages, done, strict=True)
            if result.pending and page.attempt < max_attempts
        ]
        state = state.model_copy(
            update={"summary_next": next_job, "summary_retries": [*waiting, *retries]}
        )
    return state


def _retry_later(
    run_id: str, page: SummaryRange, result: SummaryPage, now: datetime
) -> SummaryRange:
    delay = retry_delay(run_id, page.first, page.attempt, result.retry_after)
    return page.model_copy(
        update={"attempt": page.attempt + 1, "due": now + timedelta(seconds=delay)}
    )


def _sweep_carried(context: df.DurableOrchestrationContext, state: RunState) -> Steps:
    """Page through the run's transcripts for those carried over from the parent and still
    pending (the parent ended before summarising them); jobs' transcripts are skipped."""
    plan = state.plan
    assert plan is not None
    cursor = state.summary_cursor
    attempt = 1
    for _ in range(SUMMARY_PAGES_PER_GENERATION):
        page = SummaryPage.model_validate(
            (
                yield _summary_page(
                    context,
                    SummaryPageInput(
                        run_id=state.run_id,
                        cursor=cursor,
                        attempt=attempt,
                        final=attempt >= plan.max_attempts,
                    ),
                )
            )
        )
        if page.stopped:
            return False
        if page.pending and attempt < plan.max_attempts:
            delay = retry_delay(state.run_id, 0, attempt, page.retry_after)
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=delay))
            attempt += 1
            continue
        if page.next_cursor is None:
            return True
        cursor, attempt = page.next_cursor, 1
    _continue(context, state.model_copy(update={"sweeping": True, "summary_cursor": cursor}))
    return False


def _summary_page(context: df.DurableOrchestrationContext, page: SummaryPageInput) -> df.Task:
    return context.call_activity_with_retry(
        names.SUMMARISE_ACTIVITY, INFRASTRUCTURE_RETRY, encode(page)
    )


def _advance(context: df.DurableOrchestrationContext, change: SyncInput) -> Steps:
    """Move the run to `change.target`, waiting out a pause; returns the last SyncResult."""
    sync = yield from _synced(context, change)
    return (yield from _while_paused(context, sync, change))


def _while_paused(
    context: df.DurableOrchestrationContext, sync: SyncResult, change: SyncInput
) -> Steps:
    """Wait for the run's next command while it is PAUSED, then record `change` (a move from
    PAUSED is refused, so it only applies once the run was resumed); returns the status.

    Still PAUSED on return means: continue as new now (a long pause), then wait again.
    """
    for _ in range(PAUSE_RECHECKS_PER_GENERATION):
        if sync.status != RunStatus.PAUSED:
            return sync
        command = context.wait_for_external_event(names.control_event(sync.control_seq + 1))
        recheck = context.create_timer(context.current_utc_datetime + PAUSE_RECHECK)
        winner = yield context.task_any([command, recheck])
        if winner is command:
            recheck.cancel()
        sync = yield from _synced(context, change)
    return sync


def _stop_or_continue(
    context: df.DurableOrchestrationContext, state: RunState, sync: SyncResult
) -> None:
    """Stop for a terminal status; continue as new for a pause that outlasted a generation."""
    if sync.status == RunStatus.PAUSED:
        _continue(context, state)


def _continue(context: df.DurableOrchestrationContext, state: RunState) -> None:
    context.continue_as_new(encode(state))


def _custom_status(progress: Progress, batches: list[str]) -> dict[str, Any]:
    return {**encode(progress), "batches": batches}


def _synced(context: df.DurableOrchestrationContext, change: SyncInput) -> Steps:
    """Record `change` (the `sync_run` activity) and return the run's status after it."""
    raw = yield context.call_activity_with_retry(
        names.SYNC_RUN_ACTIVITY, INFRASTRUCTURE_RETRY, encode(change)
    )
    return SyncResult.model_validate(raw)
