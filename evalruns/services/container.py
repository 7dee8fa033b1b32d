"""The composition of settings, storage and catalog, built once per process.

Each part imports its modules when it is first built: a process pays for the storage SDKs,
the models and the providers it uses, not for all of them on `import`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from evalruns.settings import Settings, load_settings
from evalruns.storage.clients import CONNECTIONS_PER_HOST, StorageClients

if TYPE_CHECKING:
    from evalruns.providers.catalog import Catalog
    from evalruns.services.access import AccessTracker
    from evalruns.services.caches import JobSpaces, RecentTranscripts, RunGates, Turns
    from evalruns.storage.definitions import DefinitionRepository
    from evalruns.storage.exports import ExportBlobs
    from evalruns.storage.incidents import Incidents
    from evalruns.storage.ledgers import LedgerRepository
    from evalruns.storage.runs import RunRepository
    from evalruns.storage.transcripts import TranscriptRepository

T = TypeVar("T")
IO_THREADS = CONNECTIONS_PER_HOST


@dataclass
class Services:
    settings: Settings

    @cached_property
    def storage(self) -> StorageClients:
        return StorageClients(self.settings)

    @cached_property
    def catalog(self) -> Catalog:
        from evalruns.providers.catalog import load_catalog

        return load_catalog()

    @cached_property
    def definitions(self) -> DefinitionRepository:
        from evalruns.storage.definitions import DefinitionRepository
        from evalruns.storage.timeline import Timeline

        return DefinitionRepository(
            Timeline(self.storage.table("Definitions"), "definition", self.incidents)
        )

    @cached_property
    def runs(self) -> RunRepository:
        from evalruns.storage.runs import RunRepository
        from evalruns.storage.timeline import Timeline

        return RunRepository(Timeline(self.storage.table("Runs"), "run", self.incidents))

    @cached_property
    def incidents(self) -> Incidents:
        from evalruns.storage.incidents import Incidents

        return Incidents(self.storage.table("Incidents"))

    @cached_property
    def ledgers(self) -> LedgerRepository:
        from evalruns.storage.ledgers import LedgerRepository

        return LedgerRepository(self.storage.table("Jobs"))

    @cached_property
    def job_spaces(self) -> JobSpaces:
        from evalruns.services.caches import JobSpaces

        return JobSpaces(self.runs, self.ledgers)

    @cached_property
    def ledger_turns(self) -> Turns:
        from evalruns.services.caches import Turns

        return Turns()

    @cached_property
    def recent(self) -> RecentTranscripts:
        from evalruns.services.caches import RecentTranscripts

        return RecentTranscripts()

    @cached_property
    def gates(self) -> RunGates:
        from evalruns.services.caches import RunGates

        return RunGates(self.runs, self.settings.status_cache_seconds)

    def cap(self, provider: str) -> int:
        """How many calls `provider` may have in flight: its setting, else the catalog's."""
        return (
            self.settings.provider_caps.get(provider)
            or self.catalog.providers[provider].max_concurrency
        )

    @cached_property
    def transcripts(self) -> TranscriptRepository:
        from evalruns.storage.blobs import DocumentBlobs
        from evalruns.storage.transcripts import TranscriptRepository

        spill = DocumentBlobs(self.storage.container(self.settings.spill_container))
        return TranscriptRepository(self.storage.table("Transcripts"), spill, self.incidents)

    @cached_property
    def exports(self) -> ExportBlobs:
        from evalruns.storage.exports import ExportBlobs

        return ExportBlobs(self.storage.container(self.settings.exports_container))

    @cached_property
    def io(self) -> ThreadPoolExecutor:
        """Threads for blocking storage calls made from async code (probes): sized for the
        activity concurrency, where the event loop's default pool has cores + 4."""
        return ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="evalruns-io")

    @cached_property
    def access(self) -> AccessTracker:
        """Records reads of definitions, runs and transcripts in the background, on `io`."""
        from evalruns.services.access import AccessTracker

        return AccessTracker(self.io)

    async def run_io(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.io, call, *args)

    @property
    def sas_expiry(self) -> timedelta:
        return timedelta(minutes=self.settings.sas_expiry_minutes)


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The process's services, built from the environment on first use."""
    global _services
    with _lock:
        if _services is None:
            _services = Services(load_settings())
        return _services


def reset_services(services: Services | None = None) -> None:
    """Replace the process's services (tests, or after the environment changed)."""
    global _services
    with _lock:
        _services = services
