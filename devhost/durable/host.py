"""``DurableHost``: the Durable extension in real time, concurrent and persistent, for devhost.

Same replay core as ``DurableEngine`` (``EngineCore``, ``Instance``, the shim), a different
scheduling policy:

* everything is driven by events on one asyncio loop (the one ``start()`` runs on): a message
  arriving makes its instance ready, a finished episode or activity frees a slot, a durable
  timer fires through ``loop.call_later`` at its ``FireAt`` (wall time) - nothing polls;
* orchestration work items run one at a time per instance and up to
  ``max_concurrent_orchestrators`` instances at once, the episode in a thread pool (the shim's
  replay is synchronous CPU work; a thread keeps the loop responsive for activities and I/O).
  A work item - and its slot - lasts until its checkpoint is durable, as DTFx completes a work
  item before it releases the orchestration session; messages that arrive meanwhile are batched
  into the instance's next episode, as the Azure Storage provider's session manager does;
* activities run up to ``max_concurrent_activities`` at once, ``async def`` ones on the loop
  and the others in a thread pool, as the Python worker does - or, given a ``FunctionInvoker``
  (``invoker``), wherever it runs them: devhost's host process hands them to its Python worker
  process, as the extension hands them to the language worker;
* state is checkpointed to a store (Azure Tables, or memory) after every work item, in the
  order described in ``_commits.py`` and ``_records.py`` (the activities and timers a work item
  schedules take effect once its rows are durable);
* storage faults are ridden out while the host runs, as the extension rides them out: a
  checkpoint that cannot be written is tried again with back-off until it is (``_commits.py``),
  a work item that fails before its checkpoint is abandoned - the instance goes back to its last
  checkpoint, its messages back to its inbox - and run again after a back-off, and an activity
  that could not be invoked is dispatched again; no instance is given up for a fault that may
  pass (only an ``EngineLimitation``, which would recur, stops one);
* ``start()`` recovers from the store: in-flight
  orchestrations resume, timers are re-armed, activities that were running or whose answer no
  checkpoint consumed yet are dispatched again (at-least-once, as in Azure), duplicated answers
  are ignored by the replay as in DTFx.

Client commands (``submit_*``) are thread-safe. From another thread they return once the
command is durable; on the loop's own thread they take effect at once and are written behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Coroutine, Iterable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any, Literal

from azure.functions.decorators.function_app import FunctionRegister

from ._commits import commit_work_item, log_finished
from ._core import (
    DEFAULT_CONNECTION_NAME,
    DEFAULT_TASK_HUB,
    Command,
    EngineCore,
    Purge,
    Start,
    client_event_text,
    client_input_text,
)
from ._faults import Backoff, HostStopping, rest
from ._history import OrchestrationStatus
from ._instance import ActivityRequest, Instance, OrchestratorMessage, Outbound, TimerRequest
from ._records import (
    TABLE,
    ExecutionIds,
    StoredMessage,
    checkpoint_rows,
    consumed_rows,
    history_rows,
    instance_entity,
    message_entity,
    message_row_key,
    recover,
    timer_row_key,
    work_item_delete,
)
from ._shim import EngineLimitation
from ._status import COMPLETED_STATUSES, InstanceSnapshot
from ._store import MemoryStore, Op, Store, TableStore, delete, escape_key, upsert
from ._types import DurableEngineError
from ._worker import FunctionCatalog, FunctionInvoker, LocalInvoker

logger = logging.getLogger("devhost.durable")

DEFAULT_MAX_CONCURRENT = 10 * (os.cpu_count() or 1)
"""The extension's default for both ``maxConcurrent*Functions``: 10 x the processor count."""
DEFAULT_STOP_TIMEOUT = 5.0
COMMAND_TIMEOUT = 60.0
KEPT_ACTIVITY_CALLS = 10_000
"""``activity_calls()`` keeps the most recent executions only (a host runs for long)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Waiter:
    statuses: Collection[OrchestrationStatus]
    future: asyncio.Future[InstanceSnapshot]


class DurableHost(EngineCore):
    """A real-time, persistent Durable Functions engine (see the module docstring)."""

    def __init__(
        self,
        app: FunctionRegister | FunctionCatalog,
        *,
        task_hub: str = DEFAULT_TASK_HUB,
        connection_string: str | None = None,
        max_concurrent_activities: int = DEFAULT_MAX_CONCURRENT,
        max_concurrent_orchestrators: int = DEFAULT_MAX_CONCURRENT,
        system_key: str | None = None,
        connection_name: str = DEFAULT_CONNECTION_NAME,
        orchestrator_threads: bool = True,
        store: Store | None = None,
        invoker: FunctionInvoker | None = None,
    ) -> None:
        """``app`` is the app, or the catalog of an app that ``invoker`` runs elsewhere."""
        super().__init__(
            app,
            task_hub=task_hub,
            connection_name=connection_name,
            system_key=system_key,
            kept_activity_calls=KEPT_ACTIVITY_CALLS,
        )
        if max_concurrent_activities < 1 or max_concurrent_orchestrators < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.max_concurrent_activities = max_concurrent_activities
        self.max_concurrent_orchestrators = max_concurrent_orchestrators
        self._store: Store = store or (
            TableStore(connection_string, task_hub) if connection_string else MemoryStore()
        )
        self._orchestrator_threads = orchestrator_threads
        self._given_invoker = invoker
        self._invoker: FunctionInvoker | None = invoker
        self.client_binding: Callable[[], str] | None = None
        """The ``durableClient`` binding JSON for activities that declare one (set by whoever
        serves the extension's HTTP API for this engine)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._running = False
        self._early_commands: list[Command] = []
        self._seq = 0
        self._reset()

    def _reset(self) -> None:
        """Forget in-memory state (``start()`` rebuilds it from the store)."""
        with self._lock:
            self._instances.clear()
            self._snapshots.clear()
        self._inboxes: dict[str, deque[StoredMessage]] = {}
        self._ready: deque[str] = deque()
        self._scheduled: set[str] = set()
        self._busy: set[str] = set()
        self._activity_queue: deque[ActivityRequest] = deque()
        self._running_activities = 0
        self._running_by_name: Counter[str] = Counter()
        self._running_episodes = 0
        self._abandoned = False
        self._watermarks: dict[str, int] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        self._broken: set[str] = set()
        self._resting: set[str] = set()
        """Instances whose abandoned work item waits out its back-off."""
        self._work_backoff: Backoff[str] = Backoff()
        self._activity_backoff: Backoff[ActivityRequest] = Backoff()
        self._retries: set[asyncio.TimerHandle] = set()
        """Pending tries again (cancelled by ``stop()``: the next start recovers the work)."""
        self._stopping = asyncio.Event()
        self._episode_tasks: set[asyncio.Task[None]] = set()
        self._activity_tasks: set[asyncio.Task[None]] = set()
        self._other_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> DurableHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def activity_load(self) -> dict[str, Any]:
        """Activities executing now (in all and by name) and waiting for a slot (benchmarks
        sample it)."""
        return {
            "running": self._running_activities,
            "runningByName": {name: n for name, n in self._running_by_name.items() if n},
            "queued": len(self._activity_queue),
        }

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Recover from the store and start scheduling on the running loop."""
        if self._running:
            raise DurableEngineError("the host is already running")
        started = time.perf_counter()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._reset()
        self._orchestrator_pool = ThreadPoolExecutor(
            self.max_concurrent_orchestrators, thread_name_prefix="durable-orchestrator"
        )
        if self._given_invoker is None:
            self._invoker = LocalInvoker(self.max_concurrent_activities)
        await self._store.open()
        found = recover(await self._store.load(TABLE))
        self._seq = max(self._seq, found.last_seq)
        for state, last_message in found.instances:
            self.register(state)
            self._watermarks[state.instance_id] = last_message
            self.publish(state)
        self._store.write(found.garbage)
        self._running = True
        for messages in found.inboxes.values():
            for message in messages:
                self._enqueue(message)
        for timer, row_key in found.timers:
            self._arm(timer, row_key)
        self._activity_queue.extend(found.work_items)
        with self._lock:
            early, self._early_commands = self._early_commands, []
        for command in early:
            self._apply(command)
        self._pump()
        logger.info(
            "task hub %s started in %.2fs: %d instances, %d with pending "
            "messages, %d timers re-armed, %d activities re-dispatched",
            self.task_hub,
            time.perf_counter() - started,
            len(found.instances),
            len(found.inboxes),
            len(found.timers),
            len(found.work_items),
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, give running work ``grace`` seconds, then abandon the rest.

        Abandoned activities keep their work items and run again on the next ``start()``.
        """
        if not self._running:
            return
        self._running = False
        self._stopping.set()  # commits waiting to be tried again give up (HostStopping)
        for handle in [*self._timers.values(), *self._retries]:
            handle.cancel()
        self._timers.clear()
        self._retries.clear()
        busy = self._episode_tasks | self._activity_tasks
        if busy:
            await asyncio.wait(busy, timeout=DEFAULT_STOP_TIMEOUT if grace is None else grace)
        self._abandoned = True
        for task in self._activity_tasks:
            task.cancel()
        if self._activity_tasks:
            await asyncio.wait(self._activity_tasks)
        if self._episode_tasks:  # orchestrator code cannot be interrupted; it is short
            await asyncio.wait(self._episode_tasks)
        while self._other_tasks:
            await asyncio.wait(set(self._other_tasks))
        await self._store.close()
        self._orchestrator_pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(self._invoker, LocalInvoker) and self._given_invoker is None:
            self._invoker.close()
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.future.cancel()
        logger.info("task hub %s stopped", self.task_hub)

    # -- client conveniences (thread-safe, encoded like the Python client) ---------------------

    def start_new(self, name: str, input: Any = None, instance_id: str | None = None) -> str:
        """``DurableOrchestrationClient.start_new``: the input is sent as ``df_dumps`` text."""
        return self.submit_start(name, instance_id, client_input_text(input))

    def raise_event(
        self,
        instance_id: str,
        name: str,
        data: Any = None,
        *,
        encoding: Literal["python_client", "json"] = "python_client",
    ) -> None:
        """Raise an event (``"python_client"``: double-encoded, as ``raise_event`` sends it)."""
        if not name:
            raise ValueError("event_name must be a non-empty string.")
        self.submit_raise_event(instance_id, name, client_event_text(data, encoding))

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        self.submit_terminate(instance_id, reason)

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        self.submit_suspend(instance_id, reason)

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        self.submit_resume(instance_id, reason)

    def purge(self, instance_id: str) -> None:
        self.submit_purge(instance_id)

    # -- waiting (for tests, benchmarks and the HTTP layer) -----------------------------------

    async def wait_for_status(
        self,
        instance_id: str,
        statuses: Collection[OrchestrationStatus],
        within: float,
    ) -> InstanceSnapshot:
        """Wait up to ``within`` seconds for the instance row to show one of ``statuses``.

        Raises ``TimeoutError`` when it does not.
        """
        snapshot = self.snapshot(instance_id)
        if snapshot is not None and snapshot.status in statuses:
            return snapshot
        future: asyncio.Future[InstanceSnapshot] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(statuses, future)
        self._waiters.setdefault(instance_id, []).append(waiter)
        try:
            return await asyncio.wait_for(future, within)
        finally:
            waiters = self._waiters.get(instance_id, [])
            if waiter in waiters:
                waiters.remove(waiter)

    async def wait_for_completion(self, instance_id: str, within: float) -> InstanceSnapshot:
        """Wait up to ``within`` seconds for the instance to be Completed, Failed or Terminated."""
        return await self.wait_for_status(instance_id, COMPLETED_STATUSES, within)

    def _notify(self, snapshot: InstanceSnapshot) -> None:
        for waiter in list(self._waiters.get(snapshot.instance_id, ())):
            if snapshot.status in waiter.statuses and not waiter.future.done():
                waiter.future.set_result(snapshot)

    # -- EngineCore: client commands -----------------------------------------------------------

    def _now(self) -> datetime:
        return _utcnow()

    def _submit(self, command: Command) -> object:
        loop = self._loop
        if not self._running or loop is None:
            self._early_commands.append(command)  # applied (and written) by start()
            return None
        if threading.get_ident() == self._loop_thread:
            self._apply(command)
            return None
        return asyncio.run_coroutine_threadsafe(self._apply_durably(command), loop)

    def _settle(self, pending: object) -> None:
        if isinstance(pending, ThreadFuture):
            pending.result(COMMAND_TIMEOUT)

    async def _apply_durably(self, command: Command) -> None:
        if not self._running:  # stopped while the command was on its way: the next start
            self._early_commands.append(command)
            return
        await asyncio.gather(*self._apply(command))

    def _apply(self, command: Command) -> list[asyncio.Future[None]]:
        instance_id = command.instance_id
        key = escape_key(instance_id)
        if isinstance(command, Purge):
            self.command_message(command)
            self._forget(instance_id)
            return [self._spawn(self._purge_rows(key), self._other_tasks)]
        previous = self._instances.get(instance_id)
        message = self.command_message(command)
        assert message is not None
        writes: list[asyncio.Future[None]] = []
        if isinstance(command, Start):
            state = self._instances[instance_id]
            self.publish(state)  # the Pending row (again, unless submitted before start())
            ops = [upsert(TABLE, instance_entity(state, self._watermarks.get(instance_id, 0)))]
            if previous is not None and previous.execution_id != state.execution_id:
                ops.extend(
                    history_rows(instance_id, previous.execution_id, previous.history_chunks)
                )
            writes.append(self._store.write(ops))
        writes.append(self._deliver(message)[1])
        return writes

    def _forget(self, instance_id: str) -> None:
        self._inboxes.pop(instance_id, None)
        self._watermarks.pop(instance_id, None)
        for timer_key in [k for k in self._timers if k[0] == instance_id]:
            self._timers.pop(timer_key).cancel()

    async def _purge_rows(self, key: str) -> None:
        await self._store.flush()
        rows = await self._store.partition(TABLE, key)
        await self._store.write([delete(TABLE, key, row["RowKey"]) for row in rows])

    # -- messages --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = max(time.time_ns(), self._seq + 1)
        return self._seq

    def _deliver(
        self, outbound: OrchestratorMessage, also: Iterable[Op] = ()
    ) -> tuple[list[Op], asyncio.Future[None]]:
        """Send a control message: written to the store and queued for its instance now; its
        rows (to write again if the write fails) and the write.

        ``also``: writes to the receiving instance's partition that go with the message (in
        the same transaction when they fit). Sequence numbers are taken on the loop in
        queueing order, so an instance's inbox is always in sequence order and
        ``LastMessage`` marks exactly what a checkpoint consumed.
        """
        seq = self._next_seq()
        row_key = message_row_key(seq)
        message = StoredMessage(
            seq, outbound.instance_id, outbound.execution_id, outbound.event, row_key=row_key
        )
        ops = [upsert(TABLE, message_entity(message, row_key)), *also]
        written = self._store.write(ops)
        self._enqueue(message)
        return ops, written

    def _enqueue(self, message: StoredMessage) -> None:
        self._inboxes.setdefault(message.instance_id, deque()).append(message)
        self._schedule(message.instance_id)

    def _schedule(self, instance_id: str) -> None:
        if (
            instance_id not in self._busy
            and instance_id not in self._scheduled
            and instance_id not in self._resting
        ):
            self._scheduled.add(instance_id)
            self._ready.append(instance_id)
            self._pump()

    def _pump(self) -> None:
        if not self._running:
            return
        while self._ready and self._running_episodes < self.max_concurrent_orchestrators:
            instance_id = self._ready.popleft()
            self._scheduled.discard(instance_id)
            if not self._inboxes.get(instance_id):
                continue
            self._busy.add(instance_id)
            self._running_episodes += 1
            self._spawn(self._episode(instance_id), self._episode_tasks)
        while self._activity_queue and self._running_activities < self.max_concurrent_activities:
            request = self._activity_queue.popleft()
            self._running_activities += 1
            self._running_by_name[request.name] += 1
            self._spawn(self._activity(request), self._activity_tasks)

    def _spawn(
        self, work: Coroutine[Any, Any, None], group: set[asyncio.Task[None]]
    ) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(work)
        group.add(task)
        task.add_done_callback(group.discard)
        return task

    # -- timers ----------------------------------------------------------------------------

    def _arm(self, timer: TimerRequest, row_key: str) -> None:
        assert self._loop is not None
        delay = max(0.0, (timer.fire_at - _utcnow()).total_seconds())
        key = (timer.instance_id, row_key)
        self._timers[key] = self._loop.call_later(delay, self._fire, timer, row_key)

    def _fire(self, timer: TimerRequest, row_key: str) -> None:
        self._timers.pop((timer.instance_id, row_key), None)
        if not self._running:
            return
        if timer.fire_at > _utcnow():  # the loop's clock ran a little ahead of the wall clock
            self._arm(timer, row_key)
            return
        message = StoredMessage(
            self._next_seq(), timer.instance_id, timer.execution_id, timer.event, row_key=row_key
        )
        self._enqueue(message)  # the timer row stays until a checkpoint consumes it

    # -- orchestration episodes ---------------------------------------------------------------

    async def _episode(self, instance_id: str) -> None:
        assert self._loop is not None
        inbox = self._inboxes[instance_id]
        batch = list(inbox)
        inbox.clear()
        if not inbox:
            del self._inboxes[instance_id]
        previous = self._instances.get(instance_id)
        saved = (None if previous is None else previous.copy(), self._watermarks.get(instance_id))
        state: Instance | None = None
        try:
            if instance_id in self._broken:
                return  # its messages stay stored, for a host that can run it
            work = self.reconcile(instance_id, batch)
            if work is None:
                self._store.write(consumed_rows(instance_id, batch))
                return
            state = work.state
            before = (state.execution_id, len(state.history))
            chunks_before = list(state.history_chunks)
            assert self._invoker is not None
            run = partial(
                state.run_work_item,
                work.events,
                now=_utcnow,
                new_execution_id=ExecutionIds(instance_id, state.execution_id, batch[0].seq),
                catalog=self.catalog,
                invoke=self._invoker.invoke_orchestrator,
            )
            if self._orchestrator_threads:
                outbound = await self._loop.run_in_executor(self._orchestrator_pool, run)
            else:
                outbound = run()
            await self._checkpoint(state, before, chunks_before, outbound, batch)
            self._work_backoff.succeeded(instance_id)
        except HostStopping:
            pass  # the work item is stored (or its activities are), for the next start
        except EngineLimitation as error:
            # The app uses what this engine lacks: it would fail again, so nothing more runs
            # for this instance.
            logger.error("%s cannot go on in this host: %r", instance_id, error, exc_info=error)
            self._broken.add(instance_id)
            broken = self._instances.get(instance_id)
            if broken is not None:
                broken.warn(f"stopped by the host: {error!r}")
        except Exception as error:
            self._abandon(instance_id, batch, state, saved, error)
        finally:
            self._running_episodes -= 1
            self._busy.discard(instance_id)
            if self._inboxes.get(instance_id):
                self._schedule(instance_id)
            self._pump()

    def _abandon(
        self,
        instance_id: str,
        batch: list[StoredMessage],
        state: Instance | None,
        saved: tuple[Instance | None, int | None],
        error: Exception,
    ) -> None:
        """``AbandonTaskOrchestrationWorkItemAsync``: the instance as its last checkpoint left
        it (``saved``: a copy, and the watermark), the batch back at the head of its inbox,
        another try after a back-off."""
        failures, delay = self._work_backoff.failed(instance_id)
        logger.error(
            "%s: work item abandoned (attempt %d: %r); trying again in %gs",
            instance_id,
            failures,
            error,
            delay,
            exc_info=error if failures == 1 else None,
        )
        copy, watermark = saved
        if state is not None and self._instances.get(instance_id) is state:
            with self._lock:  # not purged or started anew meanwhile
                if copy is None:
                    del self._instances[instance_id]  # a sub-orchestration it was creating
                else:
                    self._instances[instance_id] = copy
            if watermark is not None:
                self._watermarks[instance_id] = watermark
        inbox = self._inboxes.setdefault(instance_id, deque())
        inbox.extendleft(
            replace(message, event={**message.event, "IsPlayed": False})
            for message in reversed(batch)
        )
        self._resting.add(instance_id)
        self._later(delay, self._wake, instance_id)

    def _wake(self, instance_id: str) -> None:
        self._resting.discard(instance_id)
        if self._inboxes.get(instance_id):
            self._schedule(instance_id)

    def _later(self, delay: float, callback: Callable[[Any], None], argument: Any) -> None:
        """Call ``callback(argument)`` in ``delay`` seconds, unless the host stops first."""
        assert self._loop is not None

        def call() -> None:
            self._retries.discard(handle)
            callback(argument)

        handle = self._loop.call_later(delay, call)
        self._retries.add(handle)

    async def _checkpoint(
        self,
        state: Instance,
        before: tuple[str, int],
        chunks_before: list[int],
        outbound: list[Outbound],
        batch: list[StoredMessage],
    ) -> None:
        """Commit what a work item produced (``_commits.py``); its episode (and its slot) lasts
        until then. Messages that arrive meanwhile wait for the instance's next episode."""
        instance_id = state.instance_id
        before_execution, _ = before
        rows, activities, timers, messages = checkpoint_rows(state, before, outbound)
        sent = [self._deliver(message) for message in messages]
        watermark = max(self._watermarks.get(instance_id, 0), batch[-1].seq)
        self._watermarks[instance_id] = watermark
        cleanup = consumed_rows(instance_id, batch)
        if state.execution_id != before_execution:  # continued as new: the old history goes
            cleanup.extend(history_rows(instance_id, before_execution, chunks_before))
        snapshot = state.snapshot()

        def rows_durable() -> None:
            for timer in timers:
                self._arm(timer, timer_row_key(timer.execution_id, timer.event["TimerId"]))
            self._activity_queue.extend(activities)
            self._pump()

        committed = await commit_work_item(
            self._store,
            instance_id=instance_id,
            rows=rows,
            sent=sent,
            marker=[upsert(TABLE, instance_entity(state, watermark)), *cleanup],
            current=lambda: self._current(state),
            rows_durable=rows_durable,
            rest=partial(rest, self._stopping),
        )
        if committed:  # clients may see the instance row now
            self.publish(state, snapshot)
            self._notify(snapshot)
            if snapshot.status in COMPLETED_STATUSES:
                log_finished(state, snapshot)

    def _current(self, state: Instance) -> bool:
        return self._instances.get(state.instance_id) is state

    # -- activities ----------------------------------------------------------------------------

    async def _activity(self, request: ActivityRequest) -> None:
        assert self._loop is not None
        try:
            function = self.catalog.activity(request.name)
            if function is None:  # the extension never schedules an unknown activity
                logger.error("activity %r is not registered", request.name)
                return
            input_text = self.activity_input(request)
            executed_at = _utcnow()
            assert self._invoker is not None
            try:
                client = (
                    self.client_binding()
                    if function.clients and self.client_binding is not None
                    else None
                )
                outcome = await self._invoker.invoke_activity(function, input_text, client)
            except Exception as error:  # the worker process is gone, or could not answer
                if self._running:
                    self._retry_activity(request, error)
                return  # its work item stays stored meanwhile
            if self._abandoned:
                return  # the work item runs again after the next start
            self._activity_backoff.succeeded(request)
            answer = self.activity_result(request, function.name, input_text, outcome, executed_at)
            # The answer is not written on its own: the checkpoint that consumes it writes it
            # into the history and deletes the work item in the same transaction. A crash
            # before that leaves the work item, which runs again (at least once, as in Azure).
            self._enqueue(
                StoredMessage(
                    self._next_seq(),
                    answer.instance_id,
                    answer.execution_id,
                    answer.event,
                    consumes=(work_item_delete(request),),
                )
            )
        finally:
            self._running_activities -= 1
            self._running_by_name[request.name] -= 1
            self._pump()

    def _retry_activity(self, request: ActivityRequest, error: Exception) -> None:
        """``AbandonTaskActivityWorkItemAsync``: dispatched again after a back-off."""
        failures, delay = self._activity_backoff.failed(request)
        logger.error(
            "activity %r of %s could not run (attempt %d: %r); trying again in %gs",
            request.name,
            request.instance_id,
            failures,
            error,
            delay,
        )
        self._later(delay, self._redispatch, request)

    def _redispatch(self, request: ActivityRequest) -> None:
        self._activity_queue.append(request)
        self._pump()
