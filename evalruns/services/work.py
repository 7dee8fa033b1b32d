"""Lanes' work: claiming from the run's ledger, and the run orchestrator's tick.

* `claim`: a lane's claim or release against the ledger (ETag-checked, retried on conflict).
* `tick`: the run orchestrator's look at the run: lanes to open, moves to make, progress.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta

from evalruns.domain.base import utcnow
from evalruns.domain.jobspace import JobSpace
from evalruns.domain.ledger import ClaimRequest, ClaimResult, Gate, Ledger
from evalruns.domain.orchestration import (
    LaneStart,
    TickInput,
    TickResult,
    final_status,
    merge_progress,
)
from evalruns.domain.runs import PAUSED_FOR_BUDGET, Progress, RunStatus
from evalruns.errors import Conflict
from evalruns.services.container import Services
from evalruns.services.runs import move_run, record_progress

log = logging.getLogger(__name__)

LEDGER_ATTEMPTS = 50
CONFLICT_BACKOFF_SECONDS = (0.002, 0.02)
# A running run's progress is written to its record at most this often (and on every move).
SNAPSHOT_SECONDS = 3.0


async def job_space(services: Services, run_id: str) -> JobSpace:
    """The run's jobs, from this process's cache (read from storage on first use)."""
    space = services.job_spaces.cached(run_id)
    return space if space is not None else await services.run_io(services.job_spaces.get, run_id)


async def gate(services: Services, run_id: str) -> Gate:
    """The run's status and budget, at most `EVALRUNS_STATUS_CACHE_SECONDS` old."""
    cached = services.gates.cached(run_id)
    return cached if cached is not None else await services.run_io(services.gates.get, run_id)


def claim(services: Services, run_id: str, request: ClaimRequest) -> ClaimResult:
    """Apply a lane's claim (or release) to the run's ledger; a redelivered one is answered
    as the first time and changes nothing.

    Claims of one process take turns on the run's ledger (the ETag still decides between
    processes): a read-modify-write another thread of this process would only spoil is not
    attempted."""
    space = services.job_spaces.get(run_id)
    with services.ledger_turns.hold(run_id):
        return _claim(services, run_id, request, space)


def _claim(services: Services, run_id: str, request: ClaimRequest, space: JobSpace) -> ClaimResult:
    for _ in range(LEDGER_ATTEMPTS):
        stored = services.ledgers.get(run_id)
        if stored is None:
            raise LookupError(f"run {run_id} has no ledger: it was never planned")
        ledger, etag = stored
        answered = ledger.answered(request)
        if answered is not None:
            return answered
        result = ledger.claim(request, services.gates.get(run_id), request.at, space.ordinal_of)
        if Ledger.changes_nothing(request, result):
            return result
        try:
            services.ledgers.replace(run_id, ledger, etag)
        except Conflict:
            time.sleep(random.uniform(*CONFLICT_BACKOFF_SECONDS))
            continue
        progress = merge_progress(Progress.planned(space.config.jobs_by_model), ledger.progress)
        if result.stop == "budget" and ledger.reserved_usd() == 0:
            # Not one more job fits the budget and none is in flight: pause, do not spend.
            move_run(
                services, run_id, RunStatus.PAUSED, progress=progress, reason=PAUSED_FOR_BUDGET
            )
        elif request.release and not ledger.active("probe"):
            # The last probe lane has stopped: the record shows every job that was done.
            record_progress(services, run_id, progress)
        return result
    raise Conflict(f"the ledger of run {run_id} is too busy; the claim is retried")


def tick(services: Services, request: TickInput) -> TickResult:
    """The run orchestrator's regular look at its run."""
    run_id = request.run_id
    run = services.runs.get(run_id)
    if request.target is not None:
        run = move_run(services, run_id, request.target, error=request.error)
    planned = Progress.planned(run.config.jobs_by_model)
    stored = services.ledgers.get(run_id)
    if stored is None or run.status.is_terminal:
        return TickResult(
            run_id=run_id,
            status=run.status,
            control_seq=run.control_seq,
            progress=run.progress,
            max_attempts=services.settings.max_attempts,
        )
    ledger = _open_lanes(services, run_id, run.status, stored)
    progress = merge_progress(planned, ledger.progress)
    target = _next_status(run.status, ledger, progress)
    if target is not None:
        error = f"all {progress.total} jobs failed" if target == RunStatus.FAILED else None
        run = move_run(services, run_id, target, progress=progress, error=error)
    elif progress != run.progress and (
        run.status != RunStatus.RUNNING or _snapshot_due(run.updated_at)
    ):
        run = record_progress(services, run_id, progress)
    groups_left = any(ledger.fresh_left(name) for name in ledger.groups)
    return TickResult(
        run_id=run_id,
        status=run.status,
        control_seq=run.control_seq,
        progress=progress,
        start=[
            LaneStart(lane_id=lane_id, kind=lane.kind)
            for lane_id, lane in ledger.lanes.items()
            if lane.seq == 0 and not lane.finished
        ],
        lanes=ledger.active_lane_ids(),
        max_attempts=services.settings.max_attempts,
        endgame=not groups_left,
    )


def _open_lanes(
    services: Services, run_id: str, status: RunStatus, stored: tuple[Ledger, str]
) -> Ledger:
    """Open lanes for the free slots that have work (none unless RUNNING or SUMMARIZING)."""
    for _ in range(LEDGER_ATTEMPTS):
        ledger, etag = stored
        opened = ledger.open_lanes(run_id, status)
        if not opened:
            return ledger
        try:
            services.ledgers.replace(run_id, ledger, etag)
        except Conflict:
            time.sleep(random.uniform(*CONFLICT_BACKOFF_SECONDS))
            again = services.ledgers.get(run_id)
            assert again is not None
            stored = again
            continue
        return ledger
    raise Conflict(f"the ledger of run {run_id} is too busy; the tick is retried")


def _next_status(status: RunStatus, ledger: Ledger, progress: Progress) -> RunStatus | None:
    """The move the run's work calls for: its last probe done, its last summary written."""
    if status == RunStatus.RUNNING and ledger.probes_done:
        if final_status(progress) == RunStatus.FAILED:
            return RunStatus.FAILED
        return RunStatus.SUMMARIZING
    if status == RunStatus.SUMMARIZING and ledger.summaries_done:
        return final_status(progress)
    return None


def _snapshot_due(updated_at: datetime) -> bool:
    return utcnow() - updated_at >= timedelta(seconds=SNAPSHOT_SECONDS)
