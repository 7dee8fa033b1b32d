"""Committing a ``DurableHost`` work item, in the order DurableTask.Core's Azure Storage
provider completes one (``CompleteTaskOrchestrationWorkItemAsync``).

1. The rows of the instance's own partition - new history, activity work items, timers - and
   the messages to other instances are written; the work items and timers take effect once
   durable (activities start, timers are armed), as outbound queue messages do in Azure.
2. The instance row - the commit marker - and the deletion of the messages the work item
   consumed are written once the messages to other instances are durable.

The instance stays locked (no other episode runs for it) until its commit is durable, as the
provider holds the orchestration session until the work item is complete. The store writes a
partition in order and stops writing to a partition after a failed write, so the marker never
lands without the rows before it; when nothing was sent to other instances - the common case -
the marker is queued right behind the rows and the store usually writes the whole work item as
one entity-group transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ._instance import Instance
from ._status import InstanceSnapshot
from ._store import Op, Store

logger = logging.getLogger("devhost.durable")


async def commit_work_item(
    store: Store,
    *,
    rows: list[Op],
    sent: list[asyncio.Future[None]],
    marker: list[Op],
    current: Callable[[], bool],
    rows_durable: Callable[[], None],
) -> bool:
    """Write one work item; ``True`` once committed, ``False`` when the instance was purged or
    started anew meanwhile (``current()`` false: no marker is written). Raises if a write
    failed."""
    written = store.write(rows)
    committed = store.write(marker) if not sent and current() else None
    await written
    rows_durable()
    if sent:
        await asyncio.gather(*sent)
        committed = store.write(marker) if current() else None
    if committed is None:
        return False
    await committed
    return True


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
