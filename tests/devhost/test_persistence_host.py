"""``DurableHost`` state across a stop and a start: in Azurite tables and in the memory store.

A second host on the same store must continue exactly where the first stopped: instance rows,
histories and counters as they were, waits still open, timers re-armed, activities that were
running dispatched again (at-least-once), uncommitted rows ignored, duplicated answers ignored
by the replay as DurableTask.Core ignores them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest
from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient

from devhost.durable import DurableHost, EventType, MemoryStore, OrchestrationStatus
from devhost.durable._records import (
    HISTORY_PREFIX,
    INSTANCE_ROW,
    MESSAGE_PREFIX,
    TABLE,
    WORK_ITEM_PREFIX,
    history_row_key,
    message_row_key,
)
from devhost.durable._store import Op, TableStore, _take_chunk, delete, escape_key, upsert
from tests.devhost.conftest import DEADLINE, output, run, until
from tests.support.azurite import Azurite

pytestmark = [
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]

app = df.DFApp()
HELD: dict[str, Any] = {"runs": 0, "release": None}
BIG = "x" * 100_000 + "é" * 20_000  # beyond 64 KiB of UTF-16 as a property


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="value")
async def held(value: int) -> int:
    """Blocks until released (the first host abandons it), then answers."""
    HELD["runs"] += 1
    await HELD["release"].wait()
    return value * 10


@app.activity_trigger(input_name="size")
def big(size: int) -> str:
    return BIG[:size]


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Any:
    prepared = yield context.call_activity("echo", "prepared")
    context.set_custom_status({"stage": prepared})
    decision = yield context.wait_for_external_event("approval")
    return {"prepared": prepared, "decision": decision}


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext) -> Any:
    before = context.current_utc_datetime
    yield context.create_timer(before + timedelta(seconds=context.get_input()))
    return "woke"


@app.orchestration_trigger(context_name="context")
def holder(context: df.DurableOrchestrationContext) -> Any:
    results = yield context.task_all([context.call_activity("held", i) for i in range(3)])
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    count = context.get_input()
    results = yield context.task_all([context.call_activity("echo", i) for i in range(count)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def large(context: df.DurableOrchestrationContext) -> Any:
    text = yield context.call_activity("big", len(BIG))
    return {"length": len(text), "text": text}


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext) -> Any:
    state = context.get_input()
    if state["n"] >= state["limit"]:
        return state["n"]
    yield context.call_activity("echo", state["n"])
    context.continue_as_new({"n": state["n"] + 1, "limit": state["limit"]})
    return None


# -- stores ------------------------------------------------------------------------------------


HostFactory = Callable[[], DurableHost]


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    HELD.update(runs=0, release=None)
    yield


@pytest.fixture(params=["memory", "azurite"])
def hosts(request: pytest.FixtureRequest) -> HostFactory:
    """Builds hosts that share one store: the same tables, as a restarted process would."""
    if request.param == "memory":
        store = MemoryStore()
        return lambda: DurableHost(
            app, store=store, max_concurrent_activities=8, max_concurrent_orchestrators=4
        )
    azurite: Azurite = request.getfixturevalue("azurite")
    hub = f"persist{uuid.uuid4().hex[:8]}"
    return lambda: DurableHost(
        app,
        task_hub=hub,
        connection_string=azurite.connection_string,
        max_concurrent_activities=8,
        max_concurrent_orchestrators=4,
    )


def custom_status(host: DurableHost, instance_id: str) -> Any:
    snapshot = host.snapshot(instance_id)
    return None if snapshot is None else json.loads(snapshot.custom_status or "null")


# -- stop and start ----------------------------------------------------------------------------


def test_instances_histories_and_counters_survive_a_restart(hosts: HostFactory) -> None:
    async def scenario() -> None:
        first = hosts()
        async with first:
            waiting = first.start_new("approval", None, "waiting")
            finished = first.start_new("fan_out", 5, "finished")
            generations = first.start_new("counter", {"n": 0, "limit": 3}, "generations")
            for instance_id in (finished, generations):
                await first.wait_for_completion(instance_id, DEADLINE)
            await until(lambda: custom_status(first, waiting) is not None, "the approval to wait")
            before = {i: first.snapshot(i) for i in (waiting, finished, generations)}
            stats = {i: first.instance(i) for i in (waiting, finished, generations)}

        second = hosts()
        async with second:
            for instance_id, snapshot in before.items():
                assert second.snapshot(instance_id) == snapshot
                restored = second.instance(instance_id)
                assert restored.episodes == stats[instance_id].episodes
                assert restored.generations == stats[instance_id].generations
                assert restored.orchestrator_cpu_seconds == pytest.approx(
                    stats[instance_id].orchestrator_cpu_seconds
                )
            assert output(second.snapshot(generations)) == 3
            assert second.instance(generations).generations == 4

            second.raise_event(waiting, "approval", {"ok": True}, encoding="json")
            done = await second.wait_for_completion(waiting, DEADLINE)
            assert output(done) == {"prepared": "prepared", "decision": {"ok": True}}

    run(scenario())


def test_a_timer_set_before_a_restart_fires_after_it(hosts: HostFactory) -> None:
    async def scenario() -> None:
        first = hosts()
        async with first:
            instance_id = first.start_new("sleeper", 0.5)
            await first.wait_for_status(instance_id, {OrchestrationStatus.RUNNING}, DEADLINE)
            await until(lambda: first.instance(instance_id).timers_created == 1, "the timer")

        second = hosts()
        async with second:
            assert second.instance(instance_id).timers_created == 1  # the counter is durable
            done = await second.wait_for_completion(instance_id, DEADLINE)
            assert output(done) == "woke"
            fired = [e for e in done.history if e["EventType"] == EventType.TIMER_FIRED]
            assert len(fired) == 1
            assert second.instance(instance_id).timers_created == 1

    run(scenario())


def test_activities_abandoned_by_a_stop_run_again_after_the_start(hosts: HostFactory) -> None:
    async def scenario() -> None:
        HELD["release"] = release = asyncio.Event()
        first = hosts()
        async with first:
            instance_id = first.start_new("holder")
            await until(lambda: HELD["runs"] == 3, "the activities to start")
            await first.stop(grace=0.05)  # they never finish: abandoned

        release.set()
        second = hosts()
        async with second:
            done = await second.wait_for_completion(instance_id, DEADLINE)
            assert output(done) == [0, 10, 20]
            assert HELD["runs"] == 6  # at-least-once: each ran again

    run(scenario())


def test_continue_as_new_keeps_only_the_current_history(hosts: HostFactory) -> None:
    async def scenario() -> None:
        first = hosts()
        async with first:
            instance_id = first.start_new("counter", {"n": 0, "limit": 5})
            done = await first.wait_for_completion(instance_id, DEADLINE)

        second = hosts()
        async with second:
            assert second.snapshot(instance_id) == done
            assert second.history(instance_id) == list(done.history)
            assert second.instance(instance_id).generations == 6

    run(scenario())


class GatedStore(MemoryStore):
    """Holds back every write that schedules activity work items until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.waiting = 0

    def write(self, ops: Iterable[Op]) -> asyncio.Future[None]:
        ops = list(ops)
        schedules = any(op.row_key.startswith(WORK_ITEM_PREFIX) and op.entity for op in ops)
        if self.gate is None or self.gate.is_set() or not schedules:
            return super().write(ops)
        self.waiting += 1
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def later(gate: asyncio.Event) -> None:
            await gate.wait()
            await MemoryStore.write(self, ops)
            written.set_result(None)

        asyncio.get_running_loop().create_task(later(self.gate))
        return written


def test_activities_start_once_their_work_items_are_durable() -> None:
    """As DTFx sends activity messages when it completes the work item that scheduled them."""
    store = GatedStore()

    async def scenario() -> None:
        HELD["release"] = asyncio.Event()
        HELD["release"].set()
        store.gate = asyncio.Event()
        async with DurableHost(app, store=store, max_concurrent_activities=4) as host:
            instance_id = host.start_new("holder")
            await until(lambda: store.waiting > 0, "the work items to be written")
            assert HELD["runs"] == 0
            # A bounded real-time wait: long enough for a wrongly dispatched activity (an
            # ``async def`` on this loop) to start, while the write is still held.
            await asyncio.sleep(0.3)
            assert HELD["runs"] == 0
            assert host.activity_load["running"] == 0
            assert not store.gate.is_set()
            store.gate.set()
            done = await host.wait_for_completion(instance_id, DEADLINE)
            assert output(done) == [0, 10, 20]
            assert HELD["runs"] == 3

    run(scenario())


# -- crash consistency (rows written directly, as a crash would leave them) ----------------------


def test_recovery_skips_uncommitted_rows_and_ignores_duplicated_answers() -> None:
    store = MemoryStore()

    def make() -> DurableHost:
        return DurableHost(
            app, store=store, max_concurrent_activities=4, max_concurrent_orchestrators=2
        )

    async def scenario() -> None:
        first = make()
        async with first:
            instance_id = first.start_new("approval", None, "crashy")
            await until(
                lambda: any(
                    e["EventType"] == EventType.TASK_COMPLETED
                    for e in (first.snapshot(instance_id) or object()).history  # type: ignore[attr-defined]
                ),
                "the activity result to be committed",
            )
            committed = first.snapshot(instance_id)
        assert committed is not None
        (row,) = [
            e for (pk, rk), e in store.tables[TABLE].items() if (pk, rk) == ("crashy", INSTANCE_ROW)
        ]
        length, last_message = row["HistoryLength"], int(row["LastMessage"])
        execution_id = row["ExecutionId"]
        answer = next(e for e in committed.history if e["EventType"] == EventType.TASK_COMPLETED)
        # A crash left: a history row past the marker, a consumed message that was never
        # deleted, and a second answer to the same activity (it ran twice).
        garbage_event = {**answer, "EventType": int(EventType.TASK_SCHEDULED), "EventId": 99}
        await store.write(
            [
                upsert(
                    TABLE,
                    {
                        "PartitionKey": "crashy",
                        "RowKey": history_row_key(execution_id, length),
                        "ExecutionId": execution_id,
                        "EventType": int(EventType.TASK_SCHEDULED),
                        "Event": json.dumps(garbage_event),
                    },
                ),
                upsert(
                    TABLE,
                    {
                        "PartitionKey": "crashy",
                        "RowKey": message_row_key(last_message),
                        "InstanceId": "crashy",
                        "EventType": int(EventType.EVENT_RAISED),
                        "Event": json.dumps(
                            {**answer, "EventType": 15, "Name": "approval", "Input": '"stale"'}
                        ),
                    },
                ),
                upsert(
                    TABLE,
                    {
                        "PartitionKey": "crashy",
                        "RowKey": message_row_key(last_message + 1),
                        "InstanceId": "crashy",
                        "ExecutionId": execution_id,
                        "EventType": int(EventType.TASK_COMPLETED),
                        "Event": json.dumps(answer),
                    },
                ),
            ]
        )

        second = make()
        async with second:
            assert second.history(instance_id)[:length] == list(committed.history)
            second.raise_event(instance_id, "approval", "fresh", encoding="json")
            done = await second.wait_for_completion(instance_id, DEADLINE)

        assert output(done) == {"prepared": "prepared", "decision": "fresh"}
        answers = [e for e in done.history if e["EventType"] == EventType.TASK_COMPLETED]
        assert len(answers) == 2  # the duplicate is in the history, and was ignored
        assert not any(e.get("EventId") == 99 for e in done.history)
        leftover = [
            rk
            for (pk, rk) in store.tables[TABLE]
            if pk == "crashy" and rk.startswith(MESSAGE_PREFIX)
        ]
        assert leftover == []

    run(scenario())


# -- Azure Table limits ------------------------------------------------------------------------


def table_rows(
    azurite: Azurite, hub: str, partition: str, prefix: str | None = None
) -> list[dict[str, Any]]:
    """The rows of one instance's partition (those whose row key starts with ``prefix``)."""
    with TableClient.from_connection_string(azurite.connection_string, f"{hub}{TABLE}") as client:
        rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        return [dict(e) for e in rows if prefix is None or e["RowKey"].startswith(prefix)]


def test_large_values_go_to_blobs_and_wide_work_items_span_transactions(azurite: Azurite) -> None:
    hub = f"limits{uuid.uuid4().hex[:8]}"

    def make() -> DurableHost:
        return DurableHost(
            app,
            task_hub=hub,
            connection_string=azurite.connection_string,
            max_concurrent_activities=16,
            max_concurrent_orchestrators=4,
        )

    async def scenario() -> tuple[Any, Any]:
        async with make() as first:
            wide = first.start_new("fan_out", 250, "wide")
            large_id = first.start_new("large", None, "large")
            wide_done = await first.wait_for_completion(wide, DEADLINE)
            large_done = await first.wait_for_completion(large_id, DEADLINE)
        async with make() as second:
            assert second.snapshot("wide") == wide_done
            assert second.snapshot("large") == large_done
        return wide_done, large_done

    wide_done, large_done = run(scenario())

    assert output(wide_done) == sum(range(250))
    assert len(wide_done.history) > 500  # one checkpoint wrote > 250 rows: several transactions
    assert output(large_done) == {"length": len(BIG), "text": BIG}
    (instance,) = [row for row in table_rows(azurite, hub, "large") if row["RowKey"] == ""]
    assert "Output" not in instance and "Output_Blob" in instance
    history = table_rows(azurite, hub, "large", HISTORY_PREFIX)
    spilled = [row for row in history if "Events_Blob" in row]
    assert spilled
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    with blobs:
        names = [b.name for b in blobs.get_container_client(f"{hub}-largemessages").list_blobs()]
    assert len(names) >= 2


def test_purge_deletes_every_row_of_the_instance(azurite: Azurite) -> None:
    hub = f"purge{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with DurableHost(
            app, task_hub=hub, connection_string=azurite.connection_string
        ) as host:
            instance_id = host.start_new("fan_out", 3, "doomed")
            await host.wait_for_completion(instance_id, DEADLINE)
            assert table_rows(azurite, hub, "doomed", HISTORY_PREFIX)
            await asyncio.to_thread(host.purge, instance_id)
            assert host.snapshot(instance_id) is None

    run(scenario())
    assert table_rows(azurite, hub, "doomed") == []


def test_keys_of_any_text_round_trip_singly_and_in_transactions(azurite: Azurite) -> None:
    """The store writes rows itself (signed requests, hand-built batches): keys with quotes,
    spaces, percent signs and non-ASCII text must reach the service intact."""
    keys = ["it's", "a b", "é ü ✓ 𝄞", "x%20y", "q''uo'te", escape_key("sl/ash#?\\"), "+&=(~)!@$*"]
    shared = "p'é"
    store = TableStore(azurite.connection_string, f"keys{uuid.uuid4().hex[:8]}")

    async def scenario() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        await store.open()
        try:
            singles = [
                upsert(TABLE, {"PartitionKey": k, "RowKey": k, "N": 1, "F": 0.5}) for k in keys
            ]
            await asyncio.gather(*(store.write([op]) for op in singles))  # one row per request
            together = [upsert(TABLE, {"PartitionKey": shared, "RowKey": k}) for k in keys]
            await store.write(together)  # one transaction
            stored = sorted(row["RowKey"] for row in await store.partition(TABLE, shared))
            single_rows = [row for k in keys for row in await store.partition(TABLE, k)]
            await store.write([delete(TABLE, shared, k) for k in keys])
            await store.write([delete(TABLE, k, k) for k in keys])
            await store.write([delete(TABLE, "nobody", "here")])  # a missing row is no error
            left = [row for k in [shared, *keys] for row in await store.partition(TABLE, k)]
            return stored, left, single_rows
        finally:
            await store.close()

    stored, left, single_rows = run(scenario())

    assert stored == sorted(keys)
    assert [(row["PartitionKey"], row["RowKey"]) for row in single_rows] == [(k, k) for k in keys]
    assert all(row["N"] == 1 and row["F"] == 0.5 for row in single_rows)
    assert left == []


def test_writes_queued_behind_a_failed_write_fail_with_it(azurite: Azurite) -> None:
    """A commit marker must never land without the rows queued before it; once the failed
    partition's queue is empty it takes writes again (the writer tries its work item again)."""
    store = TableStore(azurite.connection_string, f"fail{uuid.uuid4().hex[:8]}")

    async def outcome(written: asyncio.Future[None]) -> str:
        try:
            await written
        except Exception as error:
            return type(error).__name__
        return "written"

    async def scenario() -> list[Any]:
        await store.open()
        try:
            unstorable = upsert(TABLE, {"PartitionKey": "p", "RowKey": "a", "Bad": object()})
            first = store.write([unstorable])
            behind = store.write([upsert(TABLE, {"PartitionKey": "p", "RowKey": "b"})])
            elsewhere = store.write([upsert(TABLE, {"PartitionKey": "q", "RowKey": "b"})])
            outcomes = [await outcome(w) for w in (first, behind, elsewhere)]
            after = await outcome(
                store.write([upsert(TABLE, {"PartitionKey": "p", "RowKey": "c"})])
            )
            rows = [row["RowKey"] for row in await store.partition(TABLE, "p")]
            return [*outcomes, after, rows]
        finally:
            await store.close()

    first, behind, elsewhere, after, rows = run(scenario())

    assert first == behind == "TypeError"
    assert elsewhere == after == "written"
    assert rows == ["c"]


def test_writes_are_cut_into_transactions_within_azure_limits() -> None:
    def chunks(ops: list[Op]) -> list[list[Op]]:
        waiting = deque((op, None) for op in ops)
        cut: list[list[Op]] = []
        while waiting:
            cut.append([op for op, _ in _take_chunk(waiting)])  # type: ignore[arg-type]
        return cut

    rows = [upsert(TABLE, {"PartitionKey": "p", "RowKey": f"r{i}"}) for i in range(250)]
    assert [len(chunk) for chunk in chunks(rows)] == [100, 100, 50]

    again = [rows[0], rows[1], delete(TABLE, "p", "r0"), rows[2]]
    assert [len(chunk) for chunk in chunks(again)] == [2, 2]  # a row at most once per batch

    heavy = [
        upsert(
            TABLE,
            {"PartitionKey": "p", "RowKey": f"h{i}", **{f"P{j}": "x" * 30_000 for j in range(5)}},
        )
        for i in range(40)
    ]
    sizes = [len(chunk) for chunk in chunks(heavy)]
    assert sum(sizes) == 40 and len(sizes) > 1  # kept under the 4 MiB payload limit
