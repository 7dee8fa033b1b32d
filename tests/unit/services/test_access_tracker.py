"""The access tracker's throttle, on an executor that runs writes at once (no storage)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evalruns.services import access
from evalruns.services.access import ACCESS_WRITE_INTERVAL, AccessTracker

T0 = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)


class InlineExecutor(Executor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def recorder() -> tuple[list[datetime], Callable[[datetime], None]]:
    writes: list[datetime] = []
    return writes, writes.append


def test_due_when_never_read_or_a_minute_has_passed() -> None:
    tracker = AccessTracker(InlineExecutor())

    assert tracker.due(None, T0)
    assert not tracker.due(T0, T0 + ACCESS_WRITE_INTERVAL - timedelta(microseconds=1))
    assert tracker.due(T0, T0 + ACCESS_WRITE_INTERVAL)
    assert timedelta(seconds=60) == ACCESS_WRITE_INTERVAL


def test_writes_at_most_once_a_minute_per_record_using_the_clock() -> None:
    now = [T0]
    tracker = AccessTracker(InlineExecutor(), clock=lambda: now[0])
    writes, write = recorder()

    assert tracker.record(("run", "a"), None, write) is not None
    now[0] = T0 + timedelta(seconds=59)
    # The stored value read may still be the old one: the note of the write holds it back.
    assert tracker.record(("run", "a"), None, write) is None
    assert tracker.record(("run", "b"), None, write) is not None  # another record
    now[0] = T0 + timedelta(seconds=60)
    assert tracker.record(("run", "a"), T0, write) is not None

    assert writes == [T0, T0 + timedelta(seconds=59), T0 + timedelta(seconds=60)]


def test_an_explicit_time_overrides_the_clock() -> None:
    tracker = AccessTracker(InlineExecutor(), clock=lambda: T0)
    writes, write = recorder()

    tracker.record(("definition", "d"), None, write, now=T0 + timedelta(hours=1))

    assert writes == [T0 + timedelta(hours=1)]


def test_problems_are_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=access.__name__)

    def broken_clock() -> datetime:
        raise RuntimeError("clock broke")

    assert (
        AccessTracker(InlineExecutor(), clock=broken_clock).record(("run", "a"), None, print)
        is None
    )

    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    closed = AccessTracker(pool, clock=lambda: T0)
    assert closed.record(("run", "a"), None, print) is None
    # Nothing was scheduled, so nothing holds the next read back.
    assert closed.record(("run", "a"), None, print) is None

    def failing(at: datetime) -> None:
        raise ConnectionError("storage unreachable")

    tracker = AccessTracker(InlineExecutor(), clock=lambda: T0)
    future = tracker.record(("transcript", "r", "k"), None, failing)
    assert future is not None and isinstance(future.exception(), ConnectionError)
    writes, write = recorder()
    assert tracker.record(("transcript", "r", "k"), None, write) is not None  # tries again
    assert writes == [T0]

    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 4
    assert all("run a" in message for message in messages[:3])
    assert "transcript r/k" in messages[3] and "storage unreachable" in messages[3]


def test_notes_of_old_writes_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "RECENT_WRITES_PRUNE_AT", 3)
    now = [T0]
    tracker = AccessTracker(InlineExecutor(), clock=lambda: now[0])
    for name in "abc":
        tracker.record(("run", name), None, print)

    now[0] = T0 + timedelta(seconds=61)
    tracker.record(("run", "d"), None, print)
    tracker.record(("run", "e"), None, print)

    assert set(tracker._recent) == {("run", "d"), ("run", "e")}
