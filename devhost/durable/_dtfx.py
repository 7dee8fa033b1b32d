"""DurableTask.Core's orchestration context, transcribed: sequence numbers, open tasks, decisions.

The extension runs an out-of-proc orchestrator *inside* a DurableTask.Core orchestration, so
the rules of ``TaskOrchestrationContext`` (DurableTask.Core v2.17.1) govern the outcome:

* every scheduled activity, timer and sub-orchestration takes the next sequence number
  (``idCounter``), which becomes the ``EventId`` of its ``TaskScheduled``/``TimerCreated``/
  ``SubOrchestrationInstanceCreated`` event; replayed events must find a decision with that id,
  of the same kind and name, or the orchestration fails as non-deterministic;
* a scheduled task stays in ``openTasks`` until its completion event is processed, and an
  orchestration only completes in an episode that ends with no open tasks
  (``TaskOrchestrationExecutor.ExecuteCore``): an un-cancelled timer or a losing ``task_any``
  activity keeps the instance ``Running`` until it finishes;
* a sub-orchestration without an explicit id gets ``"{executionId}:{sequenceNumber}"``;
* ``RetryInterceptor`` retries through durable timers and, after the last failed attempt,
  still waits for one timer firing immediately (kept for replay compatibility);
* suspension (``HandleExecutionSuspendedEvent``/``HandleExecutionResumedEvent``): while
  suspended, every event but ``ExecutionResumed``/``ExecutionTerminated`` is queued unprocessed
  and the pending decisions are set aside; resuming restores them and replays the queue in order.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ._history import EventType, JsonDict, OrchestrationStatus, dumps
from ._nettask import NetTask

MAXIMUM_DELAY = timedelta(days=6)
"""``AzureStorageDurabilityProvider.MaximumDelayTime``."""

LONG_RUNNING_TIMER_INTERVAL = timedelta(days=3)
"""``AzureStorageDurabilityProvider.LongRunningTimerIntervalLength``."""


@dataclass(frozen=True)
class RetryOptions:
    """The extension's ``RetryOptions`` as ``RetryOptionsConverter`` reads them."""

    first_retry_interval: timedelta
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval: timedelta = MAXIMUM_DELAY
    retry_timeout: timedelta | None = None

    @classmethod
    def from_json(cls, data: JsonDict) -> RetryOptions:
        for required in ("firstRetryIntervalInMilliseconds", "maxNumberOfAttempts"):
            if required not in data:
                raise ValueError(f"Invalid JSON. Must contain field {required}")
        extras: dict[str, Any] = {}
        if "backoffCoefficient" in data:
            extras["backoff_coefficient"] = float(data["backoffCoefficient"])
        if "maxRetryIntervalInMilliseconds" in data:
            extras["max_retry_interval"] = _milliseconds(data["maxRetryIntervalInMilliseconds"])
        if "retryTimeoutInMilliseconds" in data:
            extras["retry_timeout"] = _milliseconds(data["retryTimeoutInMilliseconds"])
        return cls(
            first_retry_interval=_milliseconds(data["firstRetryIntervalInMilliseconds"]),
            max_number_of_attempts=int(data["maxNumberOfAttempts"]),
            **extras,
        )


def _milliseconds(value: Any) -> timedelta:
    return timedelta(milliseconds=int(value))


@dataclass
class ScheduleTaskDecision:
    id: int
    name: str
    input: str


@dataclass
class CreateTimerDecision:
    id: int
    fire_at: datetime


@dataclass
class CreateSubOrchestrationDecision:
    id: int
    name: str
    instance_id: str
    input: str


@dataclass
class CompleteDecision:
    id: int
    status: OrchestrationStatus
    result: str | None
    details: str | None = None
    carryover_events: list[JsonDict] = field(default_factory=list)


Decision = (
    ScheduleTaskDecision | CreateTimerDecision | CreateSubOrchestrationDecision | CompleteDecision
)


class NonDeterministicError(Exception):
    """``NonDeterministicOrchestrationException``."""


class TaskFailedError(Exception):
    """``TaskFailedException``: its message is the ``TaskFailed`` event's ``Reason``."""


class SubOrchestrationFailedError(Exception):
    """``SubOrchestrationFailedException``."""


class OrchestrationFailure(Exception):
    """``OrchestrationFailureException``: a reason (the message) and legacy ``Details``."""

    def __init__(self, reason: str, details: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class CancellationToken:
    """Just enough of ``CancellationTokenSource`` for canceled timers."""

    def __init__(self) -> None:
        self.is_cancellation_requested = False
        self._callbacks: list[Callable[[], None]] = []

    def register(self, callback: Callable[[], None]) -> None:
        if self.is_cancellation_requested:
            callback()
        else:
            self._callbacks.append(callback)

    def cancel(self) -> None:
        if self.is_cancellation_requested:
            return
        self.is_cancellation_requested = True
        for callback in self._callbacks:
            callback()


@dataclass
class _OpenTask:
    name: str | None
    completion: NetTask


class DtfxContext:
    """``TaskOrchestrationContext`` for one episode (a fresh one is built every episode)."""

    def __init__(self, instance_id: str, execution_id: str, start_time: datetime) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.current_utc_datetime = start_time
        self.continue_as_new: CompleteDecision | None = None
        self.decisions: dict[int, Decision] = {}
        self._open_tasks: dict[int, _OpenTask] = {}
        self._id_counter = 0
        self._completed_or_terminated = False
        self.is_suspended = False
        self._events_while_suspended: deque[JsonDict] = deque()
        self._suspended_decisions: dict[int, Decision] = {}

    @property
    def has_open_tasks(self) -> bool:
        return bool(self._open_tasks)

    def open_task_ids(self) -> list[int]:
        return sorted(self._open_tasks)

    def _next_id(self) -> int:
        task_id = self._id_counter
        self._id_counter += 1
        return task_id

    def _open(self, task_id: int, name: str | None) -> NetTask:
        completion = NetTask()
        self._open_tasks[task_id] = _OpenTask(name, completion)
        return completion

    # -- scheduling (ScheduleTaskInternal, CreateSubOrchestrationInstanceCore, CreateTimer) --

    async def schedule_task(self, name: str, input_value: Any) -> Any:
        task_id = self._next_id()
        # ``SerializeInternal(parameters)``: the activity input travels as a one-element array.
        self.decisions[task_id] = ScheduleTaskDecision(task_id, name, dumps([input_value]))
        return await self._open(task_id, name)

    async def create_sub_orchestration(
        self, name: str, instance_id: str | None, input_value: Any
    ) -> Any:
        task_id = self._next_id()
        actual_id = instance_id
        if actual_id is None or not actual_id.strip():
            actual_id = f"{self.execution_id}:{task_id}"
        self.decisions[task_id] = CreateSubOrchestrationDecision(
            task_id, name, actual_id, dumps(input_value)
        )
        return await self._open(task_id, name)

    async def create_timer(self, fire_at: datetime, cancel: CancellationToken | None) -> None:
        task_id = self._next_id()
        self.decisions[task_id] = CreateTimerDecision(task_id, fire_at)
        completion = self._open(task_id, None)
        if cancel is not None:

            def on_cancel() -> None:
                if completion.try_set_canceled():
                    self._open_tasks.pop(task_id, None)

            cancel.register(on_cancel)
        await completion

    def set_continue_as_new(self, input_value: Any) -> None:
        self.continue_as_new = CompleteDecision(
            -1, OrchestrationStatus.CONTINUED_AS_NEW, dumps(input_value)
        )

    # -- history events --------------------------------------------------------------------

    def _match(self, history_event: JsonDict, kind: type, noun: str) -> Decision:
        task_id = int(history_event["EventId"])
        decision = self.decisions.get(task_id)
        if decision is None:
            raise NonDeterministicError(
                f"A previous execution of this orchestration scheduled {noun} with sequence ID "
                f"{task_id} and name '{history_event.get('Name')}', but the current replay "
                "execution hasn't (yet?) scheduled this task. Was a change made to the "
                "orchestrator code after this instance had already started running?"
            )
        if not isinstance(decision, kind):
            raise NonDeterministicError(
                f"A previous execution of this orchestration scheduled {noun} with sequence "
                f"number {task_id}, but the current orchestration replay instead produced a "
                f"{type(decision).__name__} with this sequence number. Was a change made to the "
                "orchestrator code after this instance had already started running?"
            )
        name = getattr(decision, "name", None)
        recorded = history_event.get("Name")
        if name is not None and str(recorded).casefold() != name.casefold():
            raise NonDeterministicError(
                f"A previous execution of this orchestration scheduled {noun} with sequence "
                f"number {task_id} named '{recorded}', but the current orchestration replay "
                f"instead scheduled one named '{name}' with this sequence number. Was a change "
                "made to the orchestrator code after this instance had already started running?"
            )
        del self.decisions[task_id]
        return decision

    def handle_task_scheduled(self, history_event: JsonDict) -> None:
        self._match(history_event, ScheduleTaskDecision, "an activity task")

    def handle_timer_created(self, history_event: JsonDict) -> None:
        self._match(history_event, CreateTimerDecision, "a timer task")

    def handle_sub_orchestration_created(self, history_event: JsonDict) -> None:
        self._match(history_event, CreateSubOrchestrationDecision, "a sub-orchestration task")

    def _pop_open(self, task_id: int) -> _OpenTask | None:
        # A completion for a task that is not open (canceled timer, duplicate) is only logged.
        return self._open_tasks.pop(task_id, None)

    def handle_task_completed(self, history_event: JsonDict) -> None:
        task = self._pop_open(int(history_event["TaskScheduledId"]))
        if task is not None:
            task.completion.try_set_result(history_event.get("Result"))

    def handle_task_failed(self, history_event: JsonDict) -> None:
        task = self._pop_open(int(history_event["TaskScheduledId"]))
        if task is not None:
            task.completion.try_set_exception(TaskFailedError(history_event.get("Reason") or ""))

    def handle_sub_orchestration_completed(self, history_event: JsonDict) -> None:
        self.handle_task_completed(history_event)

    def handle_sub_orchestration_failed(self, history_event: JsonDict) -> None:
        task = self._pop_open(int(history_event["TaskScheduledId"]))
        if task is not None:
            reason = history_event.get("Reason") or ""
            task.completion.try_set_exception(SubOrchestrationFailedError(reason))

    def handle_timer_fired(self, history_event: JsonDict) -> None:
        task = self._pop_open(int(history_event["TimerId"]))
        if task is not None:
            task.completion.try_set_result(str(history_event["TimerId"]))

    # -- suspension (TaskOrchestrationContext, DurableTask.Core v2.17.1) ----------------------

    def handle_event_while_suspended(self, history_event: JsonDict) -> None:
        """``HandleEventWhileSuspended``: hold everything but a repeated suspension."""
        if history_event["EventType"] != EventType.EXECUTION_SUSPENDED:
            self._events_while_suspended.append(history_event)

    def handle_execution_suspended(self) -> None:
        """``HandleExecutionSuspendedEvent``: decisions made so far wait for the resume."""
        self.is_suspended = True
        self._suspended_decisions.update(self.decisions)
        self.decisions.clear()

    def handle_execution_resumed(self, process: Callable[[JsonDict], None]) -> None:
        """``HandleExecutionResumedEvent``: restore the decisions, then replay the held events."""
        self.is_suspended = False
        self.decisions.update(self._suspended_decisions)
        self._suspended_decisions.clear()
        while self._events_while_suspended:
            process(self._events_while_suspended.popleft())

    # -- completion ----------------------------------------------------------------------------

    def complete_orchestration(
        self, result: str | None, details: str | None, status: OrchestrationStatus
    ) -> None:
        task_id = self._next_id()
        if status is OrchestrationStatus.COMPLETED and self.continue_as_new is not None:
            decision = self.continue_as_new
        else:
            if self._completed_or_terminated:
                return
            self._completed_or_terminated = True
            decision = CompleteDecision(task_id, status, result, details)
        decision.id = task_id
        self.decisions[task_id] = decision

    def fail_orchestration(self, failure: BaseException) -> None:
        if isinstance(failure, OrchestrationFailure):
            reason, details = failure.reason, failure.details
        else:
            reason = str(failure)
            details = (
                "Unhandled exception while executing orchestration: "
                f"{type(failure).__name__}: {failure}"
            )
        self.complete_orchestration(reason, details, OrchestrationStatus.FAILED)


async def retry_interceptor(
    context: DtfxContext,
    options: RetryOptions,
    call: Callable[[], Coroutine[NetTask, None, Any]],
) -> Any:
    """``RetryInterceptor<T>.Invoke``: attempts, back-off timers, and the final immediate timer."""
    last_error: Exception | None = None
    first_attempt = context.current_utc_datetime
    for retry_count in range(options.max_number_of_attempts):
        try:
            return await call()
        except Exception as error:
            last_error = error
        if retry_count + 1 == options.max_number_of_attempts:
            await context.create_timer(context.current_utc_datetime, None)
            break
        delay = _next_delay(context, options, retry_count, first_attempt)
        if delay <= timedelta(0):
            break
        await context.create_timer(context.current_utc_datetime + delay, None)
    if last_error is not None:
        raise last_error
    return None


def _next_delay(
    context: DtfxContext, options: RetryOptions, attempt: int, first_attempt: datetime
) -> timedelta:
    """``RetryInterceptor.ComputeNextDelay`` (every failure is retryable: ``Handle`` is unset)."""
    if options.retry_timeout is not None and context.current_utc_datetime >= (
        first_attempt + options.retry_timeout
    ):
        return timedelta(0)
    milliseconds = options.first_retry_interval / timedelta(milliseconds=1)
    milliseconds *= math.pow(options.backoff_coefficient, attempt)
    maximum = options.max_retry_interval / timedelta(milliseconds=1)
    return (
        timedelta(milliseconds=milliseconds)
        if milliseconds < maximum
        else options.max_retry_interval
    )
