"""The persistence schema of ``DurableHost`` and crash recovery from it.

One table per task hub, ``<hub>State``, with one partition per instance (the instance id,
escaped: ``_store.escape_key``) holding everything about it, told apart by row key:

``""``  the instance row clients read (``Name``, ``RuntimeStatus``, ``Input``, ``Output``,
    ``CustomStatus``, ``CreatedTime``, ``LastUpdatedTime``, ``ExecutionId``, ``Parent``) plus
    the *commit marker* of the last checkpointed work item: ``HistoryLength`` (events of
    execution ``ExecutionId`` that are committed) and ``LastMessage`` (the sequence number of
    the newest control message consumed), and the observability counters (``Episodes``,
    ``Generations``, ``CpuSeconds``, ``PeakHistory``).
``h.{executionId}.{index:08d}``  the history events one checkpoint added, from ``index`` on
    (``Events``: a JSON array in the shape the orchestrator receives), append-only per
    execution.
``c.{sequence:020d}``  a pending control message (client commands, sub-orchestration
    results and starts; an activity's answer is not written on its own, see below).
``t.{executionId}.{timerId:08d}``  a durable timer with its ``FireAt`` (its ``TimerFired``
    message is created when it fires).
``w.{executionId}.{taskId:08d}``  an activity scheduled and not yet answered (the work-item
    queue).

Keeping an instance in one partition lets the store write what belongs together as one
entity-group transaction: a work item's history, work items, timers, commit marker and the
deletion of the messages it consumed - and of the work items whose answers it consumed.
The store applies one partition's writes in order and stops writing to a partition after a
write failed (``_store.py``), so the order below holds even when a write spans transactions.

A work item is checkpointed in this order: history rows, new work items, timers and messages
to other instances first; then the instance row (the commit marker) and the deletion of the
consumed messages and answered work items. An activity's answer reaches the store only as the
history of the checkpoint that consumes it, which deletes its work item in the same
transaction (one write per activity instead of two); a crash before that checkpoint leaves
the work item, which runs again. After a crash, rows past the marker are ignored: history
beyond ``HistoryLength`` and messages at or below ``LastMessage`` are garbage, everything else
is replayed - pending messages re-queued, timers re-armed, work items still there dispatched
again (at-least-once). A checkpoint re-run after a crash may send a message twice; the receiver
drops a second ``ExecutionStarted`` and DTFx ignores a second answer to the same task, as in
Azure.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._history import (
    STATUS_BY_RUNTIME_STATUS,
    EventType,
    JsonDict,
    dumps,
    format_datetime,
    parse_datetime,
)
from ._instance import (
    ActivityRequest,
    Instance,
    Message,
    OrchestratorMessage,
    Outbound,
    TimerRequest,
)
from ._store import TABLES, Entity, Op, delete, escape_key, upsert

(TABLE,) = TABLES

INSTANCE_ROW = ""
HISTORY_PREFIX = "h."
MESSAGE_PREFIX = "c."
TIMER_PREFIX = "t."
WORK_ITEM_PREFIX = "w."

_EXECUTION_IDS = uuid.UUID("6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f")


@dataclass
class StoredMessage(Message):
    """A control message and the row that holds it (``None``: never written), with the rows
    the checkpoint that consumes it deletes (an activity's answer: its work item)."""

    row_key: str | None = None
    consumes: tuple[Op, ...] = ()


def message_row_key(seq: int) -> str:
    return f"{MESSAGE_PREFIX}{seq:020d}"


def timer_row_key(execution_id: str, timer_id: int) -> str:
    return f"{TIMER_PREFIX}{execution_id}.{timer_id:08d}"


def history_row_key(execution_id: str, index: int) -> str:
    return f"{HISTORY_PREFIX}{execution_id}.{index:08d}"


def work_item_row_key(execution_id: str, task_id: int) -> str:
    return f"{WORK_ITEM_PREFIX}{execution_id}.{task_id:08d}"


def _optional(entity: Entity, **values: Any) -> Entity:
    entity.update({key: value for key, value in values.items() if value is not None})
    return entity


# -- rows -----------------------------------------------------------------------------------


def instance_entity(state: Instance, last_message: int) -> Entity:
    return _optional(
        {
            "PartitionKey": escape_key(state.instance_id),
            "RowKey": INSTANCE_ROW,
            "InstanceId": state.instance_id,
            "Name": state.name,
            "RuntimeStatus": state.status.runtime_status,
            "CreatedTime": format_datetime(state.created_time),
            "LastUpdatedTime": format_datetime(state.last_updated_time),
            "ExecutionId": state.execution_id,
            "HistoryLength": state.persisted,
            "LastMessage": str(last_message),
            "Episodes": state.episodes,
            "Generations": state.generations,
            "CpuSeconds": float(state.cpu_seconds),
            "PeakHistory": max(state.peak_history_length, len(state.history)),
            "Timers": state.timers_created,
        },
        Input=state.input,
        Output=state.output,
        CustomStatus=state.custom_status,
        Parent=None if state.parent is None else dumps(state.parent),
    )


def instance_from_entity(entity: Entity) -> tuple[Instance, int]:
    parent = entity.get("Parent")
    state = Instance(
        instance_id=entity["InstanceId"],
        name=entity["Name"],
        execution_id=entity["ExecutionId"],
        input=entity.get("Input"),
        created_time=parse_datetime(entity["CreatedTime"]),
        last_updated_time=parse_datetime(entity["LastUpdatedTime"]),
        parent=None if parent is None else json.loads(parent),
        status=STATUS_BY_RUNTIME_STATUS[entity["RuntimeStatus"]],
        output=entity.get("Output"),
        custom_status=entity.get("CustomStatus"),
        episodes=int(entity.get("Episodes", 0)),
        generations=int(entity.get("Generations", 1)),
        cpu_seconds=float(entity.get("CpuSeconds", 0.0)),
        peak_history_length=int(entity.get("PeakHistory", 0)),
        timers_created=int(entity.get("Timers", 0)),
    )
    state.persisted = int(entity.get("HistoryLength", 0))
    return state, int(entity.get("LastMessage") or 0)


def history_entity(
    instance_id: str, execution_id: str, first: int, events: list[JsonDict]
) -> Entity:
    """The events a checkpoint added, from index ``first`` on, in one row (one entity per
    checkpoint, not one per event: Azurite's cost is per entity)."""
    return {
        "PartitionKey": escape_key(instance_id),
        "RowKey": history_row_key(execution_id, first),
        "ExecutionId": execution_id,
        "Count": len(events),
        "Events": dumps(events),
    }


def message_entity(message: Message, row_key: str) -> Entity:
    return _optional(
        {
            "PartitionKey": escape_key(message.instance_id),
            "RowKey": row_key,
            "InstanceId": message.instance_id,
            "EventType": int(message.event["EventType"]),
            "Event": dumps(message.event),
        },
        ExecutionId=message.execution_id,
    )


def timer_entity(timer: TimerRequest) -> Entity:
    return {
        "PartitionKey": escape_key(timer.instance_id),
        "RowKey": timer_row_key(timer.execution_id, timer.event["TimerId"]),
        "InstanceId": timer.instance_id,
        "ExecutionId": timer.execution_id,
        "FireAt": format_datetime(timer.fire_at),
        "EventType": int(EventType.TIMER_FIRED),
        "Event": dumps(timer.event),
    }


def work_item_entity(request: ActivityRequest) -> Entity:
    return {
        "PartitionKey": escape_key(request.instance_id),
        "RowKey": work_item_row_key(request.execution_id, request.task_id),
        "InstanceId": request.instance_id,
        "ExecutionId": request.execution_id,
        "TaskId": request.task_id,
        "Name": request.name,
        "Input": request.input,
    }


def work_item_delete(request: ActivityRequest) -> Op:
    key = work_item_row_key(request.execution_id, request.task_id)
    return delete(TABLE, escape_key(request.instance_id), key)


# -- checkpoints --------------------------------------------------------------------------------


def checkpoint_rows(
    state: Instance, before: tuple[str, int], outbound: list[Outbound]
) -> tuple[list[Op], list[ActivityRequest], list[TimerRequest], list[OrchestratorMessage]]:
    """The rows a work item adds to its partition (new history, work items, timers) and the
    messages it sends to other instances.

    ``before`` is the execution id and history length before the work item: after a
    continue-as-new the new execution's history is written from its first event.
    """
    before_execution, before_length = before
    first_new = 0 if state.execution_id != before_execution else before_length
    ops = []
    if len(state.history) > first_new:
        added = state.history[first_new:]
        ops.append(
            upsert(TABLE, history_entity(state.instance_id, state.execution_id, first_new, added))
        )
        state.history_chunks.append(first_new)
    activities: list[ActivityRequest] = []
    timers: list[TimerRequest] = []
    messages: list[OrchestratorMessage] = []
    for item in outbound:
        if isinstance(item, ActivityRequest):
            ops.append(upsert(TABLE, work_item_entity(item)))
            activities.append(item)
        elif isinstance(item, TimerRequest):
            ops.append(upsert(TABLE, timer_entity(item)))
            timers.append(item)
        else:
            messages.append(item)
    return ops, activities, timers, messages


def consumed_rows(instance_id: str, batch: Iterable[StoredMessage]) -> list[Op]:
    key = escape_key(instance_id)
    rows = [delete(TABLE, key, m.row_key) for m in batch if m.row_key is not None]
    return rows + [op for m in batch for op in m.consumes]


def history_rows(instance_id: str, execution_id: str, chunks: list[int]) -> list[Op]:
    """Deletes of an execution's history rows (``chunks``: where each row begins)."""
    key = escape_key(instance_id)
    return [delete(TABLE, key, history_row_key(execution_id, first)) for first in chunks]


class ExecutionIds:
    """Execution ids for one work item, derived from what it consumed.

    A work item re-run after a crash then gives its sub-orchestrations and its next generation
    the same ids as the first run, whose messages may already be out.
    """

    def __init__(self, instance_id: str, execution_id: str, first_seq: int) -> None:
        self._base = f"{instance_id}\n{execution_id}\n{first_seq}"
        self._count = 0

    def __call__(self) -> str:
        self._count += 1
        return uuid.uuid5(_EXECUTION_IDS, f"{self._base}\n{self._count}").hex


# -- recovery -------------------------------------------------------------------------------


@dataclass
class Recovered:
    """Everything a host needs to continue where the stored state left off."""

    instances: list[tuple[Instance, int]] = field(default_factory=list)
    inboxes: dict[str, list[StoredMessage]] = field(default_factory=dict)
    timers: list[tuple[TimerRequest, str]] = field(default_factory=list)
    work_items: list[ActivityRequest] = field(default_factory=list)
    garbage: list[Op] = field(default_factory=list)
    last_seq: int = 0


def recover(rows: list[Entity]) -> Recovered:
    """Rebuild committed state from the task hub's table (see the module docstring)."""
    instance_rows: list[Entity] = []
    history: list[Entity] = []
    message_rows: list[Entity] = []
    work_item_rows: list[Entity] = []
    found = Recovered()
    for row in rows:
        row_key = row["RowKey"]
        if row_key == INSTANCE_ROW:
            instance_rows.append(row)
        elif row_key.startswith(HISTORY_PREFIX):
            history.append(row)
        elif row_key.startswith((MESSAGE_PREFIX, TIMER_PREFIX)):
            message_rows.append(row)
        elif row_key.startswith(WORK_ITEM_PREFIX):
            work_item_rows.append(row)
        else:  # not ours
            found.garbage.append(delete(TABLE, row["PartitionKey"], row_key))

    states: dict[str, tuple[Instance, int]] = {}
    for row in instance_rows:
        state, last_message = instance_from_entity(row)
        states[escape_key(state.instance_id)] = (state, last_message)
        found.last_seq = max(found.last_seq, last_message)

    events: dict[str, dict[int, JsonDict]] = {}
    chunks: dict[str, list[int]] = {}
    for row in history:
        pk, rk = row["PartitionKey"], row["RowKey"]
        owner = states.get(pk)
        execution_id, _, index_text = rk[len(HISTORY_PREFIX) :].rpartition(".")
        first = int(index_text)
        if owner is None or execution_id != owner[0].execution_id or first >= owner[0].persisted:
            found.garbage.append(delete(TABLE, pk, rk))
            continue
        added = json.loads(row["Events"]) if "Events" in row else [json.loads(row["Event"])]
        for index, history_event in enumerate(added, first):
            events.setdefault(pk, {})[index] = history_event
        chunks.setdefault(pk, []).append(first)
    for pk, (state, last_message) in states.items():
        mine = events.get(pk, {})
        if any(index not in mine for index in range(state.persisted)):
            raise RuntimeError(
                f"stored history of {state.instance_id!r} is incomplete: {len(mine)} of "
                f"{state.persisted} events of execution {state.execution_id}"
            )
        state.history = [mine[index] for index in range(state.persisted)]
        state.history_chunks = sorted(chunks.get(pk, []))
        state.peak_history_length = max(state.peak_history_length, len(state.history))
        found.instances.append((state, last_message))

    answered: set[tuple[str, str, int]] = set()
    fired: set[tuple[str, str, int]] = set()
    for pk, (state, _) in states.items():
        for history_event in state.history:
            kind = history_event["EventType"]
            if kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
                answered.add((pk, state.execution_id, history_event["TaskScheduledId"]))
            elif kind == EventType.TIMER_FIRED:
                fired.add((pk, state.execution_id, history_event["TimerId"]))

    for row in sorted(message_rows, key=lambda r: (r["PartitionKey"], r["RowKey"])):
        pk, rk = row["PartitionKey"], row["RowKey"]
        owner = states.get(pk)
        if rk.startswith(TIMER_PREFIX):
            timer_event = json.loads(row["Event"])
            execution_id = row["ExecutionId"]
            key = (pk, execution_id, timer_event["TimerId"])
            if owner is not None and owner[0].execution_id == execution_id and key not in fired:
                timer = TimerRequest(
                    parse_datetime(row["FireAt"]), row["InstanceId"], execution_id, timer_event
                )
                found.timers.append((timer, rk))
            else:
                found.garbage.append(delete(TABLE, pk, rk))
            continue
        seq = int(rk[len(MESSAGE_PREFIX) :])
        found.last_seq = max(found.last_seq, seq)
        if owner is not None and seq <= owner[1]:
            found.garbage.append(delete(TABLE, pk, rk))
            continue
        message_event = json.loads(row["Event"])
        message = StoredMessage(
            seq, row["InstanceId"], row.get("ExecutionId"), message_event, row_key=rk
        )
        found.inboxes.setdefault(row["InstanceId"], []).append(message)
        if message_event["EventType"] in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
            answered.add((pk, message.execution_id or "", message_event["TaskScheduledId"]))

    for row in work_item_rows:
        pk = row["PartitionKey"]
        key = (pk, row["ExecutionId"], int(row["TaskId"]))
        if key in answered:  # the answer was recorded; only the queue clean-up was lost
            found.garbage.append(delete(TABLE, pk, row["RowKey"]))
            continue
        found.work_items.append(
            ActivityRequest(
                row["InstanceId"], row["ExecutionId"], int(row["TaskId"]), row["Name"], row["Input"]
            )
        )
    return found
