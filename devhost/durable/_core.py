"""What every engine shares: client commands, instance rows, message batches, activity results.

``EngineCore`` owns the parts of the extension and the Azure Storage backend that do not depend
on *when* work runs: validating client commands (``DurableClient``/``HttpApiHandler`` checks),
publishing instance rows, turning a batch of control-queue messages into an orchestration work
item (``TaskOrchestrationDispatcher.ReconcileMessagesWithState``, sub-orchestration creation),
and turning an activity outcome into its ``TaskCompleted``/``TaskFailed`` message. Engines add
a scheduling policy: ``DurableEngine`` (step by step, virtual clock) and ``DurableHost`` (real
time, concurrent, persistent).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from azure.functions.decorators.function_app import FunctionRegister

from ..loader import index_functions
from ._history import (
    EVENT_TYPE_NAMES,
    RUNNING_STATUSES,
    EventType,
    JsonDict,
    OrchestrationStatus,
    dumps,
    event,
    execution_started,
    parse_datetime,
)
from ._instance import ActivityRequest, Instance, Message, OrchestratorMessage
from ._status import COMPLETED_STATUSES, InstanceSnapshot, OrchestrationStatusView
from ._types import (
    ActivityCall,
    DiscardedMessage,
    EngineSummary,
    InstanceExistsError,
    InstanceGoneError,
    InstanceInfo,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    InvalidOperationError,
    UnknownFunctionError,
)
from ._worker import ActivityOutcome, FunctionCatalog, unknown_function_message

DEFAULT_TASK_HUB = "TestHubName"
DEFAULT_CONNECTION_NAME = "Storage"
"""``ConnectionStringNames.Storage``: the connection name the extension puts in its URLs."""
MAX_INSTANCE_ID_LENGTH = 256

EXECUTABLE_STATUSES = frozenset(
    {OrchestrationStatus.RUNNING, OrchestrationStatus.PENDING, OrchestrationStatus.SUSPENDED}
)
"""``AzureStorageOrchestrationService.IsExecutableInstance``."""

SUSPENDABLE_STATUSES = frozenset(
    {
        OrchestrationStatus.RUNNING,
        OrchestrationStatus.PENDING,
        OrchestrationStatus.CONTINUED_AS_NEW,
    }
)
"""``DurableClient.IsOrchestrationSuspendable``."""


@dataclass(frozen=True)
class Start:
    instance_id: str
    name: str
    input_text: str | None
    execution_id: str
    created_time: datetime


@dataclass(frozen=True)
class RaiseEvent:
    instance_id: str
    name: str
    input_text: str


@dataclass(frozen=True)
class Terminate:
    instance_id: str
    reason: str | None


@dataclass(frozen=True)
class Suspend:
    instance_id: str
    reason: str | None


@dataclass(frozen=True)
class Resume:
    instance_id: str
    reason: str | None


@dataclass(frozen=True)
class Purge:
    instance_id: str


Command = Start | RaiseEvent | Terminate | Suspend | Resume | Purge


@dataclass
class WorkItem:
    """An orchestration work item ready to run: the instance and the events it accepted."""

    state: Instance
    events: list[JsonDict]
    kinds: str


class EngineCore:
    """Instance rows, commands and message reconciliation, independent of scheduling."""

    def __init__(
        self,
        app: FunctionRegister | FunctionCatalog,
        *,
        task_hub: str,
        connection_name: str,
        system_key: str | None,
        seed: int | None = None,
        kept_activity_calls: int | None = None,
    ) -> None:
        """``app`` is indexed as the worker indexes it (the same checks, the same Durable
        names), or is the catalog of an app indexed elsewhere."""
        self.catalog = (
            app
            if isinstance(app, FunctionCatalog)
            else FunctionCatalog.from_indexed(index_functions(app))
        )
        self.task_hub = task_hub
        self.connection_name = connection_name
        self.system_key = system_key
        self._random = random.Random(seed) if seed is not None else None
        self._lock = threading.RLock()
        self._snapshots: dict[str, InstanceSnapshot] = {}
        self._instances: dict[str, Instance] = {}
        self._activity_calls: deque[ActivityCall] = deque(maxlen=kept_activity_calls)
        self._activity_executions = 0
        self.discarded_messages: list[DiscardedMessage] = []

    # -- what an engine provides --------------------------------------------------------------

    def _now(self) -> datetime:
        raise NotImplementedError

    def _submit(self, command: Command) -> object:
        """Deliver a validated client command, under the engine lock (so in order).

        Returns something for :meth:`_settle` to wait on outside the lock (``None``: nothing).
        """
        raise NotImplementedError

    def _settle(self, pending: object) -> None:
        """Wait until a submitted command is durable (engines that persist override this)."""

    # -- thread-safe client commands -----------------------------------------------------------

    def new_guid(self) -> str:
        """``Guid.NewGuid().ToString("N")`` (reproducible when the engine has a seed)."""
        with self._lock:
            if self._random is None:
                return uuid.uuid4().hex
            return uuid.UUID(int=self._random.getrandbits(128), version=4).hex

    def submit_start(self, name: str, instance_id: str | None, input_text: str | None) -> str:
        """``DurableClient.StartNewAsync``: validate, write the Pending row, queue the start."""
        function = self.catalog.orchestrator(name)
        if function is None:
            known = self.catalog.orchestrator_names
            raise UnknownFunctionError(unknown_function_message(name, "orchestrator", known))
        if not instance_id:
            instance_id = self.new_guid()
        elif instance_id.startswith("@"):
            raise InvalidInstanceIdError("Orchestration instance ids must not start with @.")
        elif any(c in "/\\?#" or ord(c) < 32 or 127 <= ord(c) < 160 for c in instance_id):
            raise InvalidInstanceIdError(
                "Orchestration instance ids must not contain /, \\, #, ?, or control characters."
            )
        if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
            raise InvalidInstanceIdError(
                f"Instance ID lengths must not exceed {MAX_INSTANCE_ID_LENGTH} characters."
            )
        with self._lock:
            existing = self._snapshots.get(instance_id)
            if existing is not None and existing.status in RUNNING_STATUSES:
                raise InstanceExistsError(
                    f"An Orchestration instance with the status {existing.status.runtime_status} "
                    "already exists."
                )
            now = self._now()
            execution_id = self.new_guid()
            self._snapshots[instance_id] = InstanceSnapshot(
                instance_id, name, OrchestrationStatus.PENDING, input_text, None, None, now, now,
                execution_id, (),
            )  # fmt: skip
            pending = self._submit(Start(instance_id, name, input_text, execution_id, now))
        self._settle(pending)
        return instance_id

    def submit_raise_event(self, instance_id: str, name: str, input_text: str) -> None:
        """``RaiseEventAsync`` with the status check Azure Storage performs first."""
        with self._lock:
            self._require_running(instance_id)
            pending = self._submit(RaiseEvent(instance_id, name, input_text))
        self._settle(pending)

    def submit_terminate(self, instance_id: str, reason: str | None) -> None:
        """``TerminateAsync``: only for running instances; no cascade to sub-orchestrations."""
        with self._lock:
            self._require_running(instance_id)
            pending = self._submit(Terminate(instance_id, reason))
        self._settle(pending)

    def submit_suspend(self, instance_id: str, reason: str | None) -> None:
        """``SuspendAsync``: Running, Pending or ContinuedAsNew instances only."""
        with self._lock:
            status = self._require_running(instance_id)
            if status not in SUSPENDABLE_STATUSES:
                raise InvalidOperationError(
                    f"Cannot suspend the orchestration instance {instance_id} because instance "
                    f"is in the {status.runtime_status} state."
                )
            pending = self._submit(Suspend(instance_id, reason))
        self._settle(pending)

    def submit_resume(self, instance_id: str, reason: str | None) -> None:
        """``ResumeAsync``: Suspended instances only (as the instance row shows it now)."""
        with self._lock:
            status = self._require_running(instance_id)
            if status is not OrchestrationStatus.SUSPENDED:
                raise InvalidOperationError(
                    f"Cannot resume the orchestration instance {instance_id} because instance "
                    f"is in the {status.runtime_status} state."
                )
            pending = self._submit(Resume(instance_id, reason))
        self._settle(pending)

    def submit_purge(self, instance_id: str) -> None:
        with self._lock:
            if self._snapshots.pop(instance_id, None) is None:
                raise InstanceNotFoundError(instance_id)
            pending = self._submit(Purge(instance_id))
        self._settle(pending)

    def _require_running(self, instance_id: str) -> OrchestrationStatus:
        """The checks ``HttpApiHandler`` makes before raising an event or terminating."""
        snapshot = self._snapshots.get(instance_id)
        if snapshot is None:
            raise InstanceNotFoundError(f"No instance with ID '{instance_id}' found.")
        if snapshot.status in COMPLETED_STATUSES:
            raise InstanceGoneError(
                f"Instance '{instance_id}' is in the {snapshot.status.runtime_status} state."
            )
        return snapshot.status

    # -- thread-safe reads -------------------------------------------------------------------

    def snapshot(self, instance_id: str) -> InstanceSnapshot | None:
        """The instance row as a client would read it now (``None``: not visible / unknown)."""
        with self._lock:
            return self._snapshots.get(instance_id)

    def snapshots(self) -> list[InstanceSnapshot]:
        with self._lock:
            return list(self._snapshots.values())

    def status(self, instance_id: str) -> OrchestrationStatusView | None:
        snapshot = self.snapshot(instance_id)
        return None if snapshot is None else OrchestrationStatusView.from_snapshot(snapshot)

    def instance_ids(self) -> list[str]:
        """Every instance the engine has run, sub-orchestrations included, in creation order."""
        with self._lock:
            return list(self._instances)

    def instance(self, instance_id: str) -> InstanceInfo:
        with self._lock:
            state = self._instances.get(instance_id)
        if state is None:
            raise InstanceNotFoundError(instance_id)
        return instance_info(state)

    def history(self, instance_id: str) -> list[JsonDict]:
        """The current generation's history, as the orchestrator receives it (copies)."""
        with self._lock:
            state = self._instances.get(instance_id)
        if state is None:
            raise InstanceNotFoundError(instance_id)
        return [dict(history_event) for history_event in list(state.history)]

    def summary(self) -> EngineSummary:
        """Totals over every instance: episodes, orchestrator CPU time, the largest history."""
        with self._lock:
            states = list(self._instances.values())
            executions = self._activity_executions
        peaks = [(max(s.peak_history_length, len(s.history)), s.instance_id) for s in states]
        largest = max(peaks, default=(0, None))
        return EngineSummary(
            instances=len(states),
            completed_instances=sum(s.status in COMPLETED_STATUSES for s in states),
            episodes=sum(s.episodes for s in states),
            generations=sum(s.generations for s in states),
            orchestrator_cpu_seconds=sum(s.cpu_seconds for s in states),
            history_events=sum(len(s.history) for s in states),
            largest_history=largest[0],
            largest_history_instance=largest[1],
            activity_executions=executions,
        )

    def activity_calls(self, name: str | None = None) -> list[ActivityCall]:
        with self._lock:
            calls = list(self._activity_calls)
        if name is None:
            return calls
        return [call for call in calls if call.name.casefold() == name.casefold()]

    def describe(self, instance_id: str) -> str:
        """A diagnosis of where an instance stands (used in stuck-orchestration errors)."""
        state = self._instances.get(instance_id)
        if state is None:
            return f"{instance_id}: no such instance has started"
        parts = [f"{instance_id} ({state.name}) is {state.status.runtime_status}"]
        if state.waiting_on:
            parts.append(f"the extension's replay waits on {state.waiting_on}")
        if state.open_task_ids:
            parts.append(f"open tasks {state.open_task_ids}")
        if state.pending_events:
            parts.append(f"the extension waits for events {state.pending_events}")
        if state.buffered_events:
            parts.append(f"buffered (unconsumed) events {state.buffered_events}")
        parts.extend(f"warning: {warning}" for warning in state.warnings)
        return "; ".join(parts)

    # -- commands into messages ----------------------------------------------------------------

    def command_message(self, command: Command) -> OrchestratorMessage | None:
        """Apply a client command to the engine's state; the message it sends (``None``: purge).

        A start registers its instance here (``SetNewExecutionAsync``); a purge forgets it.
        """
        now = self._now()
        if isinstance(command, Start):
            state = Instance(
                command.instance_id,
                command.name,
                command.execution_id,
                command.input_text,
                command.created_time,
                command.created_time,
            )
            self.register(state)
            started = execution_started(
                command.created_time,
                instance_id=command.instance_id,
                execution_id=command.execution_id,
                name=command.name,
                input_text=command.input_text,
                parent=None,
            )
            return OrchestratorMessage(command.instance_id, command.execution_id, started)
        if isinstance(command, RaiseEvent):
            raised = event(EventType.EVENT_RAISED, now, Name=command.name, Input=command.input_text)
            return OrchestratorMessage(command.instance_id, None, raised)
        if isinstance(command, Terminate):
            terminated = event(EventType.EXECUTION_TERMINATED, now, Input=command.reason)
            return OrchestratorMessage(command.instance_id, None, terminated)
        if isinstance(command, Suspend):
            suspended = event(EventType.EXECUTION_SUSPENDED, now, Reason=command.reason)
            return OrchestratorMessage(command.instance_id, None, suspended)
        if isinstance(command, Resume):
            resumed = event(EventType.EXECUTION_RESUMED, now, Reason=command.reason)
            return OrchestratorMessage(command.instance_id, None, resumed)
        with self._lock:  # an episode that ran meanwhile may have re-published it
            self._instances.pop(command.instance_id, None)
            self._snapshots.pop(command.instance_id, None)
        return None

    def register(self, state: Instance) -> None:
        with self._lock:
            self._instances[state.instance_id] = state

    def publish(self, state: Instance, snapshot: InstanceSnapshot | None = None) -> None:
        """Make the instance row visible to clients (unless the instance was purged since)."""
        with self._lock:
            if self._instances.get(state.instance_id) is state:
                self._snapshots[state.instance_id] = snapshot or state.snapshot()

    # -- orchestration work items --------------------------------------------------------------

    def reconcile(self, instance_id: str, batch: Sequence[Message]) -> WorkItem | None:
        """``ReconcileMessagesWithState`` for one batch; ``None`` when the batch is dropped."""
        state = self._instances.get(instance_id)
        if state is None:
            start = next(
                (m for m in batch if m.event["EventType"] == EventType.EXECUTION_STARTED), None
            )
            if start is None:
                self.discard(instance_id, batch, "No such instance")
                return None
            state = self._create_sub_orchestration(start.event)
        elif state.status not in EXECUTABLE_STATUSES:
            self.discard(instance_id, batch, f"Instance is {state.status.runtime_status}")
            return None
        accepted: list[JsonDict] = []
        started = state.has_started
        for message in batch:
            kind = message.event["EventType"]
            if kind == EventType.EXECUTION_STARTED and started:
                self.discard(instance_id, [message], "Duplicate start event")
                continue
            if kind != EventType.EXECUTION_STARTED and message.execution_id not in (
                None,
                state.execution_id,
            ):
                self.discard(instance_id, [message], "ExecutionId of event does not match")
                continue
            started = started or kind == EventType.EXECUTION_STARTED
            accepted.append(message.event)
        kinds = ",".join(EVENT_TYPE_NAMES[e["EventType"]] for e in accepted)
        return WorkItem(state, accepted, kinds)

    def _create_sub_orchestration(self, started: JsonDict) -> Instance:
        instance = started["OrchestrationInstance"]
        stamp = parse_datetime(started["Timestamp"])
        state = Instance(
            instance["InstanceId"],
            started["Name"],
            instance["ExecutionId"],
            started.get("Input"),
            stamp,
            stamp,
            parent=started.get("ParentInstance"),
        )
        self.register(state)
        return state

    def discard(self, instance_id: str, messages: Sequence[Message], reason: str) -> None:
        for message in messages:
            kind = EVENT_TYPE_NAMES[message.event["EventType"]]
            with self._lock:
                self.discarded_messages.append(DiscardedMessage(instance_id, kind, reason))
            parent = message.event.get("ParentInstance") if kind == "ExecutionStarted" else None
            if parent is not None:
                owner = self._instances.get(parent["OrchestrationInstance"]["InstanceId"])
                if owner is not None:
                    owner.warn(
                        f"the start of sub-orchestration {instance_id!r} was dropped ({reason}); "
                        "the parent will wait for it forever"
                    )

    # -- activities ----------------------------------------------------------------------------

    def activity_input(self, request: ActivityRequest) -> str:
        """The activity's input as the worker receives it (the first of the serialised array)."""
        (argument,) = json.loads(request.input)
        return argument if isinstance(argument, str) else dumps(argument)

    def activity_result(
        self,
        request: ActivityRequest,
        name: str,
        input_text: str,
        outcome: ActivityOutcome,
        executed_at: datetime,
    ) -> OrchestratorMessage:
        """Record the execution and build the ``TaskCompleted``/``TaskFailed`` response."""
        call = ActivityCall(
            name,
            request.instance_id,
            request.task_id,
            _loads_or_text(input_text),
            outcome.result,
            outcome.failed,
            outcome.reason,
            executed_at,
        )
        with self._lock:
            self._activity_calls.append(call)
            self._activity_executions += 1
        now = self._now()
        if outcome.failed:
            result = event(
                EventType.TASK_FAILED,
                now,
                TaskScheduledId=request.task_id,
                Reason=outcome.reason,
                Details=outcome.details,
                FailureDetails=None,
            )
        else:
            result = event(
                EventType.TASK_COMPLETED,
                now,
                TaskScheduledId=request.task_id,
                Result=outcome.result,
            )
        return OrchestratorMessage(request.instance_id, request.execution_id, result)


def client_input_text(value: Any) -> str | None:
    """The instance input the Python client sends: ``df_dumps(value)`` as a JSON string.

    The SDK is imported here, not with the engine: devhost's host process, like the Functions
    host, never loads it (importing it reads the app's host.json).
    """
    from azure.durable_functions.models.utils.df_serialization import df_dumps

    return None if value is None else dumps(df_dumps(value))


def client_event_text(data: Any, encoding: Literal["python_client", "json"]) -> str:
    """An event payload: the Python client JSON-encodes ``data`` twice, other clients once."""
    return dumps(json.dumps(data)) if encoding == "python_client" else dumps(data)


def instance_info(state: Instance) -> InstanceInfo:
    return InstanceInfo(
        instance_id=state.instance_id,
        name=state.name,
        runtime_status=state.status.runtime_status,
        execution_id=state.execution_id,
        parent_instance_id=state.parent_instance_id,
        history_length=len(state.history),
        peak_history_length=max(state.peak_history_length, len(state.history)),
        episodes=state.episodes,
        generations=state.generations,
        timers_created=state.timers_created,
        orchestrator_cpu_seconds=state.cpu_seconds,
        waiting_on=state.waiting_on,
        open_task_ids=tuple(state.open_task_ids),
        buffered_events=tuple(state.buffered_events),
        warnings=tuple(state.warnings),
    )


def _loads_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
