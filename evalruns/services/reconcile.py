"""Run records that disagree with their orchestrations, put right.

The run record is the truth users read, and the orchestration moves it. Three things can make
them disagree, and this module owns the repair of each:

* A run's orchestration ended outside the API (terminated through the Durable management URL,
  failed, or purged): `reconcile` ends the record as CANCELLED or FAILED with the reason.
* A run ended while calls were in flight (a cancel, or the above): those calls finish and write
  their transcripts after the record stopped counting. Such a run is `settling`; `settle`
  recounts its progress from the transcripts, once from each late probe and from the sweeper,
  until no call can still be in flight.
* Nobody reads such a run again: the timer-triggered `sweep` finds and repairs it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from evalruns.domain.base import ApiModel, utcnow
from evalruns.domain.runs import ACTIVE, Actor, ModelProgress, Progress, RunStatus, may_move
from evalruns.services.container import Services
from evalruns.services.runs import with_live_progress
from evalruns.storage.runs import StoredRun

log = logging.getLogger(__name__)

# A run younger than this may not have its orchestration yet (it is recorded first).
START_GRACE = timedelta(minutes=2)
# Calls in flight when a run ended finish within the provider timeout; then some slack.
SETTLE_SLACK = timedelta(seconds=30)
ERROR_CHARS = 500


@dataclass(frozen=True)
class OrchestrationState:
    """What the Durable client tells about an instance; `runtime_status` None: none exists."""

    runtime_status: str | None
    custom_status: Any = None
    output: Any = None


class OrchestrationStates(Protocol):
    async def state(self, instance_id: str) -> OrchestrationState: ...


class Repair(ApiModel):
    run_id: str
    was: RunStatus
    now: RunStatus
    reason: str


class SweepReport(ApiModel):
    checked: int
    reconciled: list[Repair]
    settled: list[str]
    still_settling: list[str]


def disagreement(
    run: StoredRun, state: OrchestrationState, now: datetime
) -> tuple[RunStatus, str] | None:
    """The status a live run's record must take, and why, when its orchestration has ended."""
    if run.status.is_terminal:
        return None
    runtime = state.runtime_status
    if runtime == "Terminated":
        reason = f": {state.output}" if isinstance(state.output, str) and state.output else ""
        return RunStatus.CANCELLED, f"its orchestration was terminated outside the API{reason}"
    if runtime == "Failed":
        detail = state.output if isinstance(state.output, str) else "no reason given"
        return RunStatus.FAILED, f"its orchestration failed: {detail}"
    if runtime == "Completed":
        return RunStatus.FAILED, "its orchestration completed without recording the run's end"
    # A PENDING run is recorded before its orchestration starts; any later one has started.
    if runtime is None and (run.status != RunStatus.PENDING or now - run.created_at > START_GRACE):
        return RunStatus.FAILED, "its orchestration no longer exists (purged)"
    return None


def reconcile(services: Services, run: StoredRun, state: OrchestrationState) -> StoredRun:
    """The record, ended as its orchestration did when they disagree (and recounted)."""
    found = disagreement(run, state, utcnow())
    if found is None:
        return run
    target, reason = found

    def end(current: StoredRun) -> StoredRun | None:
        if not may_move(current.status, target, Actor.RECONCILE):
            return None
        log.warning("run %s was %s; %s", current.id, current.status.value, reason)
        return current.model_copy(
            update={
                "status": target,
                "error": (current.error or reason)[:ERROR_CHARS],
                "completed_at": utcnow(),
                "settling": True,
            }
        )

    services.runs.update(run.id, end)
    # Once every process's status cache has seen the end, each probe that writes a transcript
    # recounts; this counts those written before (as a cancel does).
    time.sleep(services.gates.staleness)
    return settle(services, run.id)


def settle(services: Services, run_id: str, *, final: bool = False) -> StoredRun:
    """Recount an ended run's progress from its transcripts; `final` once no call can still be
    in flight.

    The count is taken inside the ETag-checked update, after reading the record: of recounts
    racing each other, only one whose count began after every earlier stored one can be
    stored, and transcripts only ever appear, so the stored count never misses one.
    """

    def recount(current: StoredRun) -> StoredRun | None:
        if not current.settling:
            return None  # nothing read beyond the record
        progress = _counted(current.progress, services.transcripts.tally(run_id))
        return current.model_copy(
            update={"settling": not final, "progress": progress, "cost_usd": progress.cost_usd}
        )

    return services.runs.update(run_id, recount)


def _counted(progress: Progress, counted: dict[str, ModelProgress]) -> Progress:
    """`progress` with each model's work done replaced by what its transcripts count."""
    by_model = {
        model: counted.get(model, ModelProgress()).model_copy(update={"total": entry.total})
        for model, entry in progress.by_model.items()
    }
    return Progress.from_models(progress.total, by_model)


def settle_due(run: StoredRun, timeout_seconds: float, now: datetime) -> bool:
    """Whether every call in flight when the run ended has finished by `now`."""
    ended = run.completed_at or run.updated_at
    return now - ended > timedelta(seconds=timeout_seconds) + SETTLE_SLACK


async def sweep(services: Services, orchestrations: OrchestrationStates, limit: int) -> SweepReport:
    """One bounded pass: at most `limit` live runs checked against their orchestrations
    (newest first per status), then the settling runs recounted."""
    reconciled: list[Repair] = []
    checked = 0
    for status in sorted(ACTIVE):
        if checked >= limit:
            break
        page = await services.run_io(services.runs.list, limit - checked, None, status)
        for run in page.items:
            checked += 1
            state = await orchestrations.state(run.id)
            fixed = await services.run_io(reconcile, services, run, state)
            if fixed.status != run.status:
                reconciled.append(
                    Repair(
                        run_id=run.id, was=run.status, now=fixed.status, reason=fixed.error or ""
                    )
                )
    settled: list[str] = []
    still: list[str] = []
    page = await services.run_io(partial(services.runs.list, limit, None, settling=True))
    now = utcnow()
    for run in page.items:
        final = settle_due(run, services.settings.provider_timeout_seconds, now)
        await services.run_io(partial(settle, services, run.id, final=final))
        (settled if final else still).append(run.id)
    report = SweepReport(
        checked=checked, reconciled=reconciled, settled=settled, still_settling=still
    )
    if reconciled or settled:
        log.warning(
            "sweep: %d runs checked, %d reconciled, %d settled",
            checked,
            len(reconciled),
            len(settled),
            extra={"sweep": report.to_json_dict()},
        )
    return report


async def current_run(
    services: Services, orchestrations: OrchestrationStates, run_id: str
) -> StoredRun:
    """The run as it is now: a live run with its orchestration's progress, or reconciled at
    once when its orchestration has ended outside the API."""
    run = await services.run_io(services.runs.get, run_id)
    if run.status.is_terminal:
        return run
    try:
        state = await orchestrations.state(run_id)
    except Exception:
        log.warning("the orchestration of run %s is unavailable; showing the record", run_id)
        return run
    if disagreement(run, state, utcnow()) is not None:
        return await services.run_io(reconcile, services, run, state)
    return with_live_progress(run, state.custom_status)
