"""The lane orchestrator: one slot of a provider's cap (or the summariser's), one call in flight.

It carries out what its state decides (`evalruns.domain.lanes`): claim work from the run's
ledger, call the probe or summary activity for one item, sleep on a durable timer until a retry
is due or the provider's pace allows, hand back what it holds and finish. Every yield is one
new task, so no lane ever waits on work another holds; it continues as new every few steps, so
its history stays bounded however long the run.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.lazy import lazy
from orchestrators.payloads import decode, encode, utc_now
from orchestrators.retries import INFRASTRUCTURE_RETRY

bp = df.Blueprint()
lanes = lazy("evalruns.domain.lanes")
ledger = lazy("evalruns.domain.ledger")
orchestration = lazy("evalruns.domain.orchestration")
scheduler = lazy("evalruns.domain.scheduler")

# Steps (calls, claims, sleeps) per generation before continue-as-new: about 4 history events
# each, so a generation's history stays near a hundred events.
STEPS_PER_GENERATION = 8
WORK_ACTIVITY = {"probe": names.PROBE_ACTIVITY, "summary": names.SUMMARISE_ACTIVITY}


@bp.orchestration_trigger(context_name="context", orchestration=names.LANE_ORCHESTRATOR)
def lane_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    lane = decode(context.get_input(), lanes.LaneState)
    for _ in range(STEPS_PER_GENERATION):
        action = lane.next_action(utc_now(context))
        if isinstance(action, lanes.Call):
            began = utc_now(context)
            work = orchestration.WorkInput(
                run_id=lane.run_id, items=list(action.items), max_attempts=lane.max_attempts
            )
            raw = yield context.call_activity_with_retry(
                WORK_ACTIVITY[lane.kind], INFRASTRUCTURE_RETRY, encode(work)
            )
            outcomes = [scheduler.Outcome.model_validate(outcome) for outcome in raw]
            ended = utc_now(context)
            lane.called(action, outcomes, ended, (ended - began).total_seconds())
        elif isinstance(action, lanes.Claim):
            claim = orchestration.ClaimInput(run_id=lane.run_id, request=action.request)
            raw = yield context.call_activity_with_retry(
                names.CLAIM_ACTIVITY, INFRASTRUCTURE_RETRY, encode(claim)
            )
            result = ledger.ClaimResult.model_validate(raw)
            lane.claimed(action.request, result, utc_now(context))
        elif isinstance(action, lanes.Sleep):
            yield context.create_timer(action.until)
        else:
            return None
    context.continue_as_new(encode(lane))
    return None
