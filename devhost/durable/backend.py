"""What the client side (RPC endpoints, public webhooks, client bindings) needs from an engine.

Two engines implement it: `DurableEngine` (step by step on a virtual clock, for tests) and the
real-time, persistent engine the local host runs. Every method is thread-safe: HTTP handlers
call them from other threads than the one scheduling work.
"""

from __future__ import annotations

from typing import Protocol

from ._status import InstanceSnapshot
from ._types import InstanceInfo


class DurableBackend(Protocol):
    task_hub: str
    connection_name: str
    system_key: str | None

    def submit_start(self, name: str, instance_id: str | None, input_text: str | None) -> str:
        """Create an instance (Pending) and queue its ExecutionStarted; returns its id."""

    def submit_raise_event(self, instance_id: str, name: str, input_text: str) -> None: ...

    def submit_terminate(self, instance_id: str, reason: str | None) -> None: ...

    def submit_suspend(self, instance_id: str, reason: str | None) -> None: ...

    def submit_resume(self, instance_id: str, reason: str | None) -> None: ...

    def submit_purge(self, instance_id: str) -> None: ...

    def snapshot(self, instance_id: str) -> InstanceSnapshot | None:
        """The instance row and history as a client would read them now (None: unknown)."""

    def snapshots(self) -> list[InstanceSnapshot]: ...

    def instance(self, instance_id: str) -> InstanceInfo:
        """Observability: history length, episodes, orchestrator CPU time, ..."""
