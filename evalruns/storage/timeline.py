"""A table of records listed newest first: definitions and runs.

Each record is two entities in one partition, written in one transaction: `id!<id>` for point
reads and `ts!<inverted time>!<id>` for listing newest first with server-side filters. Both
hold the same document and filter columns, so a list never needs a second read. Both also
carry the `LastAccessedAt` column, which `touch` merges into both without changing anything else
and `replace` carries over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from evalruns.errors import Conflict, FieldError, InvalidInput, NotFound
from evalruns.storage.documents import (
    ACCESSED_COLUMN,
    accessed_at,
    accessed_columns,
    build_entity,
    read_document,
)
from evalruns.storage.incidents import Incidents
from evalruns.storage.limits import LimitExceeded, is_etag_mismatch, is_valid_key
from evalruns.storage.paging import Page, after_row, keyset_page
from evalruns.storage.rest import LeanTable

T = TypeVar("T")
PARTITION = "all"
ID_PREFIX = "id!"
TIME_PREFIX = "ts!"
TIME_END = 'ts"'  # the character after '!', bounding the time range
_MAX_MICROS = 10**17


def time_key(created_at: datetime, record_id: str) -> str:
    """Row key sorting newest first: inverted microseconds since the epoch, then the id."""
    micros = int(created_at.astimezone(UTC).timestamp() * 1_000_000)
    return f"{TIME_PREFIX}{_MAX_MICROS - micros:017d}!{record_id}"


@dataclass(frozen=True)
class Record:
    """A stored document and when the record was last read (its own column)."""

    document: dict[str, Any]
    last_accessed_at: datetime | None


@dataclass(frozen=True)
class Stored(Record):
    """A record with what an optimistic update needs."""

    etag: str
    time_key: str


def _record(entity: dict[str, Any]) -> Record:
    return Record(read_document(entity), accessed_at(entity))


class Timeline:
    def __init__(self, table: LeanTable, kind: str, incidents: Incidents) -> None:
        self._table = table
        self._kind = kind
        self._incidents = incidents

    def insert(
        self,
        record_id: str,
        created_at: datetime,
        columns: Mapping[str, Any],
        document: Mapping[str, Any],
    ) -> None:
        columns = {**columns, "TimeKey": time_key(created_at, record_id)}
        self._table.submit_transaction(
            [
                ("create", self._entity(ID_PREFIX + record_id, columns, document)),
                ("create", self._entity(columns["TimeKey"], columns, document)),
            ]
        )

    def get(self, record_id: str) -> Stored:
        entity = self._lookup(record_id)
        return Stored(
            document=read_document(entity),
            last_accessed_at=accessed_at(entity),
            etag=str(entity.metadata["etag"]),
            time_key=entity["TimeKey"],
        )

    def columns(self, record_id: str, names: list[str]) -> dict[str, Any]:
        """Some columns of a record, without reading its document (hot paths)."""
        entity = self._lookup(record_id, select=",".join(names))
        return {name: entity.get(name) for name in names if entity.get(name) is not None}

    def replace(
        self,
        record_id: str,
        stored: Stored,
        columns: Mapping[str, Any],
        document: Mapping[str, Any],
    ) -> None:
        """Replace both entities if the record is unchanged since `stored` was read.

        The last access time read with `stored` is carried over; a touch since then changed
        the ETag, so this fails with Conflict and the caller rereads it.
        """
        columns = {
            **columns,
            **accessed_columns(stored.last_accessed_at),
            "TimeKey": stored.time_key,
        }
        try:
            self._table.submit_transaction(
                [
                    (
                        "update",
                        self._entity(ID_PREFIX + record_id, columns, document),
                        {
                            "mode": UpdateMode.REPLACE,
                            "etag": stored.etag,
                            "match_condition": MatchConditions.IfNotModified,
                        },
                    ),
                    (
                        "upsert",
                        self._entity(columns["TimeKey"], columns, document),
                        {"mode": UpdateMode.REPLACE},
                    ),
                ]
            )
        except HttpResponseError as exc:
            if is_etag_mismatch(exc):
                raise Conflict(f"the {self._kind} changed while it was being updated") from exc
            raise

    def touch(self, record_id: str, at: datetime) -> None:
        """Set when the record was last read, in both entities, and nothing else.

        A MERGE of that one column without an ETag condition: the document, its `updatedAt`
        and the filter columns are untouched, and a concurrent writer is never made to fail
        by it (its ETag-conditioned replace rereads and carries the new value over).
        """
        entity = self._lookup(record_id, select="TimeKey")
        self._table.submit_transaction(
            [
                (
                    "update",
                    {"PartitionKey": PARTITION, "RowKey": row, ACCESSED_COLUMN: at},
                    {"mode": UpdateMode.MERGE},
                )
                for row in (ID_PREFIX + record_id, entity["TimeKey"])
            ]
        )

    def list(
        self,
        filters: Mapping[str, Any],
        limit: int,
        cursor: str | None,
        load: Callable[[Record], T],
    ) -> Page[T]:
        """Newest first; `filters` are equality filters on columns. A record `load` refuses is
        skipped and kept as an incident, so one bad row never fails the listing."""
        clauses = ["PartitionKey eq @pk", "RowKey gt @start", "RowKey lt @end"]
        parameters: dict[str, Any] = {"pk": PARTITION, "start": TIME_PREFIX, "end": TIME_END}
        after = after_row(cursor)
        if after is not None:
            # Only a time key resumes a listing: any other key would move the lower bound
            # off the time range and list the `id!` copies too.
            if not after.startswith(TIME_PREFIX):
                raise InvalidInput(
                    "the cursor is not valid: pass the nextCursor of a previous page unchanged",
                    [FieldError(("query", "cursor"), "invalid cursor")],
                )
            parameters["start"] = after
        for index, (column, value) in enumerate(sorted(filters.items())):
            clauses.append(f"{column} eq @f{index}")
            parameters[f"f{index}"] = value
        entities = self._table.query_entities(
            " and ".join(clauses), parameters=parameters, results_per_page=limit + 1
        )
        loader = self._incidents.loader(
            self._kind, lambda entity: str(entity.get("RowKey")), lambda e: load(_record(e))
        )
        return keyset_page(entities, limit, loader)

    def _lookup(self, record_id: str, select: str | None = None) -> TableEntity:
        """The record's `id!` entity (only the `select` column when given), or NotFound.

        An id that cannot be a key is not found either, rather than a request Azure refuses.
        """
        if not is_valid_key(ID_PREFIX + record_id):
            raise NotFound(f"no {self._kind} with id {record_id!r}")
        try:
            return self._table.get_entity(PARTITION, ID_PREFIX + record_id, select=select)
        except ResourceNotFoundError as exc:
            raise NotFound(f"no {self._kind} with id {record_id!r}") from exc

    def _entity(
        self, row: str, columns: Mapping[str, Any], document: Mapping[str, Any]
    ) -> dict[str, Any]:
        entity = build_entity(PARTITION, row, columns, document)
        if entity is None:
            raise LimitExceeded(
                f"the {self._kind} is too large to store (Table Storage holds at most 1 MiB "
                "per record): shorten its texts or split it"
            )
        return entity
