"""Suspend and resume, on the step engine (exact histories) and on the real-time host.

DurableTask.Core v2.17.1 (``TaskOrchestrationExecutor.ProcessEvent``,
``TaskOrchestrationContext.HandleExecutionSuspendedEvent``/``HandleExecutionResumedEvent``):
while suspended every event but ``ExecutionResumed``/``ExecutionTerminated`` is held, unprocessed,
and replayed in order on resume; decisions made before the suspension wait for the resume. The
Azure Storage tracking store shows ``Suspended`` with the reason as output. ``SuspendAsync``
refuses an instance that is not Running/Pending/ContinuedAsNew and ``ResumeAsync`` one that is
not Suspended (``InvalidOperationException``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from devhost.durable import (
    DurableEngine,
    DurableHost,
    EventType,
    InstanceGoneError,
    InvalidOperationError,
    OrchestrationStatus,
    running_engine,
)
from tests.devhost.conftest import DEADLINE, run, until

pytestmark = [
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]

app = df.DFApp()


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="value")
async def slow_echo(value: Any) -> Any:
    await asyncio.sleep(0.2)
    return value


@app.orchestration_trigger(context_name="context")
def stepper(context: df.DurableOrchestrationContext) -> Any:
    activity = context.get_input() or "echo"
    first = yield context.call_activity(activity, 1)
    second = yield context.call_activity(activity, 2)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def listener(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.wait_for_external_event("item")
    second = yield context.wait_for_external_event("item")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def napper(context: df.DurableOrchestrationContext) -> Any:
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    return "woke"


@pytest.fixture
def engine() -> Iterator[DurableEngine]:
    with running_engine(app, seed=11) as instance:
        yield instance


def kinds(engine: DurableEngine, instance_id: str) -> list[EventType]:
    return [EventType(e["EventType"]) for e in engine.history(instance_id)]


# -- the step engine: exact semantics --------------------------------------------------------------


def test_a_completion_that_arrives_while_suspended_waits_for_the_resume(
    engine: DurableEngine,
) -> None:
    instance_id = engine.start("stepper")
    engine.run_one()  # first episode: echo(1) is scheduled
    engine.suspend(instance_id, "hold on")

    engine.run_until_idle()  # echo(1) runs; its result arrives after the suspension

    status = engine.status(instance_id)
    assert status is not None
    assert (status.runtime_status, status.output) == ("Suspended", "hold on")
    assert [call.input for call in engine.activity_calls("echo")] == [1]
    history = kinds(engine, instance_id)
    assert history.index(EventType.EXECUTION_SUSPENDED) < history.index(EventType.TASK_COMPLETED)
    assert history.count(EventType.TASK_SCHEDULED) == 1  # echo(2) is not scheduled

    engine.resume(instance_id, "carry on")
    done = engine.run_until_complete(instance_id)

    assert (done.runtime_status, done.output) == ("Completed", [1, 2])
    assert EventType.EXECUTION_RESUMED in kinds(engine, instance_id)
    (resumed,) = [
        e for e in engine.history(instance_id) if e["EventType"] == EventType.EXECUTION_RESUMED
    ]
    assert resumed["Reason"] == "carry on"


def test_events_raised_while_suspended_are_delivered_in_order_after_the_resume(
    engine: DurableEngine,
) -> None:
    instance_id = engine.start("listener")
    engine.run_until_idle()
    engine.suspend(instance_id, None)
    engine.run_until_idle()
    engine.raise_event(instance_id, "item", "first", encoding="json")
    engine.raise_event(instance_id, "item", "second", encoding="json")

    engine.run_until_idle()
    assert engine.status(instance_id).runtime_status == "Suspended"  # type: ignore[union-attr]

    engine.resume(instance_id)
    assert engine.run_until_complete(instance_id).output == ["first", "second"]


def test_a_timer_that_fires_while_suspended_is_held(engine: DurableEngine) -> None:
    instance_id = engine.start("napper")
    engine.run_until_idle(advance_clock=False)
    engine.suspend(instance_id)
    engine.run_until_idle()  # the clock jumps; the timer fires into a suspended instance

    assert EventType.TIMER_FIRED in kinds(engine, instance_id)
    assert engine.status(instance_id).runtime_status == "Suspended"  # type: ignore[union-attr]

    engine.resume(instance_id)
    assert engine.run_until_complete(instance_id).output == "woke"


def test_a_suspended_instance_can_be_terminated(engine: DurableEngine) -> None:
    instance_id = engine.start("listener")
    engine.run_until_idle()
    engine.suspend(instance_id, "paused")
    engine.run_until_idle()

    engine.terminate(instance_id, "cancelled")
    done = engine.run_until_complete(instance_id)

    assert (done.runtime_status, done.output) == ("Terminated", "cancelled")


def test_suspend_and_resume_refuse_the_wrong_states(engine: DurableEngine) -> None:
    instance_id = engine.start("listener")
    engine.run_until_idle()

    with pytest.raises(InvalidOperationError, match="because instance is in the Running state"):
        engine.resume(instance_id)
    engine.suspend(instance_id)
    engine.run_until_idle()
    with pytest.raises(InvalidOperationError, match="in the Suspended state"):
        engine.suspend(instance_id)
    engine.terminate(instance_id)
    engine.run_until_idle()
    with pytest.raises(InstanceGoneError):
        engine.suspend(instance_id)


def test_a_pending_instance_can_be_suspended_before_its_first_episode(
    engine: DurableEngine,
) -> None:
    instance_id = engine.start("stepper")
    engine.suspend(instance_id, "not yet")

    engine.run_until_idle()

    assert engine.status(instance_id).runtime_status == "Suspended"  # type: ignore[union-attr]
    assert engine.activity_calls("echo") == []  # the first decision waits for the resume
    engine.resume(instance_id)
    assert engine.run_until_complete(instance_id).output == [1, 2]


def answered(host: DurableHost, instance_id: str) -> bool:
    """The first activity's result reached the instance after it was suspended."""
    kinds = [e["EventType"] for e in host.history(instance_id)]
    return (
        EventType.EXECUTION_SUSPENDED in kinds
        and EventType.TASK_COMPLETED in kinds[kinds.index(EventType.EXECUTION_SUSPENDED) :]
    )


# -- the real-time host ----------------------------------------------------------------------------


def test_the_host_holds_work_while_suspended_and_resumes_it() -> None:
    async def scenario() -> None:
        async with DurableHost(
            app, max_concurrent_activities=4, max_concurrent_orchestrators=2
        ) as host:
            instance_id = host.start_new("stepper", "slow_echo")
            await host.wait_for_status(instance_id, {OrchestrationStatus.RUNNING}, DEADLINE)
            host.suspend(instance_id, "hold on")
            suspended = await host.wait_for_status(
                instance_id, {OrchestrationStatus.SUSPENDED}, DEADLINE
            )
            assert suspended.output == "hold on"

            await until(lambda: answered(host, instance_id), "the first result")
            snapshot = host.snapshot(instance_id)
            assert snapshot is not None and snapshot.status is OrchestrationStatus.SUSPENDED
            assert len(host.activity_calls("slow_echo")) == 1
            scheduled = [
                e for e in host.history(instance_id) if e["EventType"] == EventType.TASK_SCHEDULED
            ]
            assert len(scheduled) == 1  # the orchestrator did not run on the result

            await asyncio.to_thread(host.resume, instance_id, "carry on")
            done = await host.wait_for_completion(instance_id, DEADLINE)
            assert json.loads(done.output or "null") == [1, 2]

    run(scenario())
