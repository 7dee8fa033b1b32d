"""Run records agree with their orchestrations: an orchestration ended outside the API is
reconciled at the next read and by the sweeper, and an ended run's progress counts every
transcript written after it ended (calls that were in flight)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from devhost.durable import DurableEngine
from evalruns.domain.runs import RunStatus
from evalruns.services import Services
from evalruns.services import reconcile as reconcile_module
from evalruns.services.control import cancel_run
from evalruns.services.health import OrchestrationInstance, queue_health
from evalruns.services.reconcile import (
    OrchestrationState,
    current_run,
    disagreement,
    sweep,
)
from evalruns.storage.runs import StoredRun
from tests.orchestration.test_run_control import EngineOrchestrations, calls
from tests.support.runs import grid_definition, start_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def read(services: Services, engine: DurableEngine, run_id: str) -> StoredRun:
    return asyncio.run(current_run(services, EngineOrchestrations(engine), run_id))


def test_a_run_terminated_outside_the_api_reads_cancelled_at_once(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 2})
    run = start_run(services, engine, grid_definition(5, 4))
    engine.run_until(lambda: calls() >= 3)
    engine.terminate(run.id, "stopped from the management URL")
    engine.run_until_idle(advance_clock=False)
    assert services.runs.get(run.id).status == RunStatus.RUNNING  # the record does not know

    seen = read(services, engine, run.id)
    assert seen.status == RunStatus.CANCELLED
    assert "terminated outside the API" in (seen.error or "")
    assert "stopped from the management URL" in (seen.error or "")
    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.CANCELLED and stored.completed_at is not None
    assert stored.progress.done == len(list(services.transcripts.iterate(run.id)))
    # The lanes see the ended run and stop: no provider call after the reconcile.
    at_reconcile = calls()
    engine.run_until_idle()
    assert calls() == at_reconcile


class EngineInstances:
    """The health check's instance listing over the step engine."""

    def __init__(self, engine: DurableEngine) -> None:
        self.engine = engine

    async def instances(self, runtime_status: str) -> list[OrchestrationInstance]:
        views = [self.engine.status(i) for i in self.engine.instance_ids()]
        return [
            OrchestrationInstance(
                instance_id=view.instance_id,
                name=view.name,
                runtime_status=view.runtime_status,
                created_time=view.created_time,
                last_updated_time=view.last_updated_time,
            )
            for view in views
            if view is not None and view.runtime_status == runtime_status
        ]


def disagreeing(services: Services, engine: DurableEngine) -> int | None:
    report = asyncio.run(queue_health(EngineInstances(engine), services=services))
    return report.disagreeing_records


def test_the_sweeper_finds_a_terminated_run_and_reports_it(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 1})
    healthy = start_run(services, engine, grid_definition(3, 2))
    terminated = start_run(services, engine, grid_definition(3, 2))
    engine.run_until(lambda: calls() >= 2)
    engine.terminate(terminated.id, "by hand")
    engine.run_until_idle(advance_clock=False)

    assert disagreeing(services, engine) == 1  # health sees it before anything is fixed
    report = asyncio.run(sweep(services, EngineOrchestrations(engine), limit=50))
    assert report.checked == 2
    assert [(r.run_id, r.was, r.now) for r in report.reconciled] == [
        (terminated.id, RunStatus.RUNNING, RunStatus.CANCELLED)
    ]
    assert terminated.id in report.still_settling  # calls may still be in flight
    assert services.runs.get(healthy.id).status == RunStatus.RUNNING
    again = asyncio.run(sweep(services, EngineOrchestrations(engine), limit=50))
    assert again.reconciled == []  # nothing left to fix
    assert disagreeing(services, engine) == 0


def test_a_purged_orchestration_fails_its_run_but_a_young_pending_one_waits() -> None:
    from tests.integration.storage.test_listing import make_run

    now = make_run(0).created_at
    running = make_run(0, RunStatus.RUNNING)
    pending = make_run(0, RunStatus.PENDING)
    gone = OrchestrationState(None)
    assert disagreement(running, gone, now) == (
        RunStatus.FAILED,
        "its orchestration no longer exists (purged)",
    )
    assert disagreement(pending, gone, now + timedelta(seconds=5)) is None
    assert disagreement(pending, gone, now + timedelta(minutes=5)) is not None
    assert disagreement(running, OrchestrationState("Running"), now) is None
    failed = disagreement(running, OrchestrationState("Failed", output="boom"), now)
    assert failed == (RunStatus.FAILED, "its orchestration failed: boom")


def test_transcripts_written_after_a_cancel_are_counted_until_the_run_settles(
    configure: Callable[..., Services],
    engine: DurableEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = configure(provider_caps={"mock": 2}, provider_timeout_seconds=1)
    run = start_run(services, engine, grid_definition(5, 4))
    engine.run_until(lambda: calls() >= 4)
    cancelled = asyncio.run(
        cancel_run(services, EngineOrchestrations(engine), run.id, settle_seconds=0)
    )
    kept = list(services.transcripts.iterate(run.id))
    assert cancelled.progress.done == len(kept)  # the cancel's answer counts what exists

    # A call that was in flight finishes now and writes its transcript (as its probe would).
    late = kept[0].model_copy(update={"id": kept[0].id[:-3] + "009", "sample": 9})
    services.transcripts.put(late)
    report = asyncio.run(sweep(services, EngineOrchestrations(engine), limit=50))
    assert report.still_settling == [run.id]
    assert services.runs.get(run.id).progress.done == len(kept) + 1
    assert services.runs.get(run.id).settling

    monkeypatch.setattr(reconcile_module, "SETTLE_SLACK", timedelta(seconds=-5))
    final = asyncio.run(sweep(services, EngineOrchestrations(engine), limit=50))
    assert final.settled == [run.id]
    stored = services.runs.get(run.id)
    assert not stored.settling and stored.progress.done == len(kept) + 1
    assert stored.cost_usd == pytest.approx(sum(t.cost_usd for t in [*kept, late]))
    nothing = asyncio.run(sweep(services, EngineOrchestrations(engine), limit=50))
    assert nothing.settled == [] and nothing.still_settling == []
