"""History events in the shape the Durable extension hands to an out-of-proc orchestrator.

The extension serialises DurableTask.Core ``HistoryEvent`` objects with Newtonsoft defaults:
PascalCase property names, ``EventType`` (and ``OrchestrationStatus``) as integers, ``DateTime``
values as ISO-8601 with seven fractional digits and ``Z``. Event ids follow DurableTask.Core:
``TaskScheduled``/``TimerCreated``/``SubOrchestrationInstanceCreated`` and the completion event
carry the orchestration's sequence number, everything else ``-1`` (completions point back with
``TaskScheduledId``/``TimerId``). Sources: DurableTask.Core ``History/*.cs`` (v2.17.1, the
version extension 2.13.7 references) and the Python SDK's ``tests/test_utils/ContextBuilder.py``.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Any

JsonDict = dict[str, Any]


class EventType(enum.IntEnum):
    """``DurableTask.Core.History.EventType``."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_INSTANCE_CREATED = 7
    SUB_ORCHESTRATION_INSTANCE_COMPLETED = 8
    SUB_ORCHESTRATION_INSTANCE_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


def _pascal_case(enum_name: str) -> str:
    """``TASK_SCHEDULED`` -> ``TaskScheduled``: the .NET member name of an enum value."""
    return "".join(part.capitalize() for part in enum_name.split("_"))


EVENT_TYPE_NAMES: dict[int, str] = {kind: _pascal_case(kind.name) for kind in EventType}
"""``EventType`` values by the names Newtonsoft writes for them (``showHistory`` output)."""


class OrchestrationStatus(enum.IntEnum):
    """``DurableTask.Core.OrchestrationStatus``; its names are the client's runtime statuses."""

    RUNNING = 0
    COMPLETED = 1
    CONTINUED_AS_NEW = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    PENDING = 6
    SUSPENDED = 7

    @property
    def runtime_status(self) -> str:
        return _pascal_case(self.name)


STATUS_BY_RUNTIME_STATUS = {status.runtime_status: status for status in OrchestrationStatus}
"""The reverse of ``OrchestrationStatus.runtime_status`` (``Enum.Parse``, case-sensitive)."""


RUNNING_STATUSES = frozenset(
    {
        OrchestrationStatus.RUNNING,
        OrchestrationStatus.PENDING,
        OrchestrationStatus.CONTINUED_AS_NEW,
        OrchestrationStatus.SUSPENDED,
    }
)
"""``DurableClient.IsOrchestrationRunning``: the states raise-event and terminate accept."""

DEFAULT_VERSION = ""
"""``DurableOrchestrationContext.DefaultVersion``: versions are not supported, always empty."""


def format_datetime(moment: datetime) -> str:
    """A UTC ``DateTime`` as Newtonsoft writes it (seven fractional digits, ``Z``)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def parse_datetime(text: str) -> datetime:
    """Parse a history/action timestamp; naive values are taken as UTC, like ``DateTime``."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def dumps(value: Any) -> str:
    """``JToken.ToString(Formatting.None)``: compact JSON, non-ASCII left unescaped."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def convert_to_jtoken(text: str | None) -> Any:
    """``MessagePayloadDataConverter.ConvertToJToken``: the first JSON token of ``text``."""
    if text is None:
        return None
    value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    return value


def parse_jtoken(text: str | None) -> Any:
    """``DurableClient.ParseToJToken``: like :func:`convert_to_jtoken`, raw text when not JSON."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return convert_to_jtoken(stripped)
    except ValueError:
        return stripped


def event(
    event_type: EventType, timestamp: datetime, event_id: int = -1, **fields: Any
) -> JsonDict:
    """One history event as a JSON object (``IsPlayed`` starts false, see ``Instance``)."""
    return {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_datetime(timestamp),
        **fields,
    }


def orchestration_instance(instance_id: str, execution_id: str) -> JsonDict:
    return {"InstanceId": instance_id, "ExecutionId": execution_id}


def execution_started(
    timestamp: datetime,
    *,
    instance_id: str,
    execution_id: str,
    name: str,
    input_text: str | None,
    parent: JsonDict | None,
) -> JsonDict:
    return event(
        EventType.EXECUTION_STARTED,
        timestamp,
        OrchestrationInstance=orchestration_instance(instance_id, execution_id),
        ParentInstance=parent,
        Name=name,
        Version=DEFAULT_VERSION,
        Input=input_text,
        Tags=None,
        Correlation=None,
        ScheduledStartTime=None,
        Generation=None,
    )
