"""Value types and errors of the engine's public API (kept apart from the engine's logic)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal


class DurableEngineError(Exception):
    """Misuse of the engine, or a run that did not finish within its step budget."""


class OrchestrationStuck(DurableEngineError):
    """Nothing can run any more but the instance has not reached a terminal state."""


class UnknownFunctionError(DurableEngineError):
    """``ArgumentException`` from ``ThrowIfFunctionDoesNotExist`` (HTTP 400)."""


class InvalidInstanceIdError(DurableEngineError):
    """``ArgumentException`` from ``StartNewAsync``'s instance id checks (HTTP 400)."""


class InstanceExistsError(DurableEngineError):
    """``OrchestrationAlreadyExistsException`` (HTTP 500 from the extension's handler)."""


class InstanceNotFoundError(DurableEngineError):
    """No instance row with that id (HTTP 404)."""


class InstanceGoneError(DurableEngineError):
    """The instance already reached a terminal state (HTTP 410)."""


class InvalidOperationError(DurableEngineError):
    """``InvalidOperationException`` from ``SuspendAsync``/``ResumeAsync`` (HTTP 500)."""


class VirtualClock:
    """UTC time that only moves when the engine (or a test) moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        moment = start if start is not None else datetime.now(UTC).replace(microsecond=0)
        self._now = moment.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += max(delta, timedelta(0))

    def advance_to(self, moment: datetime) -> None:
        with self._lock:
            self._now = max(self._now, moment.astimezone(UTC))


@dataclass(frozen=True)
class Step:
    """One unit of work the engine performed (truthy; ``run_one`` returns ``None`` when idle)."""

    kind: Literal["orchestration", "activity", "discarded"]
    instance_id: str
    name: str
    detail: str = ""


@dataclass(frozen=True)
class ActivityCall:
    """One activity execution, for assertions such as "how many attempts were made"."""

    name: str
    instance_id: str
    task_id: int
    input: Any
    result: str | None
    failed: bool
    reason: str | None
    executed_at: datetime


@dataclass(frozen=True)
class DiscardedMessage:
    instance_id: str
    event_type: str
    reason: str


@dataclass(frozen=True)
class InstanceInfo:
    """Observability for one instance (a copy; it does not change as the engine runs)."""

    instance_id: str
    name: str
    runtime_status: str
    execution_id: str
    parent_instance_id: str | None
    history_length: int
    peak_history_length: int
    episodes: int
    generations: int
    timers_created: int
    orchestrator_cpu_seconds: float
    waiting_on: str | None
    open_task_ids: tuple[int, ...]
    buffered_events: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class EngineSummary:
    """Observability across every instance an engine knows (for benchmarks and logs)."""

    instances: int
    completed_instances: int
    episodes: int
    generations: int
    orchestrator_cpu_seconds: float
    history_events: int
    """Events in the current histories of all instances."""
    largest_history: int
    """The longest history any instance has had (peak, over all of its generations)."""
    largest_history_instance: str | None
    activity_executions: int
