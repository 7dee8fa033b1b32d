"""``DurableEngine``: the Durable extension, in-process, for any ``DFApp`` - driven step by step.

The engine owns what the extension and the Azure Storage backend own in production: instance
rows, histories, control-queue messages, the activity work-item queue and durable timers (the
rules shared with the real-time ``DurableHost`` live in ``_core.py``). A *step* is one work
item, chosen oldest-message-first: an orchestration episode for an instance with pending
messages (up to ``BATCH_SIZE`` of them, like a control-queue batch), or one activity execution.
Durable timers fire on a virtual clock that jumps to the next due timer only when nothing else
can run, so tests never sleep. Everything runs in the calling thread except ``async``
activities (a private event loop on its own thread) and the optional HTTP server, whose
handlers only enqueue commands and read published snapshots under the engine lock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from azure.functions.decorators.function_app import FunctionRegister

from ._core import (
    DEFAULT_CONNECTION_NAME,
    DEFAULT_TASK_HUB,
    Command,
    EngineCore,
    client_event_text,
    client_input_text,
)
from ._instance import (
    ActivityRequest,
    Message,
    OrchestratorMessage,
    Outbound,
    TimerRequest,
)
from ._status import COMPLETED_STATUSES, OrchestrationStatusView
from ._types import (
    DurableEngineError,
    OrchestrationStuck,
    Step,
    VirtualClock,
)
from ._worker import AsyncRunner, invoke_activity

if TYPE_CHECKING:
    from .server import RpcServer

__all__ = ["DEFAULT_CONNECTION_NAME", "DEFAULT_TASK_HUB", "DurableEngine", "running_engine"]

BATCH_SIZE = 32
"""``AzureStorageOptions.ControlQueueBatchSize``."""
TICK = timedelta(milliseconds=1)
"""How far the virtual clock moves per step (timestamps of successive events differ)."""
DEFAULT_MAX_STEPS = 10_000


@dataclass
class _ActivityWork:
    seq: int
    request: ActivityRequest


class DurableEngine(EngineCore):
    """An in-process Durable Functions host for one app (see the module docstring)."""

    def __init__(
        self,
        app: FunctionRegister,
        *,
        clock: VirtualClock | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            app,
            task_hub=DEFAULT_TASK_HUB,
            connection_name=DEFAULT_CONNECTION_NAME,
            system_key=None,
            seed=seed,
        )
        self.clock = clock if clock is not None else VirtualClock()
        self._commands: deque[Command] = deque()
        self._inboxes: dict[str, list[Message]] = {}
        self._activities: deque[_ActivityWork] = deque()
        self._timers: list[tuple[datetime, int, TimerRequest]] = []
        self._seq = itertools.count()
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

    # -- EngineCore ------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now()

    def _submit(self, command: Command) -> object:
        """Commands take effect at the next step (they are applied in the stepping thread)."""
        self._commands.append(command)
        return None

    # -- the test-facing API --------------------------------------------------------------

    def start(self, name: str, input: Any = None, instance_id: str | None = None) -> str:
        """Start an orchestration exactly as ``DurableOrchestrationClient.start_new`` would.

        The Python client sends ``df_dumps(input)`` as a JSON *string*, so the instance's
        recorded input (``status().input``) is that JSON text; the orchestrator still gets
        ``input`` back from ``context.get_input()``.
        """
        started = self.submit_start(name, instance_id, client_input_text(input))
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
        self.submit_raise_event(instance_id, name, client_event_text(data, encoding))
        self._apply_commands()

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        self.submit_terminate(instance_id, reason)
        self._apply_commands()

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        self.submit_suspend(instance_id, reason)
        self._apply_commands()

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        self.submit_resume(instance_id, reason)
        self._apply_commands()

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
        self.clock.advance(TICK)
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

    # -- internals --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        return next(self._seq)

    def _apply_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            message = self.command_message(command)
            if message is None:
                self._inboxes.pop(command.instance_id, None)
            else:
                self._route(message)

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
        input_text = self.activity_input(request)
        executed_at = self.clock.now()
        client = self.client_binding() if function.clients else None
        outcome = invoke_activity(function, input_text, self._async.run, client)
        self._route(self.activity_result(request, function.name, input_text, outcome, executed_at))
        detail = "failed" if outcome.failed else "completed"
        return Step("activity", request.instance_id, function.name, detail)

    def _run_orchestration(self, instance_id: str) -> Step:
        inbox = self._inboxes[instance_id]
        batch = inbox[:BATCH_SIZE]
        del inbox[:BATCH_SIZE]
        if not inbox:
            del self._inboxes[instance_id]
        work = self.reconcile(instance_id, batch)
        if work is None:
            return Step("discarded", instance_id, "", self.discarded_messages[-1].reason)
        state = work.state
        for outbound in state.run_work_item(
            work.events, now=self.clock.now, new_execution_id=self.new_guid, catalog=self.catalog
        ):
            self._route(outbound)
        self.publish(state)
        return Step("orchestration", instance_id, state.name, work.kinds)


@contextmanager
def running_engine(app: FunctionRegister, **options: Any) -> Iterator[DurableEngine]:
    """A ``DurableEngine`` for the duration of a ``with`` block (server and loop stopped after).

    In a fixture: ``with running_engine(app) as engine: yield engine``.
    """
    with DurableEngine(app, **options) as engine:
        yield engine
