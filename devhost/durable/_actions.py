"""The orchestrator state the Python SDK returns, parsed as the extension's Newtonsoft does.

``OutOfProcOrchestrationShim.OutOfProcOrchestratorState`` and ``AsyncAction`` (extension
v2.13.7): ``actionType`` and ``schemaVersion`` go through ``StringEnumConverter`` (numbers or
names), ``retryOptions`` through ``RetryOptionsConverter`` (first interval and attempts are
required), ``input`` stays whatever JSON value the SDK sent (always a JSON *string* from the
Python SDK, which ``df_dumps`` its inputs).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._dtfx import RetryOptions
from ._history import JsonDict, parse_datetime


class SchemaVersion(enum.IntEnum):
    ORIGINAL = 0
    V2 = 1
    V3 = 2


class ActionType(enum.IntEnum):
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    SCHEDULED_SIGNAL_ENTITY = 10
    WHEN_ANY = 11
    WHEN_ALL = 12


_ACTION_TYPE_BY_NAME = {member.name.replace("_", "").casefold(): member for member in ActionType}
UNSUPPORTED_ACTIONS = {
    ActionType.CALL_ENTITY,
    ActionType.CALL_HTTP,
    ActionType.SIGNAL_ENTITY,
    ActionType.SCHEDULED_SIGNAL_ENTITY,
}


@dataclass(frozen=True)
class AsyncAction:
    """``OutOfProcOrchestrationShim.AsyncAction`` as Newtonsoft would deserialise it."""

    action_type: int
    function_name: str | None
    input: Any
    compound_actions: tuple[AsyncAction, ...] | None
    fire_at: datetime | None
    external_event_name: str | None
    is_canceled: bool
    retry_options: RetryOptions | None
    instance_id: str | None

    @classmethod
    def from_json(cls, data: JsonDict) -> AsyncAction:
        raw_type = data.get("actionType")
        if isinstance(raw_type, str):  # StringEnumConverter accepts names as well as numbers
            action_type = int(_ACTION_TYPE_BY_NAME[raw_type.casefold()])
        else:
            action_type = int(raw_type or 0)
        compound = data.get("compoundActions")
        retry = data.get("retryOptions")
        fire_at = data.get("fireAt")
        return cls(
            action_type=action_type,
            function_name=data.get("functionName"),
            input=data.get("input"),
            compound_actions=None if compound is None else tuple(map(cls.from_json, compound)),
            fire_at=None if fire_at is None else parse_datetime(fire_at),
            external_event_name=data.get("externalEventName"),
            is_canceled=bool(data.get("isCanceled", False)),
            retry_options=None if retry is None else RetryOptions.from_json(retry),
            instance_id=data.get("instanceId"),
        )

    def describe(self) -> str:
        try:
            kind = ActionType(self.action_type).name
        except ValueError:
            kind = f"actionType {self.action_type}"
        if self.compound_actions is not None:
            children = ", ".join(child.describe() for child in self.compound_actions)
            return f"{kind}[{children}]"
        detail = self.function_name or self.external_event_name
        if self.fire_at is not None and detail is None:
            detail = self.fire_at.isoformat()
        return f"{kind}({detail})" if detail else kind


@dataclass(frozen=True)
class OrchestratorState:
    """``OutOfProcOrchestratorState``: what the SDK returns (or embeds in its exception)."""

    is_done: bool
    actions: tuple[tuple[AsyncAction, ...], ...] | None
    output: Any
    error: str | None
    custom_status: Any
    schema_version: int

    @classmethod
    def from_json(cls, data: JsonDict) -> OrchestratorState:
        actions = data.get("actions")
        schema = data.get("schemaVersion", SchemaVersion.ORIGINAL)
        if isinstance(schema, str):
            schema = SchemaVersion[schema.upper()]
        return cls(
            is_done=bool(data.get("isDone", False)),
            actions=None
            if actions is None
            else tuple(tuple(map(AsyncAction.from_json, group)) for group in actions),
            output=data.get("output"),
            error=data.get("error"),
            custom_status=data.get("customStatus"),
            schema_version=int(schema),
        )
