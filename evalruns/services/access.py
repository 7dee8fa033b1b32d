"""Access tracking: reading a definition, a run or a transcript records when it was read.

At most once a minute per record, in the background: a read that finds the record's
`lastAccessedAt` missing or older than `ACCESS_WRITE_INTERVAL` schedules a write of the
`LastAccessedAt` column alone on `Services.io` and returns at once; the response shows the value
as it was read. The write changes nothing else (not the document, not `updatedAt`) and is best
effort: a failure is logged and forgotten, and the next read tries again.

Reads that arrive while a write is on its way, or that read the record just before it landed,
are held back by this process's own note of what it wrote recently; other instances rely on
the stored value alone, so a record read on several instances at once may be written once by
each.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from evalruns.domain.base import utcnow

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from evalruns.domain.definitions import Definition
    from evalruns.domain.runs import Run
    from evalruns.domain.transcripts import Transcript
    from evalruns.services.container import Services

log = logging.getLogger(__name__)

ACCESS_WRITE_INTERVAL = timedelta(seconds=60)
# Recent writes remembered per process before expired notes are dropped.
RECENT_WRITES_PRUNE_AT = 4096

Key = tuple[str, ...]


class AccessTracker:
    """Schedules last-access writes, throttled per record; one per `Services`."""

    def __init__(self, executor: Executor, clock: Callable[[], datetime] = utcnow) -> None:
        self._executor = executor
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: dict[Key, datetime] = {}
        self._pending: set[Future[None]] = set()

    def due(self, last_accessed_at: datetime | None, now: datetime) -> bool:
        """Whether a read at `now` should record itself, given the stored value."""
        return last_accessed_at is None or now - last_accessed_at >= ACCESS_WRITE_INTERVAL

    def record(
        self,
        key: Key,
        last_accessed_at: datetime | None,
        write: Callable[[datetime], None],
        now: datetime | None = None,
    ) -> Future[None] | None:
        """Schedule `write(now)` when the record is due; the future, or None when throttled.

        Never raises and never waits for the write.
        """
        try:
            at = now or self.clock()
            with self._lock:
                if not self.due(last_accessed_at, at) or not self.due(self._recent.get(key), at):
                    return None
                self._note(key, at)
        except Exception:
            log.warning(
                "could not check the access time of %s",
                _name(key),
                exc_info=True,
                extra=_log_extra(key),
            )
            return None
        try:
            future = self._executor.submit(write, at)
        except Exception:  # e.g. the pool is shutting down
            log.warning(
                "could not schedule the access time of %s",
                _name(key),
                exc_info=True,
                extra=_log_extra(key),
            )
            self._forget(key, at)
            return None
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(lambda done: self._finished(key, at, done))
        return future

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for scheduled writes; whether none is left."""
        with self._lock:
            pending = set(self._pending)
        _, not_done = wait(pending, timeout=timeout)
        return not not_done

    def _note(self, key: Key, at: datetime) -> None:
        if len(self._recent) >= RECENT_WRITES_PRUNE_AT:
            self._recent = {
                noted: when
                for noted, when in self._recent.items()
                if at - when < ACCESS_WRITE_INTERVAL
            }
        self._recent[key] = at

    def _forget(self, key: Key, at: datetime) -> None:
        """Drop the note of a write that did not happen, so the next read tries again."""
        with self._lock:
            if self._recent.get(key) == at:
                del self._recent[key]

    def _finished(self, key: Key, at: datetime, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        error = future.exception()
        if error is not None:
            self._forget(key, at)
            log.warning(
                "could not record the access time of %s: %s",
                _name(key),
                error,
                exc_info=error,
                extra=_log_extra(key),
            )


def _name(key: Key) -> str:
    kind, *ids = key
    return f"{kind} {'/'.join(ids)}"


def _log_extra(key: Key) -> dict[str, str]:
    kind, *ids = key
    if kind == "run":
        return {"run_id": ids[0]}
    if kind == "transcript":
        return {"run_id": ids[0], "job_key": ids[1]}
    return {f"{kind}_id": ids[0]}


def touch_definition(
    services: Services, definition: Definition, now: datetime | None = None
) -> Future[None] | None:
    """Record that `definition` (as just read) was read, when it is due."""
    return services.access.record(
        ("definition", definition.id),
        definition.last_accessed_at,
        lambda at: services.definitions.touch(definition.id, at),
        now,
    )


def touch_run(services: Services, run: Run, now: datetime | None = None) -> Future[None] | None:
    """Record that `run` (as just read) was read, when it is due."""
    return services.access.record(
        ("run", run.id),
        run.last_accessed_at,
        lambda at: services.runs.touch(run.id, at),
        now,
    )


def touch_transcript(
    services: Services, transcript: Transcript, now: datetime | None = None
) -> Future[None] | None:
    """Record that `transcript` (as just read) was read, when it is due."""
    return services.access.record(
        ("transcript", transcript.run_id, transcript.id),
        transcript.last_accessed_at,
        lambda at: services.transcripts.touch(transcript.run_id, transcript.id, at),
        now,
    )
