"""Run control: pause, resume, cancel and re-run.

The run record is the truth. A command first changes the record (with an ETag, so two
commands never both win), then signals the orchestration. Probes check the status before every
provider call through their process's cache, at most `EVALRUNS_STATUS_CACHE_SECONDS` old; a
pause or cancel answers once that long has passed, so no call starts after the answer. The
orchestration wakes on the event and re-reads the record, so a lost or stale event can stall
nothing for long.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Protocol

from evalruns.domain.base import utcnow
from evalruns.domain.orchestration import CustomStatus
from evalruns.domain.runs import (
    PAUSED_BY_USER,
    Actor,
    Progress,
    RerunRequest,
    Run,
    RunPatch,
    RunStatus,
    command_target,
)
from evalruns.errors import Conflict, FieldError, InvalidInput
from evalruns.names import control_event
from evalruns.services.container import Services
from evalruns.services.reconcile import OrchestrationState, settle
from evalruns.services.runs import resolve_models
from evalruns.storage.runs import StoredRun

log = logging.getLogger(__name__)
STOPPED = {None, "Terminated", "Completed", "Failed"}
TERMINATE_WAIT_SECONDS = 5.0
TERMINATE_POLL_SECONDS = 0.2


class Orchestrations(Protocol):
    """The Durable client operations run control needs (implemented by the HTTP layer)."""

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None: ...

    async def terminate(self, instance_id: str, reason: str) -> None: ...

    async def state(self, instance_id: str) -> OrchestrationState: ...


async def pause_run(services: Services, orchestrations: Orchestrations, run_id: str) -> Run:
    """Pause the run; once this returns, no provider call for it starts."""
    run = await _command(services, run_id, Actor.PAUSE)
    await orchestrations.raise_event(run_id, control_event(run.control_seq), {"action": "pause"})
    await asyncio.sleep(services.gates.staleness)
    return run.public()


async def resume_run(services: Services, orchestrations: Orchestrations, run_id: str) -> Run:
    run = await _command(services, run_id, Actor.RESUME)
    await orchestrations.raise_event(run_id, control_event(run.control_seq), {"action": "resume"})
    return run.public()


async def cancel_run(
    services: Services,
    orchestrations: Orchestrations,
    run_id: str,
    settle_seconds: float = TERMINATE_WAIT_SECONDS,
) -> Run:
    """Mark the run CANCELLED, then terminate its orchestration and its lanes.

    Terminate does not cascade, so the lanes are terminated one by one (the orchestration
    names those running in its custom status). Calls already in flight finish and are
    recorded; probes that have not started see the cancelled run and do not call a provider.
    """
    started = time.monotonic()
    await _command(services, run_id, Actor.CANCEL)
    reason = "cancelled by the user"
    custom = (await orchestrations.state(run_id)).custom_status
    await orchestrations.terminate(run_id, reason)
    terminated: set[str] = set()
    for lane_id in _lanes(custom):
        await orchestrations.terminate(lane_id, reason)
        terminated.add(lane_id)
    # Lanes the run started while the first read was on its way show once it has stopped.
    custom = await _custom_status_once_stopped(orchestrations, run_id, settle_seconds)
    for lane_id in set(_lanes(custom)) - terminated:
        await orchestrations.terminate(lane_id, reason)
        terminated.add(lane_id)
    log.info("run %s cancelled; %d lanes terminated", run_id, len(terminated))
    await asyncio.sleep(max(0.0, services.gates.staleness - (time.monotonic() - started)))
    # Every probe finishing from now on sees the cancel and recounts; this counts the rest.
    return (await services.run_io(settle, services, run_id)).public()


def _lanes(custom_status: Any) -> list[str]:
    """The lanes the run names in its custom status as running."""
    status = CustomStatus.read(custom_status)
    return status.lanes if status is not None else []


async def _custom_status_once_stopped(
    orchestrations: Orchestrations, run_id: str, settle_seconds: float
) -> Any:
    """The custom status once the termination has taken effect, so no batch started after
    it was read (or after `settle_seconds`, if the runtime is slow to apply it)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        state = await orchestrations.state(run_id)
        if state.runtime_status in STOPPED or time.monotonic() > deadline:
            return state.custom_status
        await asyncio.sleep(TERMINATE_POLL_SECONDS)


async def _command(services: Services, run_id: str, actor: Actor) -> StoredRun:
    def change(run: StoredRun) -> StoredRun:
        status = command_target(actor, run.status)
        update: dict[str, Any] = {
            "status": status,
            "control_seq": run.control_seq + 1,
            "pause_reason": PAUSED_BY_USER if status == RunStatus.PAUSED else None,
        }
        if status.is_terminal:
            # Calls in flight finish after this: the run's progress is recounted as they do.
            update |= {"completed_at": utcnow(), "settling": True}
        return run.model_copy(update=update)

    return await services.run_io(services.runs.update, run_id, change)


def create_rerun(services: Services, parent_id: str, request: RerunRequest) -> StoredRun:
    """A new PENDING run of the parent's definition snapshot, sampling and settings.

    `onlyFailed` executes only the parent's failed (or never finished) jobs with the parent's
    models; the plan carries the successful transcripts over without calling any provider.
    """
    parent = services.runs.get(parent_id)
    config = parent.config
    if request.models is not None:
        if request.only_failed:
            raise InvalidInput(
                "onlyFailed re-runs the parent's failed jobs with the parent's models: "
                "leave out 'models', or leave out 'onlyFailed' to run everything again",
                [FieldError(("body", "models"), "not allowed with onlyFailed")],
            )
        config = config.model_copy(update={"models": resolve_models(services, request.models)})
    now = utcnow()
    kind = "re-run of failed jobs" if request.only_failed else "re-run"
    child = StoredRun(
        id=uuid.uuid4().hex,
        name=request.name or f"{parent.name} ({kind})",
        definition_id=parent.definition_id,
        definition_name=parent.definition_name,
        status=RunStatus.PENDING,
        config=config,
        progress=Progress.planned(config.jobs_by_model),
        created_at=now,
        updated_at=now,
        parent_run_id=parent.id,
        only_failed=request.only_failed,
        definition=parent.definition,
    )
    services.runs.create(child)

    def add_child(run: StoredRun) -> StoredRun:
        return run.model_copy(update={"child_run_ids": [*run.child_run_ids, child.id]})

    services.runs.update(parent.id, add_child)
    log.info("run %s re-runs %s", child.id, parent.id, extra={"run_id": child.id})
    return child


def patch_run(services: Services, run_id: str, patch: RunPatch) -> Run:
    """Change a run's budget or name. A raised budget takes effect when the run is resumed."""

    def change(run: StoredRun) -> StoredRun:
        if run.status.is_terminal:
            raise Conflict(
                f"the run is {run.status.value}; a finished run cannot be changed",
                current_status=run.status.value,
            )
        return run.model_copy(update=patch.model_dump(exclude_unset=True, by_alias=False))

    return services.runs.update(run_id, change).public()
