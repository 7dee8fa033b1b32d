"""``DurableEngine``: the Durable extension, in-process, for any ``DFApp`` - driven step by step.

The engine owns what the extension and the Azure Storage backend own in production: instance
rows, histories, control-queue messages, the activity work-item queue and durable timers. A
*step* is one work item, chosen oldest-message-first: an orchestration episode for an instance
with pending messages (up to ``batch_size`` of them, like a control-queue batch), or one
activity execution. Durable timers fire on a virtual clock that jumps to the next due timer only
when nothing else can run, so tests never sleep. Everything runs in the calling thread except
``async`` activities (a private event loop on its own thread) and the optional HTTP server,
whose handlers only enqueue commands and read published snapshots under the engine lock.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from azure.durable_functions.models.utils.df_serialization import df_dumps
from azure.functions.decorators.function_app import FunctionRegister

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
from ._instance import (
    ActivityRequest,
    Instance,
    Message,
    OrchestratorMessage,
    Outbound,
    TimerRequest,
)
from ._status import COMPLETED_STATUSES, InstanceSnapshot, OrchestrationStatusView
from ._types import (
    ActivityCall,
    DiscardedMessage,
    DurableEngineError,
    InstanceExistsError,
    InstanceGoneError,
    InstanceInfo,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    OrchestrationStuck,
    Step,
    UnknownFunctionError,
    VirtualClock,
)
from ._worker import AsyncRunner, FunctionCatalog, invoke_activity, unknown_function_message

if TYPE_CHECKING:
    from .server import RpcServer

DEFAULT_TASK_HUB = "TestHubName"
DEFAULT_CONNECTION_NAME = "Storage"
"""``ConnectionStringNames.Storage``: the connection name the extension puts in its URLs."""
DEFAULT_BATCH_SIZE = 32
"""``AzureStorageOptions.ControlQueueBatchSize``."""
DEFAULT_TICK = timedelta(milliseconds=1)
DEFAULT_MAX_STEPS = 10_000
MAX_INSTANCE_ID_LENGTH = 256

_EXECUTABLE = frozenset(
    {OrchestrationStatus.RUNNING, OrchestrationStatus.PENDING, OrchestrationStatus.SUSPENDED}
)
"""``AzureStorageOrchestrationService.IsExecutableInstance``."""


@dataclass(frozen=True)
class _Start:
    instance_id: str
    name: str
    input_text: str | None
    execution_id: str
    created_time: datetime


@dataclass(frozen=True)
class _RaiseEvent:
    instance_id: str
    name: str
    input_text: str


@dataclass(frozen=True)
class _Terminate:
    instance_id: str
    reason: str | None


@dataclass(frozen=True)
class _Purge:
    instance_id: str


_Command = _Start | _RaiseEvent | _Terminate | _Purge


@dataclass
class _ActivityWork:
    seq: int
    request: ActivityRequest


class DurableEngine:
    """An in-process Durable Functions host for one app (see the module docstring)."""

    def __init__(
        self,
        app: FunctionRegister,
        *,
        task_hub: str = DEFAULT_TASK_HUB,
        connection_name: str = DEFAULT_CONNECTION_NAME,
        clock: VirtualClock | None = None,
        tick: timedelta = DEFAULT_TICK,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int | None = None,
        system_key: str | None = None,
    ) -> None:
        self.catalog = FunctionCatalog(app)
        self.task_hub = task_hub
        self.connection_name = connection_name
        self.system_key = system_key
        self.clock = clock if clock is not None else VirtualClock()
        self._tick = tick
        self._batch_size = batch_size
        self._random = random.Random(seed) if seed is not None else None
        self._lock = threading.RLock()
        self._commands: deque[_Command] = deque()
        self._snapshots: dict[str, InstanceSnapshot] = {}
        self._instances: dict[str, Instance] = {}
        self._order: list[str] = []
        self._inboxes: dict[str, list[Message]] = {}
        self._activities: deque[_ActivityWork] = deque()
        self._timers: list[tuple[datetime, int, TimerRequest]] = []
        self._seq = itertools.count()
        self._activity_calls: list[ActivityCall] = []
        self.discarded_messages: list[DiscardedMessage] = []
        self._async = AsyncRunner()
        self._server: RpcServer | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> DurableEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the HTTP server and the private event loop (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._async.close()

    def client_binding(self) -> str:
        """The ``durableClient`` binding JSON, backed by this engine's HTTP server (started now)."""
        from .server import RpcServer  # the server module imports this one

        if self._server is None:
            self._server = RpcServer(self)
            self._server.start()
        return self._server.binding_json()

    # -- thread-safe commands (used by the HTTP server too) ------------------------------------

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
            now = self.clock.now()
            execution_id = self.new_guid()
            self._snapshots[instance_id] = InstanceSnapshot(
                instance_id, name, OrchestrationStatus.PENDING, input_text, None, None, now, now,
                execution_id, (),
            )  # fmt: skip
            self._commands.append(_Start(instance_id, name, input_text, execution_id, now))
        return instance_id

    def submit_raise_event(self, instance_id: str, name: str, input_text: str) -> None:
        """``RaiseEventAsync`` with the status check Azure Storage performs first."""
        with self._lock:
            self._require_running(instance_id)
            self._commands.append(_RaiseEvent(instance_id, name, input_text))

    def submit_terminate(self, instance_id: str, reason: str | None) -> None:
        """``TerminateAsync``: only for running instances; no cascade to sub-orchestrations."""
        with self._lock:
            self._require_running(instance_id)
            self._commands.append(_Terminate(instance_id, reason))

    def submit_purge(self, instance_id: str) -> None:
        with self._lock:
            if self._snapshots.pop(instance_id, None) is None:
                raise InstanceNotFoundError(instance_id)
            self._commands.append(_Purge(instance_id))

    def _require_running(self, instance_id: str) -> None:
        """The checks ``HttpApiHandler`` makes before raising an event or terminating."""
        snapshot = self._snapshots.get(instance_id)
        if snapshot is None:
            raise InstanceNotFoundError(f"No instance with ID '{instance_id}' found.")
        if snapshot.status in COMPLETED_STATUSES:
            raise InstanceGoneError(
                f"Instance '{instance_id}' is in the {snapshot.status.runtime_status} state."
            )

    def snapshot(self, instance_id: str) -> InstanceSnapshot | None:
        """The instance row as a client would read it now (``None``: not visible / unknown)."""
        with self._lock:
            return self._snapshots.get(instance_id)

    def snapshots(self) -> list[InstanceSnapshot]:
        with self._lock:
            return list(self._snapshots.values())

    # -- the test-facing API --------------------------------------------------------------

    def start(self, name: str, input: Any = None, instance_id: str | None = None) -> str:
        """Start an orchestration exactly as ``DurableOrchestrationClient.start_new`` would.

        The Python client sends ``df_dumps(input)`` as a JSON *string*, so the instance's
        recorded input (``status().input``) is that JSON text; the orchestrator still gets
        ``input`` back from ``context.get_input()``.
        """
        input_text = None if input is None else dumps(df_dumps(input))
        started = self.submit_start(name, instance_id, input_text)
        self._apply_commands()
        return started

    def raise_event(
        self,
        instance_id: str,
        name: str,
        data: Any = None,
        *,
        encoding: Literal["python_client", "json"] = "python_client",
    ) -> None:
        """Raise an external event.

        ``encoding="python_client"`` (default) reproduces the Python client's ``raise_event``,
        which JSON-encodes ``data`` twice: the orchestrator receives ``json.dumps(data)``, a
        string. ``"json"`` sends ``data`` as the JSON body, as any other HTTP client would.
        """
        if not name:
            raise ValueError("event_name must be a non-empty string.")  # as the Python client
        text = dumps(json.dumps(data)) if encoding == "python_client" else dumps(data)
        self.submit_raise_event(instance_id, name, text)
        self._apply_commands()

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        self.submit_terminate(instance_id, reason)
        self._apply_commands()

    def status(self, instance_id: str) -> OrchestrationStatusView | None:
        snapshot = self.snapshot(instance_id)
        return None if snapshot is None else OrchestrationStatusView.from_snapshot(snapshot)

    def instance_ids(self) -> list[str]:
        """Every instance the engine has run, sub-orchestrations included, in creation order."""
        return [instance_id for instance_id in self._order if instance_id in self._instances]

    def instance(self, instance_id: str) -> InstanceInfo:
        state = self._instances.get(instance_id)
        if state is None:
            raise InstanceNotFoundError(instance_id)
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
            orchestrator_cpu_seconds=state.cpu_seconds,
            waiting_on=state.waiting_on,
            open_task_ids=tuple(state.open_task_ids),
            buffered_events=tuple(state.buffered_events),
            warnings=tuple(state.warnings),
        )

    def history(self, instance_id: str) -> list[JsonDict]:
        """The current generation's history, as the orchestrator receives it (copies)."""
        state = self._instances.get(instance_id)
        if state is None:
            raise InstanceNotFoundError(instance_id)
        return [dict(history_event) for history_event in state.history]

    def max_history_length(self) -> int:
        """The longest history any instance has had, over all of its generations."""
        return max(
            (
                max(state.peak_history_length, len(state.history))
                for state in self._instances.values()
            ),
            default=0,
        )

    def activity_calls(self, name: str | None = None) -> list[ActivityCall]:
        if name is None:
            return list(self._activity_calls)
        return [call for call in self._activity_calls if call.name.casefold() == name.casefold()]

    def advance_clock(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    # -- running ----------------------------------------------------------------------------

    def run_one(self, *, advance_clock: bool = True) -> Step | None:
        """Perform the oldest runnable work item; ``None`` when there is none.

        With ``advance_clock`` the virtual clock jumps to the next durable timer when nothing
        else can run.
        """
        self._apply_commands()
        self._release_due_timers()
        choice = self._next_work()
        if choice is None and advance_clock and self._timers:
            self.clock.advance_to(self._timers[0][0])
            self._release_due_timers()
            choice = self._next_work()
        if choice is None:
            return None
        step = self._run_activity() if choice == "" else self._run_orchestration(choice)
        self.clock.advance(self._tick)
        return step

    def run_until_idle(
        self,
        max_steps: int = DEFAULT_MAX_STEPS,
        *,
        advance_clock: bool = True,
        on_step: Callable[[Step], None] | None = None,
    ) -> int:
        """Run until nothing is runnable; returns the number of steps taken."""
        for taken in range(max_steps):
            step = self.run_one(advance_clock=advance_clock)
            if step is None:
                return taken
            if on_step is not None:
                on_step(step)
        if self._next_work() is not None or (advance_clock and self._timers) or self._commands:
            raise DurableEngineError(f"still busy after {max_steps} steps")
        return max_steps

    def run_until(
        self,
        condition: Callable[[], bool],
        max_steps: int = DEFAULT_MAX_STEPS,
        *,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        """Run steps until ``condition()`` holds (checked before each step)."""
        for _ in range(max_steps):
            if condition():
                return
            step = self.run_one()
            if step is None:
                if condition():
                    return
                raise OrchestrationStuck("the engine went idle before the condition held")
            if on_step is not None:
                on_step(step)
        if not condition():
            raise DurableEngineError(f"condition still false after {max_steps} steps")

    def run_until_complete(
        self,
        instance_id: str,
        max_steps: int = DEFAULT_MAX_STEPS,
        *,
        on_step: Callable[[Step], None] | None = None,
    ) -> OrchestrationStatusView:
        """Run until the instance is Completed, Failed or Terminated; returns its status."""

        def finished() -> bool:
            state = self._instances.get(instance_id)
            return state is not None and state.status in COMPLETED_STATUSES

        try:
            self.run_until(finished, max_steps, on_step=on_step)
        except OrchestrationStuck:
            raise OrchestrationStuck(self.describe(instance_id)) from None
        status = self.status(instance_id)
        assert status is not None
        return status

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

    # -- internals --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        return next(self._seq)

    def _apply_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            self._apply(command)

    def _apply(self, command: _Command) -> None:
        now = self.clock.now()
        if isinstance(command, _Start):
            state = Instance(
                command.instance_id,
                command.name,
                command.execution_id,
                command.input_text,
                command.created_time,
                command.created_time,
            )
            self._register(state)
            started = execution_started(
                command.created_time,
                instance_id=command.instance_id,
                execution_id=command.execution_id,
                name=command.name,
                input_text=command.input_text,
                parent=None,
            )
            self._route(OrchestratorMessage(command.instance_id, command.execution_id, started))
        elif isinstance(command, _RaiseEvent):
            raised = event(EventType.EVENT_RAISED, now, Name=command.name, Input=command.input_text)
            self._route(OrchestratorMessage(command.instance_id, None, raised))
        elif isinstance(command, _Terminate):
            terminated = event(EventType.EXECUTION_TERMINATED, now, Input=command.reason)
            self._route(OrchestratorMessage(command.instance_id, None, terminated))
        else:
            self._instances.pop(command.instance_id, None)
            self._inboxes.pop(command.instance_id, None)
            with self._lock:  # an episode that ran meanwhile may have re-published it
                self._snapshots.pop(command.instance_id, None)

    def _register(self, state: Instance) -> None:
        if state.instance_id not in self._instances and state.instance_id not in self._order:
            self._order.append(state.instance_id)
        self._instances[state.instance_id] = state

    def _route(self, outbound: Outbound) -> None:
        if isinstance(outbound, ActivityRequest):
            self._activities.append(_ActivityWork(self._next_seq(), outbound))
        elif isinstance(outbound, TimerRequest):
            heapq.heappush(self._timers, (outbound.fire_at, self._next_seq(), outbound))
        else:
            message = Message(
                self._next_seq(), outbound.instance_id, outbound.execution_id, outbound.event
            )
            self._inboxes.setdefault(outbound.instance_id, []).append(message)

    def _release_due_timers(self) -> None:
        now = self.clock.now()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            self._route(OrchestratorMessage(timer.instance_id, timer.execution_id, timer.event))

    def _next_work(self) -> str | None:
        """The instance id with the oldest message, ``""`` for the activity queue, or ``None``."""
        best: str | None = None
        best_seq = -1
        if self._activities:
            best, best_seq = "", self._activities[0].seq
        for instance_id, inbox in self._inboxes.items():
            if inbox and (best is None or inbox[0].seq < best_seq):
                best, best_seq = instance_id, inbox[0].seq
        return best

    def _run_activity(self) -> Step:
        request = self._activities.popleft().request
        function = self.catalog.activity(request.name)
        if function is None:  # the extension never schedules an unknown activity
            raise DurableEngineError(f"activity {request.name!r} is not registered")
        (argument,) = json.loads(request.input)
        input_text = argument if isinstance(argument, str) else dumps(argument)
        executed_at = self.clock.now()
        outcome = invoke_activity(function, input_text, self._async.run)
        self._activity_calls.append(
            ActivityCall(
                function.name,
                request.instance_id,
                request.task_id,
                _loads_or_text(input_text),
                outcome.result,
                outcome.failed,
                outcome.reason,
                executed_at,
            )
        )
        now = self.clock.now()
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
        self._route(OrchestratorMessage(request.instance_id, request.execution_id, result))
        detail = "failed" if outcome.failed else "completed"
        return Step("activity", request.instance_id, function.name, detail)

    def _run_orchestration(self, instance_id: str) -> Step:
        inbox = self._inboxes[instance_id]
        batch = inbox[: self._batch_size]
        del inbox[: self._batch_size]
        if not inbox:
            del self._inboxes[instance_id]
        state = self._instances.get(instance_id)
        if state is None:
            start = next(
                (m for m in batch if m.event["EventType"] == EventType.EXECUTION_STARTED), None
            )
            if start is None:
                return self._discard(instance_id, batch, "No such instance")
            state = self._create_sub_orchestration(start.event)
        elif state.status not in _EXECUTABLE:
            return self._discard(instance_id, batch, f"Instance is {state.status.runtime_status}")
        accepted: list[JsonDict] = []
        started = state.has_started
        for message in batch:
            kind = message.event["EventType"]
            if kind == EventType.EXECUTION_STARTED and started:
                self._discard(instance_id, [message], "Duplicate start event")
                continue
            if kind != EventType.EXECUTION_STARTED and message.execution_id not in (
                None,
                state.execution_id,
            ):
                self._discard(instance_id, [message], "ExecutionId of event does not match")
                continue
            started = started or kind == EventType.EXECUTION_STARTED
            accepted.append(message.event)
        for outbound in state.run_work_item(
            accepted, now=self.clock.now, new_execution_id=self.new_guid, catalog=self.catalog
        ):
            self._route(outbound)
        if state.visible:
            with self._lock:
                if instance_id in self._instances:
                    self._snapshots[instance_id] = state.snapshot()
        kinds = ",".join(EVENT_TYPE_NAMES[e["EventType"]] for e in accepted)
        return Step("orchestration", instance_id, state.name, kinds)

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
            visible=False,  # no instance row until its first episode is checkpointed
        )
        self._register(state)
        return state

    def _discard(self, instance_id: str, messages: list[Message], reason: str) -> Step:
        for message in messages:
            kind = EVENT_TYPE_NAMES[message.event["EventType"]]
            self.discarded_messages.append(DiscardedMessage(instance_id, kind, reason))
            parent = message.event.get("ParentInstance") if kind == "ExecutionStarted" else None
            if parent is not None:
                owner = self._instances.get(parent["OrchestrationInstance"]["InstanceId"])
                if owner is not None:
                    owner.warn(
                        f"the start of sub-orchestration {instance_id!r} was dropped ({reason}); "
                        "the parent will wait for it forever"
                    )
        return Step("discarded", instance_id, "", reason)


def _loads_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@contextmanager
def running_engine(app: FunctionRegister, **options: Any) -> Iterator[DurableEngine]:
    """A ``DurableEngine`` for the duration of a ``with`` block (server and loop stopped after).

    In a fixture: ``with running_engine(app) as engine: yield engine``.
    """
    engine = DurableEngine(app, **options)
    try:
        yield engine
    finally:
        engine.close()
