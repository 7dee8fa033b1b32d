"""One orchestration episode, replayed exactly as the Durable extension replays it.

Each episode the extension (``TaskOrchestrationShim`` + ``OutOfProcOrchestrationShim``, extension
v2.13.7) calls the Python orchestrator once with the full history, then replays the actions it
returned through its own ``DurableOrchestrationContext`` while DurableTask.Core processes the
history events in order. Rules reproduced here, with their sources:

* ``ProcessAsyncActionsV2``: actions are invoked one at a time and each is *awaited* before
  the next is invoked, so scheduling stops at the first action that has not completed;
  exceptions from awaited actions are swallowed (a call to an unknown activity is a faulted
  task that is silently skipped, and the orchestrator waits forever);
* ``WhenAll``/``WhenAny`` invoke only the child actions they list (the SDK lists only tasks
  that were not scheduled by an earlier yield) and have ``Task.WhenAll``/``Task.WhenAny``
  semantics;
* ``ScheduleDurableTaskEvents``: ``error`` and ``isDone`` are only looked at once every action
  has completed;
* external events (``DurableOrchestrationContext.RaiseEvent``): names are case-insensitive, an
  event with no waiter is buffered first-in first-out, and the newest waiter is served first;
* custom status is limited to 16 KB of UTF-16; retry intervals to the provider's six days;
* suspension (``TaskOrchestrationExecutor.ProcessEvent``): while suspended, events other than
  ``ExecutionResumed``/``ExecutionTerminated`` are held by the DTFx context (``_dtfx.py``) and
  replayed in order on resume. The Python function still sees them in its history; the replay
  of its actions stops at the first one whose completion is held.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._actions import UNSUPPORTED_ACTIONS, ActionType, AsyncAction, OrchestratorState, SchemaVersion
from ._dtfx import (
    LONG_RUNNING_TIMER_INTERVAL,
    MAXIMUM_DELAY,
    CancellationToken,
    Decision,
    DtfxContext,
    NonDeterministicError,
    OrchestrationFailure,
    RetryOptions,
    SubOrchestrationFailedError,
    TaskFailedError,
    retry_interceptor,
)
from ._history import EventType, JsonDict, OrchestrationStatus, dumps, parse_datetime
from ._nettask import (
    DotNetArgumentError,
    NetTask,
    TaskCanceledError,
    TaskState,
    completed,
    never,
    start,
    when_all,
    when_any,
)
from ._worker import (
    FunctionCatalog,
    FunctionOutcome,
    extract_out_of_proc_state,
    remote_stack,
    unknown_function_message,
)

MAX_ORCHESTRATION_ACTIONS = 100_000
"""``DurableTaskOptions.MaxOrchestrationActions`` (per episode)."""

MAXIMUM_DELAY_MESSAGE = (
    "The Azure Storage provider supports a maximum of 6 days for time-based delays"
)

MAX_CUSTOM_STATUS_KB = 16
"""``DurableOrchestrationContext.SetCustomStatus`` payload limit."""


class EngineLimitation(BaseException):
    """Something the real extension supports but this engine does not (entities, HTTP calls).

    Derived from ``BaseException`` on purpose: the extension's own ``catch (Exception)`` blocks,
    which this module reproduces, must not swallow it - the test should stop loudly.
    """


class _RpcFailure(Exception):
    """The invocation failed; ``str()`` is what ``e.Message`` shows in the extension's catch."""

    def __init__(self, rpc_message: str) -> None:
        super().__init__(f"One or more errors occurred. ({rpc_message})")
        self.rpc_message = rpc_message


def _event_key(name: str) -> str:
    return name.casefold()  # StringComparer.OrdinalIgnoreCase


class ExtensionContext:
    """The extension's ``DurableOrchestrationContext`` for one episode."""

    def __init__(
        self,
        dtfx: DtfxContext,
        *,
        instance_id: str,
        parent_instance_id: str | None,
        catalog: FunctionCatalog,
    ) -> None:
        self.dtfx = dtfx
        self.instance_id = instance_id
        self.parent_instance_id = parent_instance_id
        self.catalog = catalog
        self.serialized_output: str | None = None
        self.serialized_custom_status: str | None = None
        self._output_set = False
        self._action_count = 0
        self._pending_events: dict[str, list[NetTask]] = {}
        self._buffered_events: dict[str, deque[Any]] = {}

    # -- scheduling --------------------------------------------------------------------------

    def _increment_actions(self) -> None:
        if self._action_count >= MAX_ORCHESTRATION_ACTIONS:
            raise RuntimeError(
                f"Maximum amount of orchestration actions ({MAX_ORCHESTRATION_ACTIONS}) has been "
                "reached. This value can be configured in host.json file as "
                "MaxOrchestrationActions."
            )
        self._action_count += 1

    def call_activity(self, name: str, input_value: Any, retry: RetryOptions | None) -> NetTask:
        return start(self._call_function(name, False, None, retry, input_value))

    def call_sub_orchestrator(
        self, name: str, instance_id: str | None, input_value: Any, retry: RetryOptions | None
    ) -> NetTask:
        return start(self._call_function(name, True, instance_id, retry, input_value))

    async def _call_function(
        self,
        name: str,
        is_orchestrator: bool,
        instance_id: str | None,
        retry: RetryOptions | None,
        input_value: Any,
    ) -> Any:
        """``CallDurableTaskFunctionAsync``: an ``async`` method, so its checks fault the task."""
        if retry is not None:
            for interval in (retry.max_retry_interval, retry.first_retry_interval):
                if interval > MAXIMUM_DELAY:
                    raise DotNetArgumentError(MAXIMUM_DELAY_MESSAGE)
        self._throw_if_function_does_not_exist(name, is_orchestrator)
        dtfx = self.dtfx
        if not is_orchestrator:
            self._increment_actions()
            if retry is None:
                return await dtfx.schedule_task(name, input_value)
            return await retry_interceptor(
                dtfx, retry, lambda: dtfx.schedule_task(name, input_value)
            )
        own_ids = {self.instance_id.casefold()}
        if self.parent_instance_id is not None:
            own_ids.add(self.parent_instance_id.casefold())
        if instance_id is not None and instance_id.casefold() in own_ids:
            raise DotNetArgumentError(
                "The instance ID of a sub-orchestration must be different than the instance ID "
                "of a parent orchestration."
            )
        if instance_id is not None and instance_id.startswith("@"):
            raise DotNetArgumentError("Orchestration instance ids must not start with @")
        self._increment_actions()
        if retry is None:
            return await dtfx.create_sub_orchestration(name, instance_id, input_value)
        return await retry_interceptor(
            dtfx, retry, lambda: dtfx.create_sub_orchestration(name, instance_id, input_value)
        )

    def _throw_if_function_does_not_exist(self, name: str, is_orchestrator: bool) -> None:
        if is_orchestrator and self.catalog.orchestrator(name) is None:
            known = self.catalog.orchestrator_names
            raise DotNetArgumentError(unknown_function_message(name, "orchestrator", known))
        if not is_orchestrator and self.catalog.activity(name) is None:
            known = self.catalog.activity_names
            raise DotNetArgumentError(unknown_function_message(name, "activity", known))

    def create_timer(self, fire_at: datetime, cancel: CancellationToken) -> NetTask:
        return start(self._create_timer(fire_at, cancel))

    async def _create_timer(self, fire_at: datetime, cancel: CancellationToken) -> None:
        """``IDurableOrchestrationContext.CreateTimer<T>``, including its long-timer loop."""
        dtfx = self.dtfx
        if fire_at - dtfx.current_utc_datetime <= MAXIMUM_DELAY:
            self._increment_actions()
            await dtfx.create_timer(fire_at, cancel)
            return
        interval_fire_at = dtfx.current_utc_datetime + LONG_RUNNING_TIMER_INTERVAL
        while dtfx.current_utc_datetime < fire_at and not cancel.is_cancellation_requested:
            self._increment_actions()
            await dtfx.create_timer(interval_fire_at, cancel)
            remaining = fire_at - dtfx.current_utc_datetime
            if remaining.total_seconds() <= 0:
                break
            interval_fire_at = dtfx.current_utc_datetime + min(
                remaining, LONG_RUNNING_TIMER_INTERVAL
            )

    def continue_as_new(self, input_value: Any) -> None:
        self.dtfx.set_continue_as_new(input_value)

    # -- external events ---------------------------------------------------------------------

    def wait_for_external_event(self, name: str) -> NetTask:
        key = _event_key(name)
        waiter = NetTask()
        self._pending_events.setdefault(key, []).append(waiter)  # a stack: newest on top
        queue = self._buffered_events.get(key)
        if queue:
            raw_input = queue.popleft()
            if not queue:
                del self._buffered_events[key]
            self.raise_event(name, raw_input)
        return waiter

    def raise_event(self, name: str, raw_input: Any) -> None:
        key = _event_key(name)
        waiters = self._pending_events.get(key)
        if waiters:
            waiter = waiters.pop()
            if not waiters:
                del self._pending_events[key]
            waiter.try_set_result(raw_input)
        else:
            self._buffered_events.setdefault(key, deque()).append(raw_input)

    def buffered_event_names(self) -> list[str]:
        return sorted(self._buffered_events)

    def pending_event_names(self) -> list[str]:
        return sorted(self._pending_events)

    # -- status and output -------------------------------------------------------------------

    def set_custom_status(self, value: Any) -> None:
        serialized = dumps(value)
        size_kb = int(len(serialized.encode("utf-16-le")) / 1024.0)
        if size_kb > MAX_CUSTOM_STATUS_KB:
            raise DotNetArgumentError(
                "The UTF-16 size of the JSON-serialized payload must not exceed "
                f"{MAX_CUSTOM_STATUS_KB:,} KB. The current payload size is {size_kb:,} KB."
            )
        self.serialized_custom_status = serialized

    def set_output(self, value: Any) -> None:
        if self._output_set:
            raise RuntimeError("The output has already been set of this orchestration instance.")
        self._output_set = True
        self.serialized_output = None if value is None else dumps(value)


class OutOfProcShim:
    """``TaskOrchestrationShim`` + ``OutOfProcOrchestrationShim`` for one episode."""

    def __init__(
        self,
        context: ExtensionContext,
        *,
        orchestrator_name: str,
        invoke: Callable[[], FunctionOutcome],
        warn: Callable[[str], None],
    ) -> None:
        self.context = context
        self.orchestrator_name = orchestrator_name
        self._invoke = invoke
        self._warn = warn
        self.waiting_on: str | None = None

    async def execute(self) -> str | None:
        """``TaskOrchestrationShim.Execute``."""
        await self._invoke_user_code_and_handle_results()
        return self.context.serialized_output

    async def _invoke_user_code_and_handle_results(self) -> None:
        try:
            outcome = self._invoke()
            if outcome.rpc_error is not None:
                raise _RpcFailure(outcome.rpc_error)
            if outcome.returned is not None:
                await self._trace_and_replay(outcome.returned, None)
        except Exception as error:
            # ``TryExtractOutOfProcStateJson(e.InnerException)``: only an RPC failure carries it.
            rpc = error if isinstance(error, _RpcFailure) else None
            state_json = extract_out_of_proc_state(rpc.rpc_message) if rpc is not None else None
            if state_json:
                await self._trace_and_replay(state_json, rpc)
            else:
                raise OrchestrationFailure(
                    f"Orchestrator function '{self.orchestrator_name}' failed: {error}",
                    f"{type(error).__name__}: {error}",
                ) from error

    async def _trace_and_replay(self, returned: Any, error: _RpcFailure | None) -> None:
        """``TraceAndReplay`` -> ``HandleDurableTaskReplay``."""
        if isinstance(returned, str):
            try:
                data = _parse_object(returned)
            except ValueError:
                raise DotNetArgumentError(
                    "Out of proc orchestrators must return a valid JSON schema"
                ) from None
        elif isinstance(returned, dict):
            data = returned
        else:
            raise DotNetArgumentError(
                "The data returned by the out-of-process function execution was not valid json."
            )
        if await self._schedule_durable_task_events(data, error):
            await never()

    async def _schedule_durable_task_events(
        self, data: JsonDict, error: _RpcFailure | None
    ) -> bool:
        state = OrchestratorState.from_json(data)
        if state.custom_status is not None:
            self.context.set_custom_status(state.custom_status)
        await self._replay(state)
        if state.error:
            stack = remote_stack(error.rpc_message) if error is not None else ""
            raise OrchestrationFailure(
                f"Orchestrator function '{self.orchestrator_name}' failed: {state.error}",
                f"Message: {state.error}, StackTrace: {stack}",
            )
        if state.is_done:
            self.context.set_output(state.output)
            return False
        self.waiting_on = (
            "the orchestrator function: every action it returned has completed in the "
            "extension, but the SDK reported isDone=false"
        )
        return True

    async def _replay(self, state: OrchestratorState) -> None:
        if state.schema_version not in (SchemaVersion.V2, SchemaVersion.V3):
            raise EngineLimitation(
                f"replay schema {state.schema_version} is not supported by this engine (the "
                "Python SDK uses V3 when the extension offers it)"
            )
        if state.actions is None or len(state.actions) != 1:
            raise DotNetArgumentError(
                f"With OOProc schema {SchemaVersion(state.schema_version).name}, expected actions "
                "array to be of length 1 in outer layer"
            )
        for index, action in enumerate(state.actions[0]):
            self.waiting_on = f"action #{index} {action.describe()}"
            task = self._invoke_api_from_action(action, state.schema_version)
            try:
                await task
            except Exception as swallowed:  # "Silently ignore exceptions thrown by user code"
                if not isinstance(
                    swallowed, TaskFailedError | SubOrchestrationFailedError | TaskCanceledError
                ):
                    self._warn(
                        f"{self.waiting_on} faulted inside the extension and was silently "
                        f"ignored, as the real extension does: {swallowed}"
                    )
        self.waiting_on = None

    def _invoke_api_from_action(self, action: AsyncAction, schema: int) -> NetTask:
        """``InvokeAPIFromAction``: returns the task to await; may throw synchronously."""
        context = self.context
        kind = action.action_type
        if kind == ActionType.CALL_ACTIVITY:
            return context.call_activity(action.function_name or "", action.input, None)
        if kind == ActionType.CALL_ACTIVITY_WITH_RETRY:
            return context.call_activity(
                action.function_name or "", action.input, action.retry_options
            )
        if kind == ActionType.CALL_SUB_ORCHESTRATOR:
            return context.call_sub_orchestrator(
                action.function_name or "", action.instance_id, action.input, None
            )
        if kind == ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            return context.call_sub_orchestrator(
                action.function_name or "", action.instance_id, action.input, action.retry_options
            )
        if kind == ActionType.CREATE_TIMER:
            fire_at = action.fire_at or datetime.min.replace(tzinfo=UTC)  # default(DateTime)
            if (
                schema < SchemaVersion.V3
                and fire_at - context.dtfx.current_utc_datetime > MAXIMUM_DELAY
            ):
                raise DotNetArgumentError(MAXIMUM_DELAY_MESSAGE)
            cancel = CancellationToken()
            task = context.create_timer(fire_at, cancel)
            if action.is_canceled:
                cancel.cancel()
            return task
        if kind == ActionType.CONTINUE_AS_NEW:
            context.continue_as_new(action.input)
            return completed()
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return context.wait_for_external_event(action.external_event_name or "")
        if kind in (ActionType.WHEN_ALL, ActionType.WHEN_ANY):
            if action.compound_actions is None:
                raise DotNetArgumentError("Value cannot be null. (Parameter 'source')")
            children = [
                self._invoke_api_from_action(child, schema) for child in action.compound_actions
            ]
            return when_all(children) if kind == ActionType.WHEN_ALL else when_any(children)
        if kind in UNSUPPORTED_ACTIONS:
            raise EngineLimitation(
                f"{ActionType(kind).name} actions are not supported by this engine"
            )
        raise RuntimeError(
            f"Received an unexpected action type from the out-of-proc function: '${kind}'."
        )


def _parse_object(text: str) -> JsonDict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True)
class EpisodeResult:
    decisions: list[Decision]
    custom_status: str | None
    waiting_on: str | None
    open_task_ids: list[int]
    buffered_events: list[str]
    pending_events: list[str]


def run_episode(
    history: Sequence[JsonDict],
    *,
    instance_id: str,
    execution_id: str,
    orchestrator_name: str,
    parent_instance_id: str | None,
    catalog: FunctionCatalog,
    invoke: Callable[[], FunctionOutcome],
    warn: Callable[[str], None],
) -> EpisodeResult:
    """``TaskOrchestrationExecutor.ExecuteCore`` over ``history`` (past and new events)."""
    dtfx = DtfxContext(instance_id, execution_id, parse_datetime(history[0]["Timestamp"]))
    context = ExtensionContext(
        dtfx, instance_id=instance_id, parent_instance_id=parent_instance_id, catalog=catalog
    )
    shim = OutOfProcShim(context, orchestrator_name=orchestrator_name, invoke=invoke, warn=warn)
    execution: NetTask | None = None
    try:
        for history_event in history:
            kind = history_event["EventType"]
            if kind == EventType.ORCHESTRATOR_STARTED:
                dtfx.current_utc_datetime = parse_datetime(history_event["Timestamp"])
            elif kind == EventType.EXECUTION_STARTED:
                execution = start(shim.execute())
            else:
                _process_event(history_event, dtfx, context)
    except NonDeterministicError as error:
        warn(f"non-deterministic replay: {error}")
        dtfx.fail_orchestration(error)
    else:
        if not dtfx.has_open_tasks and execution is not None and execution.done:
            if execution.state is TaskState.SUCCEEDED:
                dtfx.complete_orchestration(execution.result(), None, OrchestrationStatus.COMPLETED)
            else:
                dtfx.fail_orchestration(
                    execution.error or TaskCanceledError("A task was canceled.")
                )
    return EpisodeResult(
        decisions=[dtfx.decisions[key] for key in sorted(dtfx.decisions)],
        custom_status=context.serialized_custom_status,
        waiting_on=shim.waiting_on,
        open_task_ids=dtfx.open_task_ids(),
        buffered_events=context.buffered_event_names(),
        pending_events=context.pending_event_names(),
    )


def _process_event(history_event: JsonDict, dtfx: DtfxContext, context: ExtensionContext) -> None:
    """``TaskOrchestrationExecutor.ProcessEvent`` (the caller handles ``ExecutionStarted``)."""
    kind = history_event["EventType"]
    if dtfx.is_suspended and kind not in (
        EventType.EXECUTION_RESUMED,
        EventType.EXECUTION_TERMINATED,
    ):
        dtfx.handle_event_while_suspended(history_event)
    elif kind == EventType.EXECUTION_SUSPENDED:
        dtfx.handle_execution_suspended()
    elif kind == EventType.EXECUTION_RESUMED:
        dtfx.handle_execution_resumed(lambda held: _process_event(held, dtfx, context))
    elif kind == EventType.EXECUTION_TERMINATED:
        dtfx.complete_orchestration(
            history_event.get("Input"), None, OrchestrationStatus.TERMINATED
        )
    elif kind == EventType.TASK_SCHEDULED:
        dtfx.handle_task_scheduled(history_event)
    elif kind == EventType.TASK_COMPLETED:
        dtfx.handle_task_completed(history_event)
    elif kind == EventType.TASK_FAILED:
        dtfx.handle_task_failed(history_event)
    elif kind == EventType.SUB_ORCHESTRATION_INSTANCE_CREATED:
        dtfx.handle_sub_orchestration_created(history_event)
    elif kind == EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED:
        dtfx.handle_sub_orchestration_completed(history_event)
    elif kind == EventType.SUB_ORCHESTRATION_INSTANCE_FAILED:
        dtfx.handle_sub_orchestration_failed(history_event)
    elif kind == EventType.TIMER_CREATED:
        dtfx.handle_timer_created(history_event)
    elif kind == EventType.TIMER_FIRED:
        dtfx.handle_timer_fired(history_event)
    elif kind == EventType.EVENT_RAISED:
        # Azure Storage uses BehaviorOnContinueAsNew.Carryover: events processed after the
        # orchestrator continued as new move into the next generation's history.
        if dtfx.continue_as_new is None:
            context.raise_event(history_event.get("Name") or "", history_event.get("Input"))
        else:
            dtfx.continue_as_new.carryover_events.append(history_event)
