"""Where ``DurableHost`` keeps its state: Azure Table Storage (Azurite), or memory.

A store holds one table per task hub (``<hub>State``; see ``_records.py`` for what goes in it)
and applies writes in the order they were submitted *per partition* (table + partition key),
batching whatever is waiting for one partition into entity-group transactions within Azure's
limits: at most 100 operations and 4 MiB per transaction, one partition each, 64 KiB per
property (larger strings go to a blob in ``<hub>-largemessages``, as the Azure Storage provider
does) and 1 MiB per entity. Writes to different partitions proceed concurrently. Once a write
to a partition has failed (after retries), the writes queued behind it fail too, without being
tried: a later write never lands without an earlier one it may depend on. The partition takes
writes again once its queue is empty, so whoever wrote can write again (``DurableHost`` retries
a failed checkpoint whole). Every write is idempotent (upserts and deletes by key), so a write
replayed after a crash or a retry does no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from ._faults import describe, is_unavailable
from ._table_http import TableWriter

logger = logging.getLogger("devhost.durable")
_sdk_logger = logging.getLogger("devhost.durable.storage")
"""The SDK's per-request logging (INFO) goes here instead of ``azure.core``, quietened."""
_sdk_logger.setLevel(logging.WARNING)

TABLES = ("State",)

MAX_BATCH_OPERATIONS = 100
MAX_BATCH_BYTES = 3 * 1024 * 1024
"""Kept under the 4 MiB transaction limit, as ``AzureTableTrackingStore`` does (3 MB)."""
MAX_PROPERTY_BYTES = 60 * 1024
"""``ExceedsMaxTablePropertySize``: UTF-16 bytes above which a value goes to a blob."""
ENTITY_OVERHEAD_BYTES = 1024
BLOB_SUFFIX = "_Blob"
MAX_PARALLEL_REQUESTS = 8
WRITE_ATTEMPTS = 5
RETRY_BASE_SECONDS = 0.05

Entity = dict[str, Any]


@dataclass(frozen=True)
class Op:
    """Upsert (replace) ``entity`` or, when it is ``None``, delete the row."""

    table: str
    partition_key: str
    row_key: str
    entity: Entity | None = None


def upsert(table: str, entity: Entity) -> Op:
    return Op(table, entity["PartitionKey"], entity["RowKey"], entity)


def delete(table: str, partition_key: str, row_key: str) -> Op:
    return Op(table, partition_key, row_key, None)


_UNSAFE_KEY_CHARACTERS = re.compile(r"[/\\#?^\x00-\x1f\x7f-\x9f]")


def escape_key(text: str) -> str:
    """A table key for any text: ``/ \\ # ?``, ``^`` and control characters become ``^XX``."""
    return _UNSAFE_KEY_CHARACTERS.sub(lambda match: f"^{ord(match.group()):02X}", text)


def utf16_size(text: str) -> int:
    return len(text.encode("utf-16-le"))


class Store(Protocol):
    """What ``DurableHost`` needs from storage."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def write(self, ops: Iterable[Op]) -> asyncio.Future[None]:
        """Queue writes (applied in order per partition); the future resolves when durable."""

    async def flush(self) -> None:
        """Wait until every write queued so far is durable."""

    async def load(self, table: str) -> list[Entity]:
        """Every row of one table (large values already read back)."""

    async def partition(self, table: str, partition_key: str) -> list[Entity]: ...


class MemoryStore:
    """Tables as dictionaries: nothing survives the process, but stop/start recovery works."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[str, str], Entity]] = {name: {} for name in TABLES}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def write(self, ops: Iterable[Op]) -> asyncio.Future[None]:
        for op in ops:
            rows = self.tables[op.table]
            if op.entity is None:
                rows.pop((op.partition_key, op.row_key), None)
            else:
                rows[op.partition_key, op.row_key] = dict(op.entity)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        return None

    async def load(self, table: str) -> list[Entity]:
        return [dict(entity) for entity in self.tables[table].values()]

    async def partition(self, table: str, partition_key: str) -> list[Entity]:
        return [dict(e) for (pk, _), e in self.tables[table].items() if pk == partition_key]


@dataclass
class _Ticket:
    future: asyncio.Future[None]
    remaining: int


@dataclass
class _Queue:
    items: deque[tuple[Op, _Ticket]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class TableStore:
    """Azure Table Storage through the async SDK, with per-partition batching."""

    def __init__(
        self,
        connection_string: str,
        task_hub: str,
        *,
        max_parallel_requests: int = MAX_PARALLEL_REQUESTS,
    ) -> None:
        self._connection_string = connection_string
        self._task_hub = task_hub
        self._max_parallel = max_parallel_requests
        self._service: TableServiceClient | None = None
        self._blobs: BlobServiceClient | None = None
        self._container: ContainerClient | None = None
        self._container_ready = False
        self._tables: dict[str, TableClient] = {}
        self._writer: TableWriter | None = None
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._failed: dict[tuple[str, str], BaseException] = {}
        """Partitions a write failed for: what is queued for them fails too, until the queue
        is empty."""
        self._semaphore: asyncio.Semaphore | None = None
        self._spilled: set[tuple[str, str, str]] = set()
        """Rows known to have blob-stored properties (their blobs go when the row goes)."""

    def table_name(self, table: str) -> str:
        return f"{self._task_hub}{table}"

    async def open(self) -> None:
        self._semaphore = asyncio.Semaphore(self._max_parallel)
        self._failed.clear()
        self._service = TableServiceClient.from_connection_string(
            self._connection_string, logger=_sdk_logger
        )
        for table in TABLES:
            name = self.table_name(table)
            await self._service.create_table_if_not_exists(name)
            self._tables[table] = self._service.get_table_client(name)
        self._writer = TableWriter(self._service)
        self._blobs = BlobServiceClient.from_connection_string(
            self._connection_string, logger=_sdk_logger
        )
        self._container = self._blobs.get_container_client(
            f"{self._task_hub.lower()}-largemessages"
        )

    async def close(self) -> None:
        await self.flush()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        for client in self._tables.values():
            await client.close()
        self._tables.clear()
        if self._service is not None:
            await self._service.close()
            self._service = None
        if self._blobs is not None:
            await self._blobs.close()
            self._blobs = self._container = None

    # -- writing ---------------------------------------------------------------------------

    def write(self, ops: Iterable[Op]) -> asyncio.Future[None]:
        items = list(ops)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # failures are logged here; callers may not wait
        if not items:
            future.set_result(None)
            return future
        ticket = _Ticket(future, len(items))
        for op in items:
            key = (op.table, op.partition_key)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue()
            queue.items.append((op, ticket))
            if queue.task is None:
                queue.task = asyncio.get_running_loop().create_task(self._drain(key, queue))
        return future

    async def flush(self) -> None:
        while True:
            tasks = [queue.task for queue in self._queues.values() if queue.task is not None]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, key: tuple[str, str], queue: _Queue) -> None:
        try:
            while queue.items:
                chunk = _take_chunk(queue.items)
                error = self._failed.get(key)
                if error is None:
                    try:
                        await self._apply(key[0], [op for op, _ in chunk])
                    except Exception as failure:  # reported to every waiting writer
                        _log_failure(key, failure, len(queue.items))
                        error = self._failed[key] = failure
                for _, ticket in chunk:
                    ticket.remaining -= 1
                    if ticket.future.done():
                        continue
                    if error is not None:
                        ticket.future.set_exception(error)
                    elif ticket.remaining == 0:
                        ticket.future.set_result(None)
        finally:
            queue.task = None
            if not queue.items:
                self._queues.pop(key, None)
                self._failed.pop(key, None)  # its writers learnt of the failure

    async def _apply(self, table: str, ops: list[Op]) -> None:
        assert self._semaphore is not None
        ops = [await self._spill(op) for op in ops]
        singly = False
        for attempt in range(WRITE_ATTEMPTS):
            try:
                async with self._semaphore:
                    if singly:
                        for op in ops:
                            await self._submit(table, [op])
                    else:
                        await self._submit(table, ops)
                break
            except TableTransactionError:
                if not singly and any(op.entity is None for op in ops):
                    singly = True  # maybe a delete of a row already gone: one at a time, in order
                    continue
                if attempt + 1 == WRITE_ATTEMPTS:
                    raise
            except (HttpResponseError, ServiceRequestError, ServiceResponseError):  # or no answer
                if attempt + 1 == WRITE_ATTEMPTS:
                    raise
            await asyncio.sleep(RETRY_BASE_SECONDS * 2**attempt)  # back-off, not a wait for work
        for op in ops:
            if op.entity is None:
                await self._drop_blobs(table, op)

    async def _submit(self, table: str, ops: list[Op]) -> None:
        writer = self._writer
        assert writer is not None
        name = self.table_name(table)
        if len(ops) == 1:
            (op,) = ops
            if op.entity is None:
                await writer.delete(name, op.partition_key, op.row_key)  # 404 is ignored
            else:
                await writer.upsert(name, op.partition_key, op.row_key, op.entity)
            return
        await writer.transaction(name, [(op.partition_key, op.row_key, op.entity) for op in ops])

    # -- large values ------------------------------------------------------------------------

    def _blob_name(self, table: str, partition_key: str, row_key: str, name: str) -> str:
        return "/".join(quote(part, safe="") for part in (table, partition_key, row_key, name))

    async def _spill(self, op: Op) -> Op:
        if op.entity is None:
            return op
        large = [
            name
            for name, value in op.entity.items()
            if isinstance(value, str)
            and len(value) * 4 > MAX_PROPERTY_BYTES  # at most 4 UTF-16 bytes per character
            and utf16_size(value) > MAX_PROPERTY_BYTES
        ]
        if not large:
            return op
        container = await self._ready_container()
        entity = dict(op.entity)
        for name in large:
            blob = self._blob_name(op.table, op.partition_key, op.row_key, name)
            await container.upload_blob(blob, entity.pop(name).encode("utf-8"), overwrite=True)
            entity[name + BLOB_SUFFIX] = blob
        self._spilled.add((op.table, op.partition_key, op.row_key))
        return Op(op.table, op.partition_key, op.row_key, entity)

    async def _ready_container(self) -> ContainerClient:
        assert self._container is not None
        if not self._container_ready:
            try:
                await self._container.create_container()
            except HttpResponseError as error:
                if error.status_code != 409:
                    raise
            self._container_ready = True
        return self._container

    async def _drop_blobs(self, table: str, op: Op) -> None:
        key = (table, op.partition_key, op.row_key)
        if key not in self._spilled:
            return
        self._spilled.discard(key)
        container = await self._ready_container()
        prefix = self._blob_name(table, op.partition_key, op.row_key, "")
        async for blob in container.list_blobs(name_starts_with=prefix):
            with contextlib.suppress(ResourceNotFoundError):
                await container.delete_blob(blob.name)

    async def _unspill(self, table: str, entity: Entity) -> Entity:
        blobs = [name for name in entity if name.endswith(BLOB_SUFFIX)]
        if not blobs:
            return entity
        container = await self._ready_container()
        for name in blobs:
            blob = entity.pop(name)
            data = await (await container.download_blob(blob)).readall()
            entity[name[: -len(BLOB_SUFFIX)]] = data.decode("utf-8")
        self._spilled.add((table, entity["PartitionKey"], entity["RowKey"]))
        return entity

    # -- reading -----------------------------------------------------------------------------

    async def load(self, table: str) -> list[Entity]:
        client = self._tables[table]
        return [await self._unspill(table, dict(e)) async for e in client.list_entities()]

    async def partition(self, table: str, partition_key: str) -> list[Entity]:
        client = self._tables[table]
        rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition_key})
        return [await self._unspill(table, dict(e)) async for e in rows]


def _log_failure(key: tuple[str, str], error: BaseException, behind: int) -> None:
    """Storage being down is expected and retried (one line); anything else is a bug here."""
    if is_unavailable(error):
        logger.warning(
            "writing %s failed (%s); %d rows queued behind fail with it",
            key,
            describe(error),
            behind,
        )
    else:
        logger.error(
            "writing %s failed; %d rows queued behind fail with it", key, behind, exc_info=error
        )


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _take_chunk(items: deque[tuple[Op, _Ticket]]) -> list[tuple[Op, _Ticket]]:
    """The next transaction: ≤ 100 operations, ≤ 3 MiB, and no row twice."""
    chunk: list[tuple[Op, _Ticket]] = []
    seen: set[str] = set()
    size = 0
    while items and len(chunk) < MAX_BATCH_OPERATIONS:
        op, ticket = items[0]
        if op.row_key in seen:
            break
        estimate = ENTITY_OVERHEAD_BYTES + _entity_bytes(op.entity)
        if chunk and size + estimate > MAX_BATCH_BYTES:
            break
        items.popleft()
        chunk.append((op, ticket))
        seen.add(op.row_key)
        size += estimate
    return chunk


def _entity_bytes(entity: Entity | None) -> int:
    if entity is None:
        return 0
    return sum(min(len(v) * 2, MAX_PROPERTY_BYTES) for v in entity.values() if isinstance(v, str))
