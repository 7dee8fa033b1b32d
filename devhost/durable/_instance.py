"""One orchestration instance: its history, its work items, and its row in the instance table.

A work item is what DurableTask.Core's ``TaskOrchestrationDispatcher`` does with a batch of
messages (v2.17.1 ``OnProcessWorkItemAsync``): append ``OrchestratorStarted`` and the message
events, run one episode (:func:`~._shim.run_episode`), turn the decisions into history events
and outbound messages in sequence-number order, append ``OrchestratorCompleted``, and - on
``ContinueAsNew`` - start the next generation *in the same work item* with a fresh history
``[OrchestratorStarted, ExecutionStarted, carried-over events..., OrchestratorCompleted]``.

``IsPlayed`` follows what Azure Storage persists: an event is written once, after the episode
that first saw it, with the flag DurableTask.Core set while replaying it - true for events the
episode processed, false for ``OrchestratorStarted`` (never flagged) and for the events the
dispatcher appends after the episode (``TaskScheduled``, ``TimerCreated``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ._dtfx import (
    CompleteDecision,
    CreateSubOrchestrationDecision,
    CreateTimerDecision,
    Decision,
    ScheduleTaskDecision,
)
from ._history import (
    DEFAULT_VERSION,
    EventType,
    JsonDict,
    OrchestrationStatus,
    convert_to_jtoken,
    event,
    execution_started,
    format_datetime,
    orchestration_instance,
    parse_datetime,
)
from ._shim import EpisodeResult, run_episode
from ._status import InstanceSnapshot
from ._worker import DurableFunction, FunctionCatalog, FunctionOutcome, invoke_orchestrator

SCHEMA_VERSION = 1
"""``upperSchemaVersion`` the extension sends (``SchemaVersion.V2``; kept for SDK 1.1.0-1.1.3)."""

SCHEMA_VERSION_NEW = 2
"""``upperSchemaVersionNew`` (``SchemaVersion.V3``): the schema the Python SDK then uses."""

LONG_RUNNING_TIMER_INTERVAL_TEXT = "3.00:00:00"
MAXIMUM_SHORT_TIMER_DURATION_TEXT = "6.00:00:00"
DEFAULT_HTTP_SLEEP_MILLISECONDS = 30000

MAX_GENERATIONS_PER_WORK_ITEM = 1000
"""Guard for an orchestrator that continues as new without ever waiting (DTFx would spin)."""


@dataclass
class Message:
    """A control-queue message for an orchestration instance."""

    seq: int
    instance_id: str
    execution_id: str | None
    event: JsonDict


@dataclass(frozen=True)
class ActivityRequest:
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str


@dataclass(frozen=True)
class TimerRequest:
    fire_at: datetime
    instance_id: str
    execution_id: str
    event: JsonDict


@dataclass(frozen=True)
class OrchestratorMessage:
    instance_id: str
    execution_id: str | None
    event: JsonDict


Outbound = ActivityRequest | TimerRequest | OrchestratorMessage


@dataclass
class Instance:
    """The engine's state for one instance id (the current generation's history only)."""

    instance_id: str
    name: str
    execution_id: str
    input: str | None
    created_time: datetime
    last_updated_time: datetime
    parent: JsonDict | None = None
    status: OrchestrationStatus = OrchestrationStatus.PENDING
    output: str | None = None
    custom_status: str | None = None
    history: list[JsonDict] = field(default_factory=list)
    persisted: int = 0
    history_chunks: list[int] = field(default_factory=list)
    """Where each stored history row of this execution begins (``_records.py``)."""
    episodes: int = 0
    generations: int = 1
    cpu_seconds: float = 0.0
    peak_history_length: int = 0
    timers_created: int = 0
    """Durable timers created, over all generations (a retry waiting shows up here)."""
    waiting_on: str | None = None
    open_task_ids: list[int] = field(default_factory=list)
    buffered_events: list[str] = field(default_factory=list)
    pending_events: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def parent_instance_id(self) -> str | None:
        if self.parent is None:
            return None
        return str(self.parent["OrchestrationInstance"]["InstanceId"])

    @property
    def has_started(self) -> bool:
        return any(e["EventType"] == EventType.EXECUTION_STARTED for e in self.history)

    def copy(self) -> Instance:
        """The instance as it is now, to go back to if a work item is abandoned. The events are
        shared: a work item appends to the history, and marks only its own events as played."""
        return replace(
            self,
            history=list(self.history),
            history_chunks=list(self.history_chunks),
            warnings=list(self.warnings),
        )

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def snapshot(self) -> InstanceSnapshot:
        return InstanceSnapshot(
            instance_id=self.instance_id,
            name=self.name,
            status=self.status,
            input=self.input,
            output=self.output,
            custom_status=self.custom_status,
            created_time=self.created_time,
            last_updated_time=self.last_updated_time,
            execution_id=self.execution_id,
            history=tuple(self.history),
        )

    # -- the context JSON ------------------------------------------------------------------

    def context_json(self) -> str:
        """``OrchestrationContextToString``: what the extension passes to the Python function.

        Newtonsoft writes it indented; the whitespace means nothing to the SDK, so the compact
        (C-accelerated) encoder is used - long histories are re-sent every episode.
        """
        started = next(e for e in self.history if e["EventType"] == EventType.EXECUTION_STARTED)
        return json.dumps(
            {
                "history": self.history,
                "input": convert_to_jtoken(started.get("Input")),
                "instanceId": self.instance_id,
                "isReplaying": started["IsPlayed"],
                "parentInstanceId": self.parent_instance_id,
                "upperSchemaVersion": SCHEMA_VERSION,
                "upperSchemaVersionNew": SCHEMA_VERSION_NEW,
                "longRunningTimerIntervalDuration": LONG_RUNNING_TIMER_INTERVAL_TEXT,
                "maximumShortTimerDuration": MAXIMUM_SHORT_TIMER_DURATION_TEXT,
                "defaultHttpAsyncRequestSleepTimeMillseconds": DEFAULT_HTTP_SLEEP_MILLISECONDS,
            },
            ensure_ascii=False,
        )

    # -- work items ------------------------------------------------------------------------

    def run_work_item(
        self,
        events: list[JsonDict],
        *,
        now: Callable[[], datetime],
        new_execution_id: Callable[[], str],
        catalog: FunctionCatalog,
        invoke: Callable[[DurableFunction, str], FunctionOutcome] = invoke_orchestrator,
    ) -> list[Outbound]:
        """Process one batch of accepted message events; returns the messages to send.

        ``invoke`` calls the orchestrator function with the context JSON (in this process by
        default) and reports the CPU time it took.
        """
        outbound: list[Outbound] = []
        first_new = len(self.history)
        self.history.append(event(EventType.ORCHESTRATOR_STARTED, now()))
        self.history.extend(events)
        carried_status: str | None = None
        for _ in range(MAX_GENERATIONS_PER_WORK_ITEM):
            result = self._run_episode(catalog, invoke)
            continued = self._dispatch(result.decisions, now, new_execution_id, outbound)
            if continued is None:
                if self.history[-1]["EventType"] != EventType.ORCHESTRATOR_COMPLETED:
                    self.history.append(event(EventType.ORCHESTRATOR_COMPLETED, now()))
                status = result.custom_status
                self._track(
                    self.history[first_new:], status if status is not None else carried_status
                )
                self.persisted = len(self.history)
                return outbound
            carried_status = result.custom_status
            self._start_next_generation(continued, now(), new_execution_id())
            first_new = 0
        raise RuntimeError(
            f"{self.instance_id}: continued as new {MAX_GENERATIONS_PER_WORK_ITEM} times in one "
            "work item without waiting for anything"
        )

    def _run_episode(
        self,
        catalog: FunctionCatalog,
        invoke: Callable[[DurableFunction, str], FunctionOutcome],
    ) -> EpisodeResult:
        function = catalog.orchestrator(self.name)
        if function is None:
            raise RuntimeError(f"no orchestrator function named {self.name!r}")

        def invoke_function() -> FunctionOutcome:
            outcome = invoke(function, self.context_json())
            self.cpu_seconds += outcome.cpu_seconds
            return outcome

        result = run_episode(
            self.history,
            instance_id=self.instance_id,
            execution_id=self.execution_id,
            orchestrator_name=function.name,
            parent_instance_id=self.parent_instance_id,
            catalog=catalog,
            invoke=invoke_function,
            warn=self.warn,
        )
        self.episodes += 1
        for history_event in self.history[self.persisted :]:
            if history_event["EventType"] != EventType.ORCHESTRATOR_STARTED:
                history_event["IsPlayed"] = True
        self.waiting_on = result.waiting_on
        self.open_task_ids = result.open_task_ids
        self.buffered_events = result.buffered_events
        self.pending_events = result.pending_events
        return result

    def _dispatch(
        self,
        decisions: list[Decision],
        now: Callable[[], datetime],
        new_execution_id: Callable[[], str],
        outbound: list[Outbound],
    ) -> CompleteDecision | None:
        """Turn decisions into history events and messages, as the dispatcher does."""
        continued: CompleteDecision | None = None
        for decision in decisions:
            stamp = now()
            if isinstance(decision, ScheduleTaskDecision):
                self._append(
                    EventType.TASK_SCHEDULED,
                    stamp,
                    decision.id,
                    Name=decision.name,
                    Version=DEFAULT_VERSION,
                    Input=decision.input,
                )
                outbound.append(
                    ActivityRequest(
                        self.instance_id,
                        self.execution_id,
                        decision.id,
                        decision.name,
                        decision.input,
                    )
                )
            elif isinstance(decision, CreateTimerDecision):
                fire_at = format_datetime(decision.fire_at)
                self._append(EventType.TIMER_CREATED, stamp, decision.id, FireAt=fire_at)
                self.timers_created += 1
                fired = event(EventType.TIMER_FIRED, stamp, TimerId=decision.id, FireAt=fire_at)
                outbound.append(
                    TimerRequest(decision.fire_at, self.instance_id, self.execution_id, fired)
                )
            elif isinstance(decision, CreateSubOrchestrationDecision):
                self._append(
                    EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
                    stamp,
                    decision.id,
                    Name=decision.name,
                    Version=DEFAULT_VERSION,
                    InstanceId=decision.instance_id,
                    Input=decision.input,
                    ClientSpanId=None,
                )
                child_execution = new_execution_id()
                parent = {
                    "Name": self.name,
                    "Version": DEFAULT_VERSION,
                    "OrchestrationInstance": orchestration_instance(
                        self.instance_id, self.execution_id
                    ),
                    "TaskScheduleId": decision.id,
                }
                started = execution_started(
                    stamp,
                    instance_id=decision.instance_id,
                    execution_id=child_execution,
                    name=decision.name,
                    input_text=decision.input,
                    parent=parent,
                )
                outbound.append(OrchestratorMessage(decision.instance_id, child_execution, started))
            elif decision.status is OrchestrationStatus.CONTINUED_AS_NEW:
                self._append(
                    EventType.CONTINUE_AS_NEW,
                    stamp,
                    decision.id,
                    OrchestrationStatus=int(decision.status),
                    Result=decision.result,
                    FailureDetails=None,
                )
                continued = decision
            else:
                self._append(
                    EventType.EXECUTION_COMPLETED,
                    stamp,
                    decision.id,
                    OrchestrationStatus=int(decision.status),
                    Result=decision.result,
                    FailureDetails=None,
                )
                self._notify_parent(decision, stamp, outbound)
        return continued

    def _append(self, kind: EventType, stamp: datetime, event_id: int, **fields: Any) -> None:
        self.history.append(event(kind, stamp, event_id, **fields))
        self.peak_history_length = max(self.peak_history_length, len(self.history))

    def _notify_parent(
        self, decision: CompleteDecision, stamp: datetime, outbound: list[Outbound]
    ) -> None:
        if self.parent is None:
            return
        task_id = self.parent["TaskScheduleId"]
        if decision.status is OrchestrationStatus.COMPLETED:
            notice = event(
                EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
                stamp,
                TaskScheduledId=task_id,
                Result=decision.result,
            )
        elif decision.status in (OrchestrationStatus.FAILED, OrchestrationStatus.TERMINATED):
            notice = event(
                EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                stamp,
                TaskScheduledId=task_id,
                Reason=decision.result,
                Details=decision.details,
                FailureDetails=None,
            )
        else:
            return
        target = self.parent["OrchestrationInstance"]
        outbound.append(OrchestratorMessage(target["InstanceId"], target["ExecutionId"], notice))

    def _start_next_generation(
        self, decision: CompleteDecision, stamp: datetime, execution_id: str
    ) -> None:
        self.execution_id = execution_id
        self.generations += 1
        started = execution_started(
            stamp,
            instance_id=self.instance_id,
            execution_id=execution_id,
            name=self.name,
            input_text=decision.result,
            parent=self.parent,
        )
        self.history = [event(EventType.ORCHESTRATOR_STARTED, stamp), started]
        # The carried-over events keep the IsPlayed flag their first processing gave them.
        self.history.extend(dict(carried) for carried in decision.carryover_events)
        self.history.append(event(EventType.ORCHESTRATOR_COMPLETED, stamp))
        self.persisted = 0
        self.history_chunks = []
        self.peak_history_length = max(self.peak_history_length, len(self.history))

    def _track(self, new_events: list[JsonDict], custom_status: str | None) -> None:
        """``AzureTableTrackingStore.UpdateStateAsync``: the instance row after a work item."""
        self.peak_history_length = max(self.peak_history_length, len(self.history))
        for history_event in new_events:
            kind = history_event["EventType"]
            if kind == EventType.EXECUTION_STARTED:
                self.status = OrchestrationStatus.RUNNING
                self.created_time = parse_datetime(history_event["Timestamp"])
                self.input = history_event.get("Input")
            elif kind == EventType.EXECUTION_COMPLETED:
                self.status = OrchestrationStatus(history_event["OrchestrationStatus"])
                self.output = history_event.get("Result")
            elif kind == EventType.EXECUTION_TERMINATED:
                self.status = OrchestrationStatus.TERMINATED
                self.output = history_event.get("Input")
            elif kind in (EventType.EXECUTION_SUSPENDED, EventType.EXECUTION_RESUMED):
                # The row's output holds the reason while suspended (and after resuming).
                suspended = kind == EventType.EXECUTION_SUSPENDED
                self.status = (
                    OrchestrationStatus.SUSPENDED if suspended else OrchestrationStatus.RUNNING
                )
                self.output = history_event.get("Reason")
        self.custom_status = custom_status if custom_status is not None else "null"
        if new_events:
            self.last_updated_time = parse_datetime(new_events[-1]["Timestamp"])
