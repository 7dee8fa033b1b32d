"""Committing a ``DurableHost`` work item, in the order DurableTask.Core's Azure Storage
provider completes one (``CompleteTaskOrchestrationWorkItemAsync``).

1. The rows of the instance's own partition - new history, activity work items, timers - and
   the messages to other instances are written; the work items and timers take effect once
   durable (activities start, timers are armed), as outbound queue messages do in Azure.
2. The instance row - the commit marker - and the deletion of the messages the work item
   consumed are written once the messages to other instances are durable.

The instance stays locked (no other episode runs for it) until its commit is durable, as the
provider holds the orchestration session until the work item is complete. The store writes a
partition in order and fails what is queued behind a failed write, so the marker never lands
without the rows before it; when nothing was sent to other instances - the common case - the
marker is queued right behind the rows and the store usually writes the whole work item as one
entity-group transaction.

A commit that fails (storage down, after the store's own retries) is tried again, whole, after
a back-off (``_faults.py``) for as long as the host runs; meanwhile the instance stays locked
and the messages that arrive for it wait, as they wait in a control queue. DTFx abandons such a
work item and replays it from the stored history; orchestrators being deterministic, that
replay produces this same checkpoint, so devhost keeps it and writes it again (every write is
idempotent). Nothing the work item released - activities, timers - is released twice, and no
answer can reach the instance before the history that asked for it (DTFx needs
``IsOutOfOrderMessage`` for that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ._faults import HostStopping, describe, is_unavailable, retry_delay
from ._instance import Instance
from ._status import InstanceSnapshot
from ._store import Op, Store

logger = logging.getLogger("devhost.durable")


async def commit_work_item(
    store: Store,
    *,
    instance_id: str,
    rows: list[Op],
    sent: list[tuple[list[Op], asyncio.Future[None]]],
    marker: list[Op],
    current: Callable[[], bool],
    rows_durable: Callable[[], None],
    rest: Callable[[float], Awaitable[bool]],
) -> bool:
    """Write one work item, trying again until it is durable; ``True`` once committed,
    ``False`` when the instance was purged or started anew meanwhile (``current()`` false: no
    marker is written).

    ``sent`` holds each message to another instance (its rows, and the write already queued);
    ``rest(seconds)`` waits before another attempt and answers ``False`` when the host stops
    instead (then ``HostStopping`` is raised).
    """
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            rows_durable()

    writes = [written for _, written in sent]
    failures = 0
    while True:
        try:
            return await _commit_once(store, rows, writes, marker, current, release)
        except Exception as error:
            failures += 1
            delay = retry_delay(failures)
            _log_retry(instance_id, error, failures, delay)
            if not await rest(delay):
                raise HostStopping(instance_id) from error
            writes = [store.write(ops) for ops, _ in sent]


async def _commit_once(
    store: Store,
    rows: list[Op],
    sent: list[asyncio.Future[None]],
    marker: list[Op],
    current: Callable[[], bool],
    release: Callable[[], None],
) -> bool:
    written = store.write(rows)
    committed = store.write(marker) if not sent and current() else None
    await written
    release()
    if sent:
        await asyncio.gather(*sent)
        committed = store.write(marker) if current() else None
    if committed is None:
        return False
    await committed
    return True


def _log_retry(instance_id: str, error: BaseException, failures: int, delay: float) -> None:
    """One line per failed attempt; a traceback when it is not storage being unavailable."""
    unavailable = is_unavailable(error)
    logger.log(
        logging.WARNING if unavailable else logging.ERROR,
        "%s: checkpoint failed (attempt %d: %s); trying again in %gs",
        instance_id,
        failures,
        describe(error),
        delay,
        exc_info=None if unavailable else error,
        extra={"instance_id": instance_id, "attempt": failures},
    )


def log_finished(state: Instance, snapshot: InstanceSnapshot) -> None:
    """One line per finished instance, with the figures benchmarks look at."""
    history = len(snapshot.history)
    peak = max(state.peak_history_length, history)
    logger.info(
        "%s (%s) %s: history %d events (peak %d), %d episodes, %d generations, "
        "orchestrator CPU %.3fs",
        state.instance_id,
        state.name,
        snapshot.status.runtime_status,
        history,
        peak,
        state.episodes,
        state.generations,
        state.cpu_seconds,
        extra={
            "instance_id": state.instance_id,
            "orchestrator": state.name,
            "runtime_status": snapshot.status.runtime_status,
            "history_length": history,
            "peak_history_length": peak,
            "episodes": state.episodes,
            "generations": state.generations,
            "orchestrator_cpu_seconds": state.cpu_seconds,
        },
    )
