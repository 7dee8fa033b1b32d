"""The in-process Durable engine, on a small fixture app defined here (not evalruns code).

Each test drives orchestrators through the SDK's real replay code and checks an outcome the
Durable extension would produce - including its less convenient behaviours (stalls, dropped
events, instances that stay Running while a timer is outstanding).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Coroutine, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.durable_functions.models.utils import http_utils

from devhost.durable import (
    DurableEngine,
    EventType,
    OrchestrationStuck,
    Step,
    app_functions,
    running_engine,
)

T = TypeVar("T")

pytestmark = [
    # The SDK warns when an event arrives before its wait (it defers it); expected here.
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]


class Runner(Protocol):
    """Runs a client coroutine to completion on the test's event loop."""

    def __call__(self, coroutine: Coroutine[Any, Any, T]) -> T: ...


app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

FLAKY_FAILURES: dict[str, int] = {}
REPLAY_LOG: list[tuple[str, bool]] = []
DRIFT: dict[str, str] = {}


# -- activities --------------------------------------------------------------------------------


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="value")
async def async_echo(value: Any) -> Any:
    await asyncio.sleep(0)
    return {"async": value}


@app.activity_trigger(input_name="value")
def context_probe(value: Any, context: func.Context) -> dict[str, Any]:
    """What the worker's ``func.Context`` tells an activity (the one HTTP functions get)."""
    return {
        "value": value,
        "function_name": context.function_name,
        "function_directory": context.function_directory,
        "trace_parent": context.trace_context.trace_parent,
        "retry_count": context.retry_context.retry_count,
        "same_invocation": context.thread_local_storage.invocation_id == context.invocation_id,
    }


@app.activity_trigger(input_name="message")
def explode(message: str) -> None:
    raise ValueError(message)


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    remaining = FLAKY_FAILURES.get(key, 0)
    if remaining:
        FLAKY_FAILURES[key] = remaining - 1
        raise RuntimeError(f"transient failure for {key}")
    return f"ok:{key}"


# -- orchestrators -----------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("echo", "one")
    second = yield context.call_activity("async_echo", first)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def probe_context(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("context_probe", "x"))


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    count = context.get_input()
    squares = yield context.task_all([context.call_activity("echo", i * i) for i in range(count)])
    return {"squares": squares, "total": sum(squares)}


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext) -> Any:
    cancel_timer = context.get_input()
    timer = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    work = context.call_activity("echo", "fast")
    winner = yield context.task_any([timer, work])
    if winner is work and cancel_timer:
        timer.cancel()
    return winner.result if winner is work else "timer"


@app.orchestration_trigger(context_name="context")
def activity_failure(context: df.DurableOrchestrationContext) -> Any:
    catch = context.get_input()
    try:
        yield context.call_activity("explode", "kaboom")
    except Exception as error:
        if not catch:
            raise
        return f"caught: {error}"
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def with_retry(context: df.DurableOrchestrationContext) -> Any:
    key, attempts = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=5000, max_number_of_attempts=attempts
    )
    result = yield context.call_activity_with_retry("flaky", options, key)
    return result


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Any:
    names = context.get_input()
    explicit = [
        context.call_sub_orchestrator("child", name, instance_id=f"{context.instance_id}-{name}")
        for name in names
    ]
    generated = context.call_sub_orchestrator("child", "anonymous")
    results = yield context.task_all([*explicit, generated])
    return results


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext) -> Any:
    name = context.get_input()
    greeting = yield context.call_activity("echo", f"hello {name}")
    return {"greeting": greeting, "parent": context.parent_instance_id}


@app.orchestration_trigger(context_name="context")
def guardian(context: df.DurableOrchestrationContext) -> Any:
    try:
        result = yield context.call_sub_orchestrator(
            "two_waits", None, instance_id=f"{context.instance_id}-ward"
        )
    except Exception as error:
        return f"ward failed: {error}"
    return result


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext) -> Any:
    hours = context.get_input()
    before = context.current_utc_datetime
    yield context.create_timer(before + timedelta(hours=hours))
    return (context.current_utc_datetime - before).total_seconds()


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("echo", "prepare")
    decision = yield context.wait_for_external_event("approval")
    return decision


@app.orchestration_trigger(context_name="context")
def two_waits(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.wait_for_external_event("item")
    second = yield context.wait_for_external_event("item")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def two_waits_after_work(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("echo", "prepare")
    first = yield context.wait_for_external_event("item")
    second = yield context.wait_for_external_event("item")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def reporter(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status({"stage": "waiting"})
    value = yield context.wait_for_external_event("go")
    context.set_custom_status({"stage": "done", "value": value})
    return value


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext) -> Any:
    state = context.get_input()
    if state["n"] >= state["limit"]:
        return state["n"]
    yield context.call_activity("echo", state["n"])
    context.continue_as_new({"n": state["n"] + 1, "limit": state["limit"]})
    return None


@app.orchestration_trigger(context_name="context")
def restarter(context: df.DurableOrchestrationContext) -> Any:
    if context.get_input() == 0:
        yield context.call_activity("echo", "generation 0")
        context.continue_as_new(1)
        return None
    ping = context.wait_for_external_event("ping")
    timeout = context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    winner = yield context.task_any([ping, timeout])
    if winner is ping:
        timeout.cancel()
        return "ping"
    return "timeout"


@app.orchestration_trigger(context_name="context")
def supervisor(context: df.DurableOrchestrationContext) -> Any:
    sub = context.call_sub_orchestrator("child", "sub", instance_id=f"{context.instance_id}-sub")
    work = context.call_activity("echo", "work")
    results = yield context.task_all([sub, work])
    return results


@app.orchestration_trigger(context_name="context")
def thrower(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("echo", 1)
    raise RuntimeError("orchestrator exploded")


@app.orchestration_trigger(context_name="context")
def drifting(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity(DRIFT.get("activity", "echo"), 1)
    second = yield context.call_activity("echo", 2)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def misspelled(context: df.DurableOrchestrationContext) -> Any:
    result = yield context.call_activity("no_such_activity", 1)
    return result


@app.orchestration_trigger(context_name="context")
def sliding_window(context: df.DurableOrchestrationContext) -> Any:
    start = context.current_utc_datetime
    old = context.create_timer(start + timedelta(hours=1))
    yield context.task_any([old, context.call_activity("echo", "a")])
    newer = context.create_timer(start + timedelta(hours=5))
    yield context.task_any([old, newer])  # the extension only waits on `newer`
    resumed_after = (context.current_utc_datetime - start).total_seconds() / 3600
    yield context.call_activity("echo", "after")
    return resumed_after


@app.orchestration_trigger(context_name="context")
def replay_probe(context: df.DurableOrchestrationContext) -> Any:
    REPLAY_LOG.append(("start", context.is_replaying))
    yield context.call_activity("echo", 1)
    REPLAY_LOG.append(("after first", context.is_replaying))
    yield context.call_activity("echo", 2)
    REPLAY_LOG.append(("after second", context.is_replaying))
    return None


@app.orchestration_trigger(context_name="context")
def client_echo(context: df.DurableOrchestrationContext) -> Any:
    payload = context.get_input()
    context.set_custom_status({"received": type(payload).__name__})
    event = yield context.wait_for_external_event("resume")
    return {"input": payload, "event": event}


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"], client_input=req.get_json())
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _reset_module_state() -> Iterator[None]:
    FLAKY_FAILURES.clear()
    REPLAY_LOG.clear()
    DRIFT.clear()
    yield


@pytest.fixture
def engine() -> Iterator[DurableEngine]:
    with running_engine(app, seed=7) as instance:
        yield instance


@pytest.fixture
def run() -> Iterator[Runner]:
    """One event loop for all client calls of a test; the SDK's shared session is closed after."""
    loop = asyncio.new_event_loop()

    def runner(coroutine: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coroutine)

    yield runner
    loop.run_until_complete(http_utils._close_session())
    loop.close()


def parse_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def events_of(engine: DurableEngine, instance_id: str, kind: EventType) -> list[dict[str, Any]]:
    return [e for e in engine.history(instance_id) if e["EventType"] == kind]


# -- sequences, fan-out, task_any -----------------------------------------------------------------


def test_sequence_completes_and_history_has_the_extension_shape(engine: DurableEngine) -> None:
    instance_id = engine.start("sequence")

    status = engine.run_until_complete(instance_id)

    assert status.runtime_status == "Completed"
    assert status.output == ["one", {"async": "one"}]
    history = engine.history(instance_id)
    kinds = [EventType(e["EventType"]) for e in history]
    assert kinds[:2] == [EventType.ORCHESTRATOR_STARTED, EventType.EXECUTION_STARTED]
    starts = [i for i, kind in enumerate(kinds) if kind is EventType.ORCHESTRATOR_STARTED]
    ends = [i for i, kind in enumerate(kinds) if kind is EventType.ORCHESTRATOR_COMPLETED]
    assert len(starts) == len(ends) == engine.instance(instance_id).episodes == 3
    assert all(start < end for start, end in zip(starts, ends, strict=True))
    scheduled = [e["EventId"] for e in history if e["EventType"] == EventType.TASK_SCHEDULED]
    completed = [
        e["TaskScheduledId"] for e in history if e["EventType"] == EventType.TASK_COMPLETED
    ]
    assert scheduled == completed == [0, 1]
    assert history[1]["IsPlayed"] is True and history[0]["IsPlayed"] is False
    final = events_of(engine, instance_id, EventType.EXECUTION_COMPLETED)
    assert final[0]["EventId"] == 2 and final[0]["OrchestrationStatus"] == 1
    assert engine.instance(instance_id).orchestrator_cpu_seconds > 0


def test_an_activity_gets_the_workers_full_context(engine: DurableEngine) -> None:
    status = engine.run_until_complete(engine.start("probe_context"))

    assert status.runtime_status == "Completed"
    probe = status.output
    assert probe["value"] == "x"
    assert probe["function_name"] == "context_probe"
    assert probe["function_directory"] == str(Path(__file__).parent)
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", probe["trace_parent"])
    assert probe["retry_count"] == 0
    assert probe["same_invocation"] is True


def test_is_replaying_follows_the_played_flags(engine: DurableEngine) -> None:
    engine.run_until_complete(engine.start("replay_probe"))

    assert REPLAY_LOG == [
        ("start", False),
        ("start", True),
        ("after first", False),
        ("start", True),
        ("after first", True),
        ("after second", False),
    ]


def test_fan_out_fan_in(engine: DurableEngine) -> None:
    instance_id = engine.start("fan_out", 10)

    status = engine.run_until_complete(instance_id)

    assert status.output == {"squares": [i * i for i in range(10)], "total": 285}
    assert len(engine.activity_calls("echo")) == 10
    assert engine.instance(instance_id).episodes == 2  # all ten results arrived in one batch


def test_task_any_returns_the_first_finished_and_a_cancelled_timer_does_not_hold_completion(
    engine: DurableEngine,
) -> None:
    start = engine.clock.now()
    instance_id = engine.start("race", True)

    status = engine.run_until_complete(instance_id)

    assert status.output == "fast"
    assert engine.clock.now() - start < timedelta(minutes=1)


def test_an_uncancelled_losing_timer_keeps_the_instance_running_until_it_fires(
    engine: DurableEngine,
) -> None:
    start = engine.clock.now()
    instance_id = engine.start("race", False)

    engine.run_until_idle(advance_clock=False)
    assert engine.status(instance_id).runtime_status == "Running"  # type: ignore[union-attr]

    status = engine.run_until_complete(instance_id)
    assert status.output == "fast"
    assert engine.clock.now() - start >= timedelta(hours=1)


def test_task_any_with_an_old_task_waits_only_for_the_new_one(engine: DurableEngine) -> None:
    start = engine.clock.now()
    instance_id = engine.start("sliding_window")

    status = engine.run_until_complete(instance_id)

    # The SDK resumed when the old 1-hour timer fired, but the extension only scheduled the
    # next activity once the new 5-hour timer had fired (DESIGN.md section 5, rule 4).
    assert status.output == pytest.approx(1.0)
    (after,) = [call for call in engine.activity_calls("echo") if call.input == "after"]
    assert after.executed_at - start >= timedelta(hours=5)


# -- failures and retries -------------------------------------------------------------------------


def test_an_activity_that_raises_fails_the_orchestration_with_its_message(
    engine: DurableEngine,
) -> None:
    instance_id = engine.start("activity_failure", False)

    status = engine.run_until_complete(instance_id)

    assert status.runtime_status == "Failed"
    assert status.output.startswith(
        "Orchestrator function 'activity_failure' failed: "
        "Activity function 'explode' failed:  ValueError: kaboom"
    )
    (failed,) = events_of(engine, instance_id, EventType.TASK_FAILED)
    assert failed["Reason"] == "Activity function 'explode' failed:  ValueError: kaboom"


def test_an_activity_failure_can_be_caught_by_the_orchestrator(engine: DurableEngine) -> None:
    status = engine.run_until_complete(engine.start("activity_failure", True))

    assert status.runtime_status == "Completed"
    assert status.output.startswith(
        "caught: Activity function 'explode' failed:  ValueError: kaboom"
    )


def test_call_activity_with_retry_retries_through_durable_timers(engine: DurableEngine) -> None:
    FLAKY_FAILURES["k"] = 2
    start = engine.clock.now()
    instance_id = engine.start("with_retry", ["k", 3])

    status = engine.run_until_complete(instance_id)

    assert status.output == "ok:k"
    calls = engine.activity_calls("flaky")
    assert [call.failed for call in calls] == [True, True, False]
    assert len(events_of(engine, instance_id, EventType.TIMER_CREATED)) == 2
    assert engine.clock.now() - start >= timedelta(seconds=10)


def test_exhausted_retries_fail_after_one_last_immediate_timer(engine: DurableEngine) -> None:
    FLAKY_FAILURES["x"] = 5
    instance_id = engine.start("with_retry", ["x", 2])

    status = engine.run_until_complete(instance_id)

    assert status.runtime_status == "Failed"
    assert "transient failure for x" in status.output
    assert len(engine.activity_calls("flaky")) == 2
    timers = events_of(engine, instance_id, EventType.TIMER_CREATED)
    assert len(timers) == 2  # one back-off, then RetryInterceptor's back-compat timer


def test_an_orchestrator_that_throws_fails(engine: DurableEngine) -> None:
    status = engine.run_until_complete(engine.start("thrower"))

    assert status.runtime_status == "Failed"
    assert status.output == "Orchestrator function 'thrower' failed: orchestrator exploded"


def test_a_replay_that_schedules_different_work_fails_as_non_deterministic(
    engine: DurableEngine,
) -> None:
    instance_id = engine.start("drifting")
    engine.run_one()  # history now records "echo" as task 0
    DRIFT["activity"] = "async_echo"  # ... which the next replay no longer schedules

    status = engine.run_until_complete(instance_id)

    assert status.runtime_status == "Failed"
    assert "sequence number 0 named 'echo'" in status.output
    assert "named 'async_echo'" in status.output


def test_calling_an_unknown_activity_hangs_like_the_extension(engine: DurableEngine) -> None:
    instance_id = engine.start("misspelled")

    with pytest.raises(OrchestrationStuck, match="doesn't exist"):
        engine.run_until_complete(instance_id)
    assert engine.status(instance_id).runtime_status == "Running"  # type: ignore[union-attr]


# -- sub-orchestrations and timers --------------------------------------------------------------


def test_sub_orchestrations_with_explicit_and_generated_ids(engine: DurableEngine) -> None:
    instance_id = engine.start("parent", ["a", "b"])

    status = engine.run_until_complete(instance_id)

    assert [result["greeting"] for result in status.output] == [
        "hello a",
        "hello b",
        "hello anonymous",
    ]
    assert {result["parent"] for result in status.output} == {instance_id}
    execution_id = engine.history(instance_id)[1]["OrchestrationInstance"]["ExecutionId"]
    children = [f"{instance_id}-a", f"{instance_id}-b", f"{execution_id}:2"]
    assert engine.instance_ids() == [instance_id, *children]
    for child_id in children:
        assert engine.instance(child_id).parent_instance_id == instance_id
        assert engine.status(child_id).runtime_status == "Completed"  # type: ignore[union-attr]


def test_a_terminated_sub_orchestration_fails_the_call_in_the_parent(
    engine: DurableEngine,
) -> None:
    instance_id = engine.start("guardian")
    engine.run_until_idle()
    assert engine.status(f"{instance_id}-ward") is not None  # visible once it has run

    engine.terminate(f"{instance_id}-ward", "ward cancelled")
    status = engine.run_until_complete(instance_id)

    assert status.runtime_status == "Completed"
    assert status.output.startswith("ward failed: ward cancelled")


def test_timers_fire_on_the_virtual_clock(engine: DurableEngine) -> None:
    start = engine.clock.now()

    status = engine.run_until_complete(engine.start("sleeper", 2))

    assert status.output >= 2 * 3600
    assert engine.clock.now() - start >= timedelta(hours=2)


def test_long_timers_are_split_into_intervals(engine: DurableEngine) -> None:
    start = engine.clock.now()
    instance_id = engine.start("sleeper", 24 * 7)

    status = engine.run_until_complete(instance_id)

    # Beyond maximumShortTimerDuration (6 days) the SDK waits longRunningTimerIntervalDuration
    # (3 days) at a time, then the remainder: timers at +3 days and at +7 days.
    assert status.output >= 7 * 24 * 3600
    fire_times = [
        parse_datetime(e["FireAt"]) - start
        for e in events_of(engine, instance_id, EventType.TIMER_CREATED)
    ]
    assert fire_times == [timedelta(days=3), timedelta(days=7)]


# -- external events and custom status ------------------------------------------------------------


def test_an_event_raised_before_the_wait_is_delivered(engine: DurableEngine) -> None:
    instance_id = engine.start("approval")
    engine.run_one()  # first episode: the "prepare" activity is scheduled

    engine.raise_event(instance_id, "approval", {"ok": True}, encoding="json")
    status = engine.run_until_complete(instance_id)

    assert status.output == {"ok": True}
    kinds = [EventType(e["EventType"]) for e in engine.history(instance_id)]
    assert kinds.index(EventType.EVENT_RAISED) < kinds.index(EventType.TASK_COMPLETED)


def test_two_events_of_one_name_reach_two_successive_waits_in_order(engine: DurableEngine) -> None:
    instance_id = engine.start("two_waits")
    engine.run_until_idle()

    engine.raise_event(instance_id, "item", 1, encoding="json")
    engine.raise_event(instance_id, "item", 2, encoding="json")

    assert engine.run_until_complete(instance_id).output == [1, 2]


def test_two_events_in_separate_episodes_reach_the_waits_in_order(engine: DurableEngine) -> None:
    instance_id = engine.start("two_waits")
    engine.run_until_idle()
    engine.raise_event(instance_id, "item", "first", encoding="json")
    engine.run_until_idle()
    engine.raise_event(instance_id, "item", "second", encoding="json")

    assert engine.run_until_complete(instance_id).output == ["first", "second"]


def test_one_early_event_satisfies_every_sdk_wait_but_the_extension_stalls(
    engine: DurableEngine,
) -> None:
    """azure-functions-durable-python issue 507 (DESIGN.md section 5, rule 5)."""
    instance_id = engine.start("two_waits_after_work")
    engine.run_one()
    engine.raise_event(instance_id, "item", "only one", encoding="json")

    engine.run_until_idle()

    assert engine.status(instance_id).runtime_status == "Running"  # type: ignore[union-attr]
    assert "WAIT_FOR_EXTERNAL_EVENT(item)" in (engine.instance(instance_id).waiting_on or "")


def test_custom_status_is_visible_in_the_status(engine: DurableEngine) -> None:
    instance_id = engine.start("reporter")
    engine.run_until_idle()
    assert engine.status(instance_id).custom_status == {"stage": "waiting"}  # type: ignore[union-attr]

    engine.raise_event(instance_id, "go", "now", encoding="json")
    status = engine.run_until_complete(instance_id)

    assert status.custom_status == {"stage": "done", "value": "now"}


def test_the_python_client_encoding_delivers_event_data_as_a_json_string(
    engine: DurableEngine,
) -> None:
    instance_id = engine.start("two_waits")
    engine.run_until_idle()
    engine.raise_event(instance_id, "item", {"n": 1})
    engine.raise_event(instance_id, "item", None)

    assert engine.run_until_complete(instance_id).output == ['{"n": 1}', "null"]


# -- continue-as-new and terminate ----------------------------------------------------------------


def test_continue_as_new_resets_history_and_passes_input(engine: DurableEngine) -> None:
    instance_id = engine.start("counter", {"n": 0, "limit": 25})
    first_created = engine.clock.now()
    seen: set[str] = set()

    def watch(step: Step) -> None:
        status = engine.status(instance_id)
        if status is not None:
            seen.add(status.runtime_status)

    status = engine.run_until_complete(instance_id, on_step=watch)

    # Azure Storage continues as new inside the same work item, so a client never observes
    # ContinuedAsNew, and the created time is that of the latest generation.
    assert seen == {"Running", "Completed"}
    assert status.created_time > first_created
    assert status.output == 25
    info = engine.instance(instance_id)
    assert info.generations == 26
    assert engine.summary().largest_history <= 10
    assert [call.input for call in engine.activity_calls("echo")] == list(range(25))
    assert status.input == '{"n": 25, "limit": 25}'


def test_continue_as_new_drops_events_that_arrived_before_it(engine: DurableEngine) -> None:
    instance_id = engine.start("restarter", 0)
    engine.run_one()  # generation 0 schedules its activity
    engine.raise_event(instance_id, "ping", "early", encoding="json")  # processed before the CAN

    assert engine.run_until_complete(instance_id).output == "timeout"


def test_continue_as_new_carries_over_events_processed_after_it(engine: DurableEngine) -> None:
    instance_id = engine.start("restarter", 0)
    engine.run_one()  # generation 0 schedules its activity
    step = engine.run_one()  # the activity runs; its result is queued first
    assert step is not None and step.kind == "activity"
    engine.raise_event(instance_id, "ping", "late", encoding="json")

    assert engine.run_until_complete(instance_id).output == "ping"


def test_terminate_does_not_cascade_and_late_results_are_ignored(engine: DurableEngine) -> None:
    instance_id = engine.start("supervisor")
    steps: list[Step] = []
    engine.run_one()  # first episode: the sub-orchestration and the activity are scheduled

    engine.terminate(instance_id, "stop now")
    engine.run_until_idle(on_step=steps.append)

    status = engine.status(instance_id)
    assert status is not None
    assert (status.runtime_status, status.output) == ("Terminated", "stop now")
    child_status = engine.status(f"{instance_id}-sub")
    assert child_status is not None and child_status.runtime_status == "Completed"
    assert {call.input for call in engine.activity_calls("echo")} == {"work", "hello sub"}
    late = [m for m in engine.discarded_messages if m.instance_id == instance_id]
    assert [m.event_type for m in late] == ["SubOrchestrationInstanceCompleted"]
    assert all(m.reason == "Instance is Terminated" for m in late)
    assert engine.history(instance_id)[-2]["OrchestrationStatus"] == 5


# -- the durable client over HTTP -----------------------------------------------------------------


def test_client_binding_has_the_extension_shape(engine: DurableEngine) -> None:
    binding = json.loads(engine.client_binding())

    assert list(binding) == [
        "taskHubName",
        "connectionName",
        "creationUrls",
        "managementUrls",
        "baseUrl",
        "requiredQueryStringParameters",
        "rpcBaseUrl",
        "httpBaseUrl",
        "maxGrpcMessageSizeInBytes",
        "grpcHttpClientTimeout",
    ]
    assert binding["taskHubName"] == "TestHubName"
    assert binding["rpcBaseUrl"].startswith("http://127.0.0.1:")
    assert binding["rpcBaseUrl"].endswith("/durabletask/")
    assert binding["managementUrls"]["id"] == "INSTANCEID"
    assert binding["managementUrls"]["statusQueryGetUri"].endswith(
        "/runtime/webhooks/durabletask/instances/INSTANCEID?taskHub=TestHubName&connection=Storage"
    )


def test_durable_client_start_status_and_raise_event(engine: DurableEngine, run: Runner) -> None:
    client = df.DurableOrchestrationClient(engine.client_binding())
    payload = {"a": 1, "nested": {"b": [1, 2]}}

    instance_id = run(client.start_new("client_echo", client_input=payload))
    pending = run(client.get_status(instance_id))
    engine.run_until_idle()
    running = run(client.get_status(instance_id))
    run(client.raise_event(instance_id, "resume", {"ok": True}))
    engine.run_until_complete(instance_id)
    done = run(client.get_status(instance_id, show_history=True))

    assert pending.runtime_status == df.OrchestrationRuntimeStatus.Pending
    assert running.runtime_status == df.OrchestrationRuntimeStatus.Running
    assert running.custom_status == {"received": "dict"}
    assert done.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert done.output == {"input": payload, "event": '{"ok": true}'}
    assert done.input_ == json.dumps(payload)  # the Python client double-encodes its input
    assert done.historyEvents[0]["EventType"] == "ExecutionStarted"
    completed = run(client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Completed]))
    assert [status.instance_id for status in completed] == [instance_id]


def test_durable_client_terminate_and_error_cases(engine: DurableEngine, run: Runner) -> None:
    client = df.DurableOrchestrationClient(engine.client_binding())
    instance_id = run(client.start_new("client_echo", instance_id="fixed-id", client_input=1))
    engine.run_until_idle()

    with pytest.raises(Exception, match="already exists"):
        run(client.start_new("client_echo", instance_id="fixed-id"))
    run(client.terminate(instance_id, "no longer needed"))
    engine.run_until_idle()
    status = run(client.get_status(instance_id))

    assert instance_id == "fixed-id"
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Terminated
    assert status.output == "no longer needed"
    with pytest.raises(Exception, match="is gone"):
        run(client.raise_event(instance_id, "resume", 1))
    with pytest.raises(Exception, match="No instance with ID 'missing' found"):
        run(client.terminate("missing", "why"))
    with pytest.raises(Exception, match="doesn't exist, is disabled, or is not an orchestrator"):
        run(client.start_new("no_such_orchestrator"))


def test_durable_client_get_status_of_an_unknown_instance_is_empty(
    engine: DurableEngine, run: Runner
) -> None:
    client = df.DurableOrchestrationClient(engine.client_binding())

    status = run(client.get_status("does-not-exist"))

    assert not status
    assert status.runtime_status is None


def test_http_starter_function_runs_against_the_engine(engine: DurableEngine, run: Runner) -> None:
    binding = engine.client_binding()
    host = json.loads(binding)["baseUrl"].split("/runtime/")[0]
    (function,) = [f for f in app_functions(app) if f.get_function_name() == "http_start"]
    request = func.HttpRequest(
        method="POST",
        url=f"{host}/api/start/client_echo",
        route_params={"name": "client_echo"},
        body=json.dumps(["x"]).encode(),
        headers={"Content-Type": "application/json"},
    )

    response = run(function.get_user_function()(req=request, client=binding))
    engine.run_until_idle()

    async def follow(url: str) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(url) as reply:
            return reply.status, await reply.json()

    assert response.status_code == 202
    code, body = run(follow(response.headers["Location"]))
    assert code == 202
    assert body["runtimeStatus"] == "Running"
    assert body["customStatus"] == {"received": "list"}
