"""``DurableHost`` rides out faults while it runs, as the Durable extension does: a checkpoint
that storage refuses is written again once storage answers, a work item that fails before its
checkpoint is abandoned and run again, an activity that could not be invoked is dispatched
again. No instance is given up, and a second host on the same store finds every instance as
the first left it (nothing acknowledged was lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import azure.durable_functions as df
import pytest
from azure.core.exceptions import ServiceRequestError

from devhost.durable import DurableHost, EventType, MemoryStore, OrchestrationStatus, _faults
from devhost.durable import host as host_module
from devhost.durable._store import Op
from devhost.durable._worker import ActivityOutcome, DurableFunction, LocalInvoker
from tests.devhost.conftest import DEADLINE, output, run, until

pytestmark = [
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]

app = df.DFApp()
GATE: dict[str, Any] = {"release": None, "runs": 0}


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="value")
async def gated(value: int) -> int:
    """Answers once released: the test chooses when the answer reaches the instance."""
    GATE["runs"] += 1
    await GATE["release"].wait()
    return value * 10


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("gated", 1)
    child = yield context.call_sub_orchestrator("child", first, f"{context.instance_id}:child")
    last = yield context.call_activity("echo", child + 1)
    return [first, child, last]


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext) -> Any:
    value = yield context.call_activity("echo", context.get_input())
    return value * 2


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Any:
    results = []
    for step in range(3):
        results.append((yield context.call_activity("echo", step)))
    return results


class FlakyStore(MemoryStore):
    """Memory tables that refuse every write while ``down``, as an Azurite that is stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.refused = 0

    def write(self, ops: Iterable[Op]) -> asyncio.Future[None]:
        ops = list(ops)
        if not self.down or not ops:
            return super().write(ops)
        self.refused += 1
        refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        refused.set_exception(ServiceRequestError("Connection refused"))
        refused.add_done_callback(lambda future: future.exception())
        return refused


class FailingInvoker(LocalInvoker):
    """Functions in this process, but the first ``fail`` activity invocations raise, as a
    worker that could not answer."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail

    async def invoke_activity(
        self, function: DurableFunction, input_text: str, client_json: str | None = None
    ) -> ActivityOutcome:
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("the worker could not run the activity")
        return await super().invoke_activity(function, input_text, client_json)


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real back-off (1, 2, 4... s) at a twentieth of the pace."""
    monkeypatch.setattr(_faults, "RETRY_FIRST_SECONDS", 0.05)
    monkeypatch.setattr(_faults, "RETRY_MAX_SECONDS", 0.5)
    GATE.update(release=None, runs=0)
    yield


def make_host(store: MemoryStore, invoker: LocalInvoker | None = None) -> DurableHost:
    return DurableHost(
        app,
        store=store,
        invoker=invoker,
        max_concurrent_activities=4,
        max_concurrent_orchestrators=4,
    )


def kinds(history: Iterable[dict[str, Any]]) -> list[int]:
    return [event["EventType"] for event in history]


def test_checkpoints_refused_while_storage_is_down_are_written_once_it_answers() -> None:
    """The answer that reaches the instance while storage is down is checkpointed (with the
    sub-orchestration start it sends) once storage is back: nothing is lost or done twice."""
    store = FlakyStore()

    async def scenario() -> None:
        GATE["release"] = release = asyncio.Event()
        async with make_host(store) as first:
            instance_id = first.start_new("parent", None, "p")
            await until(lambda: GATE["runs"] == 1, "the activity to start")
            store.down = True
            release.set()
            await until(lambda: store.refused >= 6, "checkpoints to be refused and tried again")
            info = first.instance(instance_id)
            assert info.runtime_status == "Running" and info.warnings == ()
            store.down = False
            done = await first.wait_for_completion(instance_id, DEADLINE)
            assert output(done) == [10, 20, 21]
            assert GATE["runs"] == 1
            finished = {i: first.snapshot(i) for i in ("p", "p:child")}

        async with make_host(store) as second:  # everything it reported was durable
            for instance_id, snapshot in finished.items():
                assert second.snapshot(instance_id) == snapshot
        history = kinds(done.history)
        assert history.count(EventType.SUB_ORCHESTRATION_INSTANCE_CREATED) == 1
        assert history.count(EventType.TASK_SCHEDULED) == 2

    run(scenario())


def test_a_host_stopped_while_storage_is_down_stops_and_the_next_one_goes_on() -> None:
    store = FlakyStore()

    async def scenario() -> None:
        GATE["release"] = release = asyncio.Event()
        first = make_host(store)
        async with first:
            instance_id = first.start_new("parent", None, "p")
            await until(lambda: GATE["runs"] == 1, "the activity to start")
            store.down = True
            release.set()
            await until(lambda: store.refused >= 2, "a checkpoint to be refused")
            loop = asyncio.get_running_loop()
            began = loop.time()
            await first.stop(grace=0.1)
            assert loop.time() - began < 2.0  # no commit holds the stop up
        store.down = False

        async with make_host(store) as second:
            done = await second.wait_for_completion(instance_id, DEADLINE)
            assert output(done) == [10, 20, 21]
            assert GATE["runs"] == 2  # the answer never checkpointed: its activity ran again

    run(scenario())


def test_a_work_item_that_fails_before_its_checkpoint_is_run_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The episode ran (the instance's history grew in memory), then the host failed before
    writing it: the instance goes back to its last checkpoint and the batch runs again, so no
    event is in the history twice."""
    failures = {"left": 2}
    real = host_module.checkpoint_rows

    def failing(*args: Any, **kwargs: Any) -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("the host failed before the checkpoint")
        return real(*args, **kwargs)

    monkeypatch.setattr(host_module, "checkpoint_rows", failing)

    async def scenario() -> None:
        async with make_host(MemoryStore()) as host:
            instance_id = host.start_new("chain")
            done = await host.wait_for_completion(instance_id, DEADLINE)
            assert done.status == OrchestrationStatus.COMPLETED
            assert output(done) == [0, 1, 2]
            history = kinds(done.history)
            assert history.count(EventType.EXECUTION_STARTED) == 1
            assert history.count(EventType.TASK_SCHEDULED) == 3
            assert history.count(EventType.TASK_COMPLETED) == 3
            assert history.count(EventType.ORCHESTRATOR_STARTED) == 4  # one per work item

    with caplog.at_level(logging.ERROR, logger="devhost.durable"):
        run(scenario())
    abandoned = [r for r in caplog.records if "work item abandoned" in r.getMessage()]
    assert len(abandoned) == 2


def test_an_activity_that_could_not_be_invoked_is_dispatched_again() -> None:
    invoker = FailingInvoker(fail=2)

    async def scenario() -> None:
        async with make_host(MemoryStore(), invoker) as host:
            instance_id = host.start_new("chain")
            done = await host.wait_for_completion(instance_id, DEADLINE)
            assert output(done) == [0, 1, 2]
            assert kinds(done.history).count(EventType.TASK_COMPLETED) == 3

    try:
        run(scenario())
    finally:
        invoker.close()
    assert invoker.fail == 0
