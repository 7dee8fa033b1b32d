"""Riding out faults while the host runs, as the Durable extension does: try again, with
back-off, until it works or the host stops.

DurableTask.AzureStorage never gives an orchestration up because storage failed: the work item
is abandoned - its queue messages become visible again after 2, 4, 8... s, at most 10 minutes
(``TaskHubQueue.AbandonMessageAsync``), and the dispatcher rests 10 s
(``GetDelayInSecondsAfterOnProcessException``) - and processed again once storage answers; an
activity whose result cannot be sent is abandoned the same way and runs again. devhost waits
1, 2, 4, 8, then every 10 s: a development host should go on within seconds of storage coming
back, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Hashable
from typing import Generic, TypeVar

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

K = TypeVar("K", bound=Hashable)


class HostStopping(Exception):
    """The host stopped while work waited to be tried again: what it held stays stored (or
    runs again) for the next start, as after a crash."""


def retry_delay(failures: int) -> float:
    """Seconds before trying again after ``failures`` failed attempts in a row."""
    return min(RETRY_FIRST_SECONDS * 2 ** (failures - 1), RETRY_MAX_SECONDS)


class Backoff(Generic[K]):
    """Failed attempts in a row by key (an instance, an activity work item)."""

    def __init__(self) -> None:
        self._failures: Counter[K] = Counter()

    def failed(self, key: K) -> tuple[int, float]:
        """Count a failure: the attempts failed so far and the seconds to wait."""
        self._failures[key] += 1
        failures = self._failures[key]
        return failures, retry_delay(failures)

    def succeeded(self, key: K) -> None:
        self._failures.pop(key, None)


async def rest(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless the host stops first; whether it still runs."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return not stopping.is_set()


def is_unavailable(error: BaseException) -> bool:
    """Storage did not answer, or answered that it cannot now: a retry may succeed."""
    if isinstance(error, ServiceRequestError | ServiceResponseError | OSError | TimeoutError):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(error, HttpResponseError) and status in TRANSIENT_STATUSES


def describe(error: BaseException) -> str:
    """A failure on one line (the SDK's messages run to many)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
