"""Pause, resume, cancel and re-run through the real orchestrators on the step engine, where
every awkward moment (an event before the wait, duplicates, a storm) can be placed exactly."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from devhost.durable import DurableEngine, InstanceNotFoundError
from evalruns import names
from evalruns.domain.runs import RerunRequest, RunStatus
from evalruns.domain.transcripts import TranscriptStatus
from evalruns.errors import Conflict
from evalruns.providers.mock import MockProvider
from evalruns.services import Services
from evalruns.services.control import cancel_run, create_rerun, pause_run, resume_run
from evalruns.services.reconcile import OrchestrationState
from orchestrators.run import PAUSE_RECHECK
from tests.support.runs import grid_definition, probe_calls, start_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


class EngineOrchestrations:
    """Run control's Durable client operations, on the step engine."""

    def __init__(self, engine: DurableEngine) -> None:
        self.engine = engine

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.engine.raise_event(instance_id, name, data)

    async def terminate(self, instance_id: str, reason: str) -> None:
        with contextlib.suppress(InstanceNotFoundError):
            self.engine.terminate(instance_id, reason)

    async def state(self, instance_id: str) -> OrchestrationState:
        status = self.engine.status(instance_id)
        if status is None:
            return OrchestrationState(None)
        return OrchestrationState(status.runtime_status, status.custom_status, status.output)


def calls() -> int:
    return probe_calls()


def pause(services: Services, engine: DurableEngine, run_id: str) -> None:
    asyncio.run(pause_run(services, EngineOrchestrations(engine), run_id))


def resume(services: Services, engine: DurableEngine, run_id: str) -> None:
    asyncio.run(resume_run(services, EngineOrchestrations(engine), run_id))


def lanes_of(engine: DurableEngine, run_id: str) -> list[str]:
    return [i for i in engine.instance_ids() if i.startswith(f"{run_id}:")]


def ticks(engine: DurableEngine) -> int:
    """`tick_run` activities so far: the orchestrator reads the record at every tick."""
    return len(engine.activity_calls(names.TICK_ACTIVITY))


def assert_every_job_once(services: Services, run_id: str, jobs: int) -> None:
    transcripts = list(services.transcripts.iterate(run_id))
    assert len(transcripts) == jobs
    assert {t.status for t in transcripts} == {TranscriptStatus.SUCCEEDED}
    assert calls() == jobs  # no job reached the provider twice


def test_pause_mid_run_stops_new_calls_and_resume_finishes_every_job_once(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 2})
    run = start_run(services, engine, grid_definition(5, 4))
    engine.run_until(lambda: calls() >= 6)
    pause(services, engine, run.id)
    at_pause = calls()
    # While paused, time stands still: the orchestrator's recheck timer must not fire.
    engine.run_until_idle(advance_clock=False)
    # Probes already running when the pause landed may finish; none starts afterwards.
    assert calls() - at_pause <= 0
    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.PAUSED
    assert stored.progress.completed == at_pause  # the snapshot shows the work done
    status = engine.status(run.id)
    assert status is not None and status.runtime_status == "Running"

    resume(services, engine, run.id)
    # The resume event wakes the orchestrator: lanes start again at once, before any timer.
    engine.run_until_idle(advance_clock=False)
    assert calls() == 20
    resumed_at = engine.clock.now()
    engine.run_until_complete(run.id)
    assert engine.clock.now() - resumed_at < PAUSE_RECHECK  # no recheck timer was needed
    assert services.runs.get(run.id).status == RunStatus.COMPLETED
    assert_every_job_once(services, run.id, 20)


def test_pause_before_the_orchestrator_starts(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    run = start_run(services, engine, grid_definition(3))
    pause(services, engine, run.id)  # the event arrives before any wait exists
    engine.run_until_idle(advance_clock=False)
    assert calls() == 0
    assert services.runs.get(run.id).status == RunStatus.PAUSED
    assert engine.activity_calls(names.PLAN_ACTIVITY) == []  # it waits before planning
    resume(services, engine, run.id)
    engine.run_until_complete(run.id)
    assert_every_job_once(services, run.id, 3)


def test_pause_and_resume_both_before_the_orchestrator_waits(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 1})
    run = start_run(services, engine, grid_definition(4))
    engine.run_until(lambda: calls() >= 1)
    pause(services, engine, run.id)
    resume(services, engine, run.id)
    engine.run_until_complete(run.id)
    assert services.runs.get(run.id).status == RunStatus.COMPLETED
    assert_every_job_once(services, run.id, 4)


def test_duplicate_and_stale_events_change_nothing(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 1})
    run = start_run(services, engine, grid_definition(5))
    engine.run_until(lambda: calls() >= 2)
    pause(services, engine, run.id)
    engine.run_until_idle(advance_clock=False)
    lanes = lanes_of(engine, run.id)
    # Replays of the pause event, and a resume event nobody sent through the API, are ignored:
    # the orchestrator follows the record, which still says PAUSED.
    engine.raise_event(run.id, names.control_event(1), {"action": "pause"})
    engine.raise_event(run.id, names.control_event(2), {"action": "resume"})
    engine.run_until_idle(advance_clock=False)
    assert services.runs.get(run.id).status == RunStatus.PAUSED
    assert lanes_of(engine, run.id) == lanes  # no lane was started
    before = calls()
    engine.run_until_idle(advance_clock=False)
    assert calls() == before
    resume(services, engine, run.id)
    engine.run_until_complete(run.id)
    assert_every_job_once(services, run.id, 5)


def test_a_storm_of_commands_leaves_the_run_consistent(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 2})
    run = start_run(services, engine, grid_definition(4, 4))
    orchestrations = EngineOrchestrations(engine)
    accepted, refused = 0, 0
    for step in range(40):
        engine.run_one()
        command = (pause_run, resume_run)[step % 2] if step % 3 else pause_run
        try:
            asyncio.run(command(services, orchestrations, run.id))
            accepted += 1
        except Conflict:
            refused += 1
    assert accepted and refused
    if services.runs.get(run.id).status == RunStatus.PAUSED:
        resume(services, engine, run.id)
    engine.run_until_complete(run.id)
    assert services.runs.get(run.id).status == RunStatus.COMPLETED
    assert_every_job_once(services, run.id, 16)


def test_illegal_transitions_are_conflicts(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    run = start_run(services, engine, grid_definition(2))
    with pytest.raises(Conflict) as resume_running:
        resume(services, engine, run.id)
    assert resume_running.value.current_status == "PENDING"
    pause(services, engine, run.id)
    with pytest.raises(Conflict):
        pause(services, engine, run.id)
    resume(services, engine, run.id)
    engine.run_until_complete(run.id)
    for command in (pause_run, resume_run, cancel_run):
        with pytest.raises(Conflict) as refused:
            asyncio.run(command(services, EngineOrchestrations(engine), run.id))
        assert refused.value.current_status == "COMPLETED"


def test_cancel_terminates_the_run_and_its_lanes_and_keeps_transcripts(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 2})
    run = start_run(services, engine, grid_definition(5, 4))
    engine.run_until(lambda: calls() >= 3)
    asyncio.run(cancel_run(services, EngineOrchestrations(engine), run.id, settle_seconds=0))
    at_cancel = calls()
    engine.run_until_idle()
    assert calls() == at_cancel  # no call starts after the cancel
    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.CANCELLED and stored.completed_at is not None
    parent = engine.status(run.id)
    assert parent is not None and parent.runtime_status == "Terminated"
    lanes = lanes_of(engine, run.id)
    assert lanes
    assert {engine.status(i).runtime_status for i in lanes} <= {"Terminated", "Completed"}
    assert "Terminated" in {engine.status(i).runtime_status for i in lanes}
    kept = list(services.transcripts.iterate(run.id))
    assert len(kept) == at_cancel


def test_cancel_from_pending_and_from_paused(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    pending = start_run(services, engine, grid_definition(2))
    asyncio.run(cancel_run(services, EngineOrchestrations(engine), pending.id, settle_seconds=0))
    paused = start_run(services, engine, grid_definition(2))
    pause(services, engine, paused.id)
    engine.run_until_idle(advance_clock=False)
    asyncio.run(cancel_run(services, EngineOrchestrations(engine), paused.id, settle_seconds=0))
    engine.run_until_idle()
    for run_id in (pending.id, paused.id):
        assert services.runs.get(run_id).status == RunStatus.CANCELLED
        status = engine.status(run_id)
        assert status is not None and status.runtime_status == "Terminated"
    assert calls() == 0


def test_rerun_of_failed_jobs_calls_only_those_and_is_complete(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(mock_failure_rate=0.4, mock_seed=5)
    parent = start_run(services, engine, grid_definition(5, 4))
    engine.run_until_complete(parent.id)
    failed = [t.id for t in services.transcripts.iterate(parent.id) if t.error]
    assert 0 < len(failed) < 20

    configure_again = services.settings.model_copy(update={"mock_failure_rate": 0.0})
    from evalruns.services import reset_services

    services = Services(configure_again)
    reset_services(services)
    MockProvider.calls.clear()
    child = create_rerun(services, parent.id, RerunRequest(only_failed=True))
    from evalruns.domain.orchestration import RunState

    engine.start(names.RUN_ORCHESTRATOR, RunState(run_id=child.id).to_json_dict(), child.id)
    engine.run_until_complete(child.id)
    assert calls() == len(failed)  # only the failed jobs reached the provider
    done = services.runs.get(child.id)
    assert done.status == RunStatus.COMPLETED
    assert done.progress.completed == 20 and done.progress.failed == 0
    transcripts = list(services.transcripts.iterate(child.id))
    assert len(transcripts) == 20
    assert Counter(t.status for t in transcripts) == {TranscriptStatus.SUCCEEDED: 20}
    assert done.parent_run_id == parent.id and done.only_failed
    assert services.runs.get(parent.id).child_run_ids == [child.id]


def test_rerun_with_another_model_version(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    parent = start_run(services, engine, grid_definition(3))
    engine.run_until_complete(parent.id)
    child = create_rerun(
        services, parent.id, RerunRequest(models=["mock-small@mock-small-20250101"])
    )
    assert child.config.models[0].version == "mock-small-20250101"
    assert child.config.sample_seed == parent.config.sample_seed
    from evalruns.domain.orchestration import RunState

    engine.start(names.RUN_ORCHESTRATOR, RunState(run_id=child.id).to_json_dict(), child.id)
    engine.run_until_complete(child.id)
    versions = {t.model_version for t in services.transcripts.iterate(child.id)}
    assert versions == {"mock-small-20250101"}
    scenarios = lambda run_id: {t.scenario_id for t in services.transcripts.iterate(run_id)}  # noqa: E731
    assert scenarios(child.id) == scenarios(parent.id)


def test_a_pause_while_rejected_jobs_wait_takes_effect_at_once(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    """Lanes sleeping until a retry is due call nothing once the run is paused, however long
    past the due time, and the retries wait for the resume."""
    services = configure(
        provider_caps={"mock": 2}, mock_rate_limit_rate=0.5, mock_seed=7, max_attempts=20
    )
    run = start_run(services, engine, grid_definition(4, 2))
    engine.run_until_idle(advance_clock=False)  # lanes wait for retries or rest; time stands
    first_round = calls()
    assert first_round > 0 and len(list(services.transcripts.iterate(run.id))) < 8
    lanes = lanes_of(engine, run.id)
    assert sum(engine.instance(lane).timers_created for lane in lanes) > 0, "retries wait"

    before = ticks(engine)
    pause(services, engine, run.id)
    engine.run_until_idle(advance_clock=False)
    assert services.runs.get(run.id).status == RunStatus.PAUSED
    assert ticks(engine) > before  # the command woke the run orchestrator, not a timer
    engine.advance_clock(timedelta(minutes=5))  # past every retry's due time: still no call
    engine.run_until_idle(advance_clock=False)
    assert calls() == first_round

    resume(services, engine, run.id)
    engine.run_until_complete(run.id)
    transcripts = list(services.transcripts.iterate(run.id))
    assert {t.status for t in transcripts} == {TranscriptStatus.SUCCEEDED}
    assert max(t.attempts for t in transcripts) > 1
    assert calls() == sum(t.attempts for t in transcripts)  # every call is one attempt
