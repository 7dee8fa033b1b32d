"""Orchestration status as the client sees it: the Azure Storage instance row, as JSON.

``DurableClient.GetStatusAsync`` reads the instance row the Azure Storage tracking store keeps
(``AzureTableTrackingStore.UpdateStateAsync``): runtime status, serialized input, output and
custom status (stored as text; ``null`` custom status is stored as the string ``"null"``), the
``ExecutionStarted`` time as created time and the last new event's time as last-updated time.
``HttpApiHandler`` turns it into ``StatusResponsePayload`` (camelCase, values parsed back into
JSON with ``ParseToJToken``, times as ``ToString("s") + "Z"``), optionally with the history
reshaped by ``DurableClient.GetDurableOrchestrationStatusAsync``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._history import (
    EVENT_TYPE_NAMES,
    EventType,
    JsonDict,
    OrchestrationStatus,
    parse_jtoken,
)

COMPLETED_STATUSES = frozenset(
    {
        OrchestrationStatus.COMPLETED,
        OrchestrationStatus.FAILED,
        OrchestrationStatus.TERMINATED,
        OrchestrationStatus.CANCELED,
    }
)
"""``HttpApiHandler.IsCompletedStatus``."""


@dataclass(frozen=True)
class InstanceSnapshot:
    """An immutable copy of one instance row plus its current history, safe to share."""

    instance_id: str
    name: str
    status: OrchestrationStatus
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: datetime
    last_updated_time: datetime
    execution_id: str
    history: tuple[JsonDict, ...]


@dataclass(frozen=True)
class OrchestrationStatusView:
    """What ``DurableOrchestrationClient.get_status`` would report, with parsed JSON values."""

    instance_id: str
    name: str
    runtime_status: str
    input: Any
    output: Any
    custom_status: Any
    created_time: datetime
    last_updated_time: datetime

    @classmethod
    def from_snapshot(cls, snapshot: InstanceSnapshot) -> OrchestrationStatusView:
        payload = status_payload(snapshot)
        return cls(
            instance_id=snapshot.instance_id,
            name=snapshot.name,
            runtime_status=payload["runtimeStatus"],
            input=payload["input"],
            output=payload["output"],
            custom_status=payload["customStatus"],
            created_time=snapshot.created_time,
            last_updated_time=snapshot.last_updated_time,
        )


def format_status_time(moment: datetime) -> str:
    """``DateTime.ToString("s") + "Z"``: whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def status_payload(
    snapshot: InstanceSnapshot,
    *,
    show_input: bool = True,
    show_history: bool = False,
    show_history_output: bool = False,
) -> JsonDict:
    """``StatusResponsePayload`` for one instance."""
    payload: JsonDict = {
        "name": snapshot.name,
        "instanceId": snapshot.instance_id,
        "runtimeStatus": snapshot.status.runtime_status,
        "input": parse_jtoken(snapshot.input) if show_input else None,
        "customStatus": parse_jtoken(snapshot.custom_status),
        "output": parse_jtoken(snapshot.output),
        "createdTime": format_status_time(snapshot.created_time),
        "lastUpdatedTime": format_status_time(snapshot.last_updated_time),
    }
    if show_history and snapshot.status is not OrchestrationStatus.PENDING and snapshot.history:
        payload["historyEvents"] = history_payload(
            snapshot.history, show_history_output=show_history_output, show_input=show_input
        )
    return payload


def history_payload(
    history: tuple[JsonDict, ...], *, show_history_output: bool, show_input: bool
) -> list[JsonDict]:
    """The ``showHistory`` reshaping: names for enums, scheduled events folded into results."""
    items = [dict(history_event) for history_event in history]
    scheduled: dict[str, tuple[int, Any, Any, Any]] = {}
    dropped: list[int] = []

    def fold(prefix: str, item: JsonDict) -> None:
        found = scheduled.get(f"{prefix}_{item.get('TaskScheduledId')}")
        if found is not None:
            index, name, timestamp, input_text = found
            item["ScheduledTime"] = timestamp
            item["FunctionName"] = name
            if show_input:
                item["Input"] = input_text
            dropped.append(index)

    for index, item in enumerate(items):
        kind = EventType(item["EventType"])
        item["EventType"] = EVENT_TYPE_NAMES[kind]
        if kind in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED):
            key = f"{EVENT_TYPE_NAMES[kind]}_{item.get('EventId')}"
            scheduled[key] = (index, item.get("Name"), item.get("Timestamp"), item.get("Input"))
            item.pop("Version", None)
        elif kind in (
            EventType.TASK_COMPLETED,
            EventType.TASK_FAILED,
            EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
            EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
        ):
            task_kind = kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED)
            fold("TaskScheduled" if task_kind else "SubOrchestrationInstanceCreated", item)
            item.pop("TaskScheduledId", None)
            has_result = kind in (
                EventType.TASK_COMPLETED,
                EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
            )
            if has_result and not show_history_output:
                item.pop("Result", None)
            elif has_result:
                item["Result"] = parse_jtoken(item.get("Result"))
        elif kind is EventType.EXECUTION_STARTED:
            item["FunctionName"] = item.pop("Name", None)
            for key in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(key, None)
        elif kind is EventType.EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = OrchestrationStatus(
                item["OrchestrationStatus"]
            ).runtime_status
            if show_history_output:
                item["Result"] = parse_jtoken(item.get("Result"))
            else:
                item.pop("Result", None)
        elif kind is EventType.TIMER_FIRED:
            item.pop("TimerId", None)
        elif kind in (EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED):
            dropped.append(index)
        if not show_input:
            item.pop("Input", None)
        item.pop("EventId", None)
        item.pop("IsPlayed", None)
    removed = set(dropped)
    return [item for index, item in enumerate(items) if index not in removed]
