"""``DurableHost`` in real time, on a small fixture app defined here (in memory unless noted).

Each test runs its own host on a fresh event loop (``asyncio.run``) and waits on the host's
status notifications with a deadline; nothing sleeps to wait for work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from devhost.durable import (
    DurableHost,
    EventType,
    InstanceExistsError,
    OrchestrationStatus,
    RpcServer,
)
from tests.devhost.conftest import DEADLINE, output, run, until

pytestmark = [
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]

app = df.DFApp()


class Gauge:
    """Counts how many of something run at once (thread-safe)."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.total = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


ASYNC_GAUGE = Gauge()
SYNC_GAUGE = Gauge()
EPISODE_GAUGE = Gauge()
PER_INSTANCE: dict[str, Gauge] = {}
SLOW_EPISODE_SECONDS = {"value": 0.0}


# -- activities --------------------------------------------------------------------------------


@app.activity_trigger(input_name="value")
async def slow_async(value: int) -> int:
    ASYNC_GAUGE.enter()
    try:
        await asyncio.sleep(0.05)
    finally:
        ASYNC_GAUGE.leave()
    return value * 2


@app.activity_trigger(input_name="value")
def slow_sync(value: int) -> int:
    SYNC_GAUGE.enter()
    try:
        time.sleep(0.05)  # blocking on purpose: sync activities run in the thread pool
    finally:
        SYNC_GAUGE.leave()
    return value + 1


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="seconds")
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


@app.activity_trigger(input_name="message")
def explode(message: str) -> None:
    raise ValueError(message)


# -- orchestrators -----------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    activity, count = context.get_input()
    results = yield context.task_all([context.call_activity(activity, i) for i in range(count)])
    return results


@app.orchestration_trigger(context_name="context")
def guarded(context: df.DurableOrchestrationContext) -> Any:
    """Records how many episodes run at once, overall and for this instance."""
    EPISODE_GAUGE.enter()
    gauge = PER_INSTANCE.setdefault(context.instance_id, Gauge())
    gauge.enter()
    try:
        time.sleep(SLOW_EPISODE_SECONDS["value"])  # CPU-ish work that holds the episode
    finally:
        gauge.leave()
        EPISODE_GAUGE.leave()
    results = yield context.task_all([context.call_activity("echo", i) for i in range(3)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext) -> Any:
    seconds = context.get_input()
    before = context.current_utc_datetime
    yield context.create_timer(before + timedelta(seconds=seconds))
    return (context.current_utc_datetime - before).total_seconds()


@app.orchestration_trigger(context_name="context")
def two_waits(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status("waiting")
    first = yield context.wait_for_external_event("item")
    second = yield context.wait_for_external_event("item")
    context.set_custom_status("done")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Any:
    names = context.get_input()
    children = [
        context.call_sub_orchestrator("child", name, instance_id=f"{context.instance_id}-{name}")
        for name in names
    ]
    generated = context.call_sub_orchestrator("child", "anonymous")
    results = yield context.task_all([*children, generated])
    try:
        yield context.call_sub_orchestrator("failing_child", "boom")
    except Exception as error:
        return {"results": results, "failure": str(error)}
    return {"results": results, "failure": None}


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext) -> Any:
    name = context.get_input()
    greeting = yield context.call_activity("echo", f"hello {name}")
    return {"greeting": greeting, "parent": context.parent_instance_id}


@app.orchestration_trigger(context_name="context")
def failing_child(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("explode", context.get_input())
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def supervisor(context: df.DurableOrchestrationContext) -> Any:
    sub = context.call_sub_orchestrator(
        "napping_child", 0.3, instance_id=f"{context.instance_id}-sub"
    )
    work = context.call_activity("nap", 0.3)
    results = yield context.task_all([sub, work])
    return results


@app.orchestration_trigger(context_name="context")
def napping_child(context: df.DurableOrchestrationContext) -> Any:
    result = yield context.call_activity("nap", context.get_input())
    return result


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
        yield context.call_activity("nap", 0.2)
        context.continue_as_new(1)
        return None
    ping = context.wait_for_external_event("ping")
    timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=0.3))
    winner = yield context.task_any([ping, timeout])
    if winner is ping:
        timeout.cancel()
        return "ping"
    return "timeout"


@app.orchestration_trigger(context_name="context")
def thrower(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("echo", 1)
    raise RuntimeError("orchestrator exploded")


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _reset_gauges() -> Iterator[None]:
    for gauge in (ASYNC_GAUGE, SYNC_GAUGE, EPISODE_GAUGE):
        gauge.now = gauge.peak = gauge.total = 0
    PER_INSTANCE.clear()
    SLOW_EPISODE_SECONDS["value"] = 0.0
    yield


def make_host(**options: Any) -> DurableHost:
    options.setdefault("max_concurrent_activities", 8)
    options.setdefault("max_concurrent_orchestrators", 4)
    return DurableHost(app, **options)


# -- concurrency -------------------------------------------------------------------------------


def test_async_activities_run_concurrently_up_to_the_limit() -> None:
    async def scenario() -> None:
        async with make_host(max_concurrent_activities=4) as host:
            began = time.perf_counter()
            instance_id = host.start_new("fan_out", ["slow_async", 20])
            done = await host.wait_for_completion(instance_id, DEADLINE)
            elapsed = time.perf_counter() - began

            assert done.status is OrchestrationStatus.COMPLETED
            assert output(done) == [i * 2 for i in range(20)]
            assert ASYNC_GAUGE.peak == 4
            assert ASYNC_GAUGE.total == 20
            assert elapsed >= 5 * 0.05  # 20 activities, 4 at a time
            assert elapsed < 20 * 0.05  # ... and not one after the other

    run(scenario())


def test_sync_activities_run_in_the_thread_pool_up_to_the_limit() -> None:
    async def scenario() -> None:
        async with make_host(max_concurrent_activities=3) as host:
            instance_id = host.start_new("fan_out", ["slow_sync", 12])
            done = await host.wait_for_completion(instance_id, DEADLINE)

            assert output(done) == [i + 1 for i in range(12)]
            assert SYNC_GAUGE.peak == 3

    run(scenario())


def test_episodes_run_one_at_a_time_per_instance_and_up_to_the_orchestrator_limit() -> None:
    SLOW_EPISODE_SECONDS["value"] = 0.05

    async def scenario() -> None:
        async with make_host(max_concurrent_orchestrators=2) as host:
            ids = [host.start_new("guarded") for _ in range(6)]
            for instance_id in ids:
                done = await host.wait_for_completion(instance_id, DEADLINE)
                assert output(done) == 3

    run(scenario())
    assert EPISODE_GAUGE.peak == 2
    assert all(gauge.peak == 1 for gauge in PER_INSTANCE.values())


def test_completions_that_arrive_together_are_batched_into_one_episode() -> None:
    async def scenario() -> None:
        async with make_host(max_concurrent_activities=16) as host:
            instance_id = host.start_new("fan_out", ["echo", 16])
            done = await host.wait_for_completion(instance_id, DEADLINE)

            info = host.instance(instance_id)
            assert output(done) == list(range(16))
            assert info.episodes < 1 + 16  # not one episode per completion
            assert info.history_length == info.peak_history_length == len(done.history)
            assert info.orchestrator_cpu_seconds > 0

    run(scenario())


# -- timers, events, custom status ---------------------------------------------------------------


def test_durable_timers_fire_at_their_time_on_the_wall_clock() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            began = time.perf_counter()
            instance_id = host.start_new("sleeper", 0.2)
            done = await host.wait_for_completion(instance_id, DEADLINE)
            elapsed = time.perf_counter() - began

            assert 0.2 <= elapsed < 2.0
            assert output(done) >= 0.2  # the orchestrator's clock moved past FireAt
            (fired,) = [e for e in done.history if e["EventType"] == EventType.TIMER_FIRED]
            assert fired["TimerId"] == 0

    run(scenario())


def test_external_events_are_buffered_in_order_and_custom_status_is_visible() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            instance_id = host.start_new("two_waits")
            running = await host.wait_for_status(
                instance_id, {OrchestrationStatus.RUNNING}, DEADLINE
            )
            assert json.loads(running.custom_status or "null") == "waiting"

            host.raise_event(instance_id, "item", 1, encoding="json")
            host.raise_event(instance_id, "item", 2, encoding="json")
            done = await host.wait_for_completion(instance_id, DEADLINE)

            assert output(done) == [1, 2]
            assert json.loads(done.custom_status or "null") == "done"

    run(scenario())


# -- sub-orchestrations, terminate, continue-as-new, failures --------------------------------------


def test_sub_orchestrations_notify_their_parent_of_completion_and_failure() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            instance_id = host.start_new("parent", ["a", "b"], "family")
            done = await host.wait_for_completion(instance_id, DEADLINE)

            result = output(done)
            greetings = [item["greeting"] for item in result["results"]]
            assert greetings == ["hello a", "hello b", "hello anonymous"]
            assert {item["parent"] for item in result["results"]} == {"family"}
            assert "Activity function 'explode' failed" in result["failure"]
            execution_id = done.history[1]["OrchestrationInstance"]["ExecutionId"]
            generated = f"{execution_id}:2"
            for child_id in ("family-a", "family-b", generated):
                assert host.instance(child_id).parent_instance_id == "family"
                assert host.snapshot(child_id).status is OrchestrationStatus.COMPLETED  # type: ignore[union-attr]
            failed_child = f"{execution_id}:3"
            assert host.snapshot(failed_child).status is OrchestrationStatus.FAILED  # type: ignore[union-attr]

    run(scenario())


def test_terminate_does_not_cascade_and_late_results_are_ignored() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            instance_id = host.start_new("supervisor", None, "boss")
            await host.wait_for_status(instance_id, {OrchestrationStatus.RUNNING}, DEADLINE)
            host.terminate(instance_id, "stop now")
            terminated = await host.wait_for_completion(instance_id, DEADLINE)
            child = await host.wait_for_completion("boss-sub", DEADLINE)

            assert terminated.status is OrchestrationStatus.TERMINATED
            assert terminated.output == "stop now"
            assert child.status is OrchestrationStatus.COMPLETED  # no cascade

            # The late activity result and the child's completion reach a terminated instance.
            def late() -> list[str]:
                return [m.event_type for m in host.discarded_messages if m.instance_id == "boss"]

            await until(lambda: len(late()) == 2, "the late results to be discarded")
            assert sorted(late()) == ["SubOrchestrationInstanceCompleted", "TaskCompleted"]
            assert host.snapshot("boss").status is OrchestrationStatus.TERMINATED  # type: ignore[union-attr]

    run(scenario())


def test_continue_as_new_starts_generations_with_fresh_histories() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            instance_id = host.start_new("counter", {"n": 0, "limit": 10})
            done = await host.wait_for_completion(instance_id, DEADLINE)

            info = host.instance(instance_id)
            assert output(done) == 10
            assert info.generations == 11
            assert info.peak_history_length <= 10

    run(scenario())


def test_continue_as_new_drops_events_that_arrived_before_it() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            instance_id = host.start_new("restarter", 0)
            await host.wait_for_status(instance_id, {OrchestrationStatus.RUNNING}, DEADLINE)
            host.raise_event(instance_id, "ping", "early")  # processed by generation 0
            done = await host.wait_for_completion(instance_id, DEADLINE)

            assert output(done) == "timeout"
            assert host.instance(instance_id).generations == 2

    run(scenario())


def test_an_orchestrator_that_throws_fails_as_the_extension_reports_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with make_host() as host:
            instance_id = host.start_new("thrower")
            done = await host.wait_for_completion(instance_id, DEADLINE)

            assert done.status is OrchestrationStatus.FAILED
            assert done.output == "Orchestrator function 'thrower' failed: orchestrator exploded"

    with caplog.at_level(logging.INFO, logger="devhost.durable"):
        run(scenario())
    (line,) = [r for r in caplog.records if "thrower" in r.getMessage()]
    assert "Failed" in line.getMessage() and "episodes" in line.getMessage()


# -- observability and the client side -------------------------------------------------------------


def test_summary_and_completion_log_report_history_episodes_and_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with make_host() as host:
            first = host.start_new("fan_out", ["echo", 30])
            second = host.start_new("fan_out", ["echo", 5])
            await host.wait_for_completion(first, DEADLINE)
            await host.wait_for_completion(second, DEADLINE)

            summary = host.summary()
            assert summary.instances == summary.completed_instances == 2
            assert summary.largest_history_instance == first
            assert summary.largest_history == host.instance(first).peak_history_length
            assert summary.episodes == sum(host.instance(i).episodes for i in (first, second))
            assert summary.orchestrator_cpu_seconds > 0
            assert summary.activity_executions == 35

    with caplog.at_level(logging.INFO, logger="devhost.durable"):
        run(scenario())
    finished = [r for r in caplog.records if "Completed: history" in r.getMessage()]
    assert len(finished) == 2
    assert all(getattr(r, "orchestrator_cpu_seconds", 0) > 0 for r in finished)


def test_commands_from_other_threads_wait_until_they_are_durable() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            instance_id = await asyncio.to_thread(host.start_new, "two_waits", None, "threads")
            with pytest.raises(InstanceExistsError):
                await asyncio.to_thread(host.start_new, "two_waits", None, "threads")
            await asyncio.to_thread(host.raise_event, instance_id, "item", "a")
            await asyncio.to_thread(host.raise_event, instance_id, "item", "b")
            done = await host.wait_for_completion(instance_id, DEADLINE)

            assert output(done) == ['"a"', '"b"']  # the Python client's double encoding

    run(scenario())


def test_the_python_client_drives_the_host_through_the_rpc_endpoints() -> None:
    async def scenario() -> None:
        async with make_host() as host:
            server = RpcServer(host)
            server.start()
            try:
                client = df.DurableOrchestrationClient(server.binding_json())
                instance_id = await client.start_new("two_waits", client_input=None)
                await host.wait_for_status(instance_id, {OrchestrationStatus.RUNNING}, DEADLINE)
                running = await client.get_status(instance_id)
                await client.raise_event(instance_id, "item", {"n": 1})
                await client.raise_event(instance_id, "item", {"n": 2})
                await host.wait_for_completion(instance_id, DEADLINE)
                done = await client.get_status(instance_id, show_history=True)
            finally:
                await asyncio.to_thread(server.stop)

            assert running.runtime_status == df.OrchestrationRuntimeStatus.Running
            assert done.runtime_status == df.OrchestrationRuntimeStatus.Completed
            assert done.output == ['{"n": 1}', '{"n": 2}']
            assert done.historyEvents[0]["EventType"] == "ExecutionStarted"

    run(scenario())
