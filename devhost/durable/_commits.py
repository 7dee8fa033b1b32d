"""Committing ``DurableHost`` checkpoints: per instance, in order, data before the marker.

A checkpoint is what one orchestration work item wrote (history rows, work items, timers,
messages - already queued to the store) plus its commit marker (the instance row) and the
clean-up of the messages it consumed. Checkpoints of one instance commit in order; those that
pile up while a commit is in flight commit together (one instance row for all of them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ._instance import Instance
from ._status import InstanceSnapshot
from ._store import Op, Store

logger = logging.getLogger("devhost.durable")


@dataclass
class Checkpoint:
    state: Instance
    writes: list[asyncio.Future[None]]
    """Data writes already queued; the marker waits for them."""
    marker: Op
    """The instance row: once written, the work item is committed."""
    cleanup: list[Op]
    """Consumed messages (and replaced history) to delete once committed."""
    snapshot: InstanceSnapshot
    """The instance row clients see once committed."""


@dataclass
class _Queue:
    checkpoints: list[Checkpoint] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Committer:
    def __init__(
        self,
        store: Store,
        *,
        current: Callable[[Instance], bool],
        committed: Callable[[Checkpoint], None],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self._store = store
        self._current = current
        self._committed = committed
        self._spawn = spawn
        self._queues: dict[str, _Queue] = {}

    def add(self, checkpoint: Checkpoint) -> None:
        instance_id = checkpoint.state.instance_id
        queue = self._queues.setdefault(instance_id, _Queue())
        queue.checkpoints.append(checkpoint)
        if queue.task is None:
            queue.task = self._spawn(self._commit(instance_id, queue))

    async def _commit(self, instance_id: str, queue: _Queue) -> None:
        try:
            while queue.checkpoints:
                checkpoints, queue.checkpoints = queue.checkpoints, []
                await asyncio.gather(*(w for c in checkpoints for w in c.writes))
                last = checkpoints[-1]
                if not self._current(last.state):
                    continue  # purged, or started anew, meanwhile
                await self._store.write([last.marker])
                self._store.write([op for c in checkpoints for op in c.cleanup])
                self._committed(last)
        except Exception:
            logger.exception("checkpointing %s failed", instance_id)
        finally:
            queue.task = None
            if queue.checkpoints:  # arrived while the failure was being logged
                queue.task = self._spawn(self._commit(instance_id, queue))
            elif self._queues.get(instance_id) is queue:
                del self._queues[instance_id]


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
