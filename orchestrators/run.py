"""The run orchestrator: one instance per run (instance id = run id).

It moves the run to RUNNING, plans it (the ledger its lanes claim work from), then ticks: each
tick the `tick_run` activity records progress, opens lanes for the free slots of each provider's
cap and of the summariser's (and starts them: lanes are orchestrations of their own, reporting
through the ledger), and makes the moves the run's work calls for (SUMMARIZING after the last
probe, COMPLETED after the last summary). Lanes are not sub-orchestrations: DTFx completes an
orchestration (or continues it as new) only once every task it started is done, and this one
continues as new every few ticks, so its history stays bounded.

Pause, resume and cancel change the run record first; this orchestrator follows the record:
* each tick waits for the run's next control event, `control-<n+1>`, beside its timer, both
  fresh in that yield (DESIGN.md rules 4 and 5); while PAUSED it waits for that event beside a
  long recheck timer, so even a lost event only delays the resume;
* lanes stop by themselves (a probe caught by the pause calls nothing and its lane hands its
  work back); after a resume the next tick opens lanes again;
* cancel terminates this instance and the lanes it names in its custom status (rule 7).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import azure.durable_functions as df

from evalruns import names
from evalruns.domain.statuses import RunStatus
from evalruns.lazy import lazy
from orchestrators.payloads import decode, encode, utc_now
from orchestrators.retries import INFRASTRUCTURE_RETRY

if TYPE_CHECKING:
    from evalruns.domain.orchestration import RunState, TickInput, TickResult

bp = df.Blueprint()
orchestration = lazy("evalruns.domain.orchestration")

# A control event nobody waits for is stored by the SDK with this warning on every replay; it
# is expected, not a lost completion.
warnings.filterwarnings(
    "ignore",
    message=f"Potential duplicate Task completion for TaskId: {names.CONTROL_EVENT_PREFIX}",
    category=UserWarning,
)

TICK = timedelta(seconds=1)
ENDGAME_TICK = timedelta(seconds=0.25)
TICKS_PER_GENERATION = 16
# While paused, the record is re-read this often even without an event; after this many
# re-reads the orchestration continues as new, so a long pause cannot grow its history.
PAUSE_RECHECK = timedelta(minutes=10)
PAUSE_RECHECKS_PER_GENERATION = 12

Steps = Generator[Any, Any, Any]


@bp.orchestration_trigger(context_name="context", orchestration=names.RUN_ORCHESTRATOR)
def run_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    state = decode(context.get_input(), orchestration.RunState)
    try:
        return (yield from _run(context, state))
    except Exception as error:
        reason = (str(error).strip().splitlines() or ["the orchestration failed"])[0]
        failed = orchestration.TickInput(
            run_id=state.run_id, target=RunStatus.FAILED, error=reason[:500]
        )
        yield from _tick(context, failed)
        raise


def _run(context: df.DurableOrchestrationContext, state: RunState) -> Steps:
    run_id = state.run_id
    if not state.planned:
        start = orchestration.TickInput(run_id=run_id, target=RunStatus.RUNNING)
        tick = yield from _while_paused(context, (yield from _tick(context, start)), start)
        if tick.status != RunStatus.RUNNING:
            return _continue_if_paused(context, state, tick)
        yield context.call_activity_with_retry(
            names.PLAN_ACTIVITY, INFRASTRUCTURE_RETRY, encode(orchestration.RunInput(run_id=run_id))
        )
        state = state.model_copy(update={"planned": True})
    look = orchestration.TickInput(run_id=run_id)
    tick = yield from _tick(context, look)
    for _ in range(TICKS_PER_GENERATION):
        if tick.status.is_terminal:
            return encode(tick.progress)
        if tick.status == RunStatus.PAUSED:
            tick = yield from _while_paused(context, tick, look)
            if tick.status == RunStatus.PAUSED:
                return _continue_if_paused(context, state, tick)
            continue
        command = context.wait_for_external_event(names.control_event(tick.control_seq + 1))
        timer = context.create_timer(utc_now(context) + (ENDGAME_TICK if tick.endgame else TICK))
        if (yield context.task_any([command, timer])) is command:
            timer.cancel()
        tick = yield from _tick(context, look)
    context.continue_as_new(encode(state))
    return None


def _tick(context: df.DurableOrchestrationContext, change: TickInput) -> Steps:
    """Look at the run (the `tick_run` activity) and show its progress as custom status."""
    raw = yield context.call_activity_with_retry(
        names.TICK_ACTIVITY, INFRASTRUCTURE_RETRY, encode(change)
    )
    tick = orchestration.TickResult.model_validate(raw)
    context.set_custom_status(orchestration.custom_status(tick.progress, tick.lanes))
    return tick


def _while_paused(
    context: df.DurableOrchestrationContext, tick: TickResult, change: TickInput
) -> Steps:
    """Wait for the run's next command while it is PAUSED, then tick with `change` (a move
    from PAUSED is refused, so it only applies once the run was resumed).

    Still PAUSED on return means: continue as new now (a long pause), then wait again.
    """
    for _ in range(PAUSE_RECHECKS_PER_GENERATION):
        if tick.status != RunStatus.PAUSED:
            return tick
        command = context.wait_for_external_event(names.control_event(tick.control_seq + 1))
        # While lanes still hand back their work, look again soon: the progress they report
        # is what the paused run shows.
        wait = TICK if tick.lanes else PAUSE_RECHECK
        recheck = context.create_timer(utc_now(context) + wait)
        if (yield context.task_any([command, recheck])) is command:
            recheck.cancel()
        tick = yield from _tick(context, change)
    return tick


def _continue_if_paused(
    context: df.DurableOrchestrationContext, state: RunState, tick: TickResult
) -> None:
    """Stop for a terminal status; continue as new for a pause that outlasted a generation."""
    if tick.status == RunStatus.PAUSED:
        context.continue_as_new(encode(state))
