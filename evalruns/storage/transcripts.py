"""Transcripts on Table Storage: row key = job key, partitions of ten scenarios of one model.

Row keys order by model, scenario and sample, and so do the partitions (`partition_of`), so
reading a run's partitions in key order is the export's order and needs no sorting in memory.
Small partitions keep point reads and writes cheap on Azurite, whose store indexes only the
partition key: a write into a partition of 10,000 rows cost it 8 ms of CPU, into one of 1,000
under 2 ms. When a transcript was last read is the entity's
`LastAccessedAt` column (also for one spilled to Blob), merged by `touch` and carried over by
`put`.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from evalruns.domain.runs import ModelProgress
from evalruns.domain.transcripts import (
    KEY_SEPARATOR,
    Transcript,
    TranscriptStatus,
    TranscriptSummary,
)
from evalruns.errors import Conflict, NotFound
from evalruns.storage.blobs import DocumentBlobs
from evalruns.storage.documents import (
    ACCESSED_COLUMN,
    ACCESSED_FIELD,
    DOC_BLOB,
    DOC_PREFIX,
    accessed_at,
    accessed_columns,
    build_entity,
    pointer_entity,
    read_document,
    with_accessed,
)
from evalruns.storage.incidents import Incidents
from evalruns.storage.limits import (
    MAX_ENTITY_BYTES,
    MAX_PROPERTY_BYTES,
    is_etag_mismatch,
    is_valid_key,
)
from evalruns.storage.paging import Page, after_row, keyset_page
from evalruns.storage.rest import MAX_PAGE_ENTITIES, Continuation, LeanTable, odata_string

# Entities per query page when iterating a run. A page is held in several copies while it is
# read (response body, parsed JSON, documents), and an entity may be up to 1 MiB, so keep it
# small: 200 made the export's peak memory larger than the whole CSV of a 1,000-row run.
EXPORT_PAGE_SIZE = 25
# A scan of a run's documents (the export) asks for pages of about this many bytes, sized from
# the entities of the page before: a thousand small transcripts (the service's most) or a few
# large ones, so what a page holds stays bounded whatever the transcripts' size. The first page
# is small, so the first rows come quickly and tell the size of the rest.
SCAN_PAGE_BYTES = 4 * 1024 * 1024
SCAN_FIRST_PAGE = 100
# Only the document's columns (an entity holds at most this many `Doc<n>` properties) and the
# key, to name a transcript that cannot be read.
_DOC_COLUMNS = tuple(
    f"{DOC_PREFIX}{index}" for index in range(MAX_ENTITY_BYTES // MAX_PROPERTY_BYTES)
)
_SCAN_COLUMNS = ("RowKey", *_DOC_COLUMNS, DOC_BLOB)
# Replacing a transcript rereads its access time when a touch lands in between; touches come
# at most once a minute, so even a second attempt is rare.
REPLACE_ATTEMPTS = 5

# Columns beside the document, so a run's progress can be counted without reading documents.
TALLY_COLUMNS = {
    "CostUsd": "cost_usd",
    "InputTokens": "input_tokens",
    "OutputTokens": "output_tokens",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentPage:
    """Stored transcript documents (id and JSON) in key order, and where the next page
    starts."""

    documents: list[tuple[str, str | bytes]]
    next: Continuation | None
    # Entities to ask for in the next page, sized from this one.
    next_top: int


def partition_of(run_id: str, transcript_id: str) -> str:
    """`<run>!<model>!<scenario id but its last digit>`: a prefix of `<run>!<job key>`, so
    partitions order as their row keys do."""
    model, _, rest = transcript_id.partition(KEY_SEPARATOR)
    scenario = rest.split(KEY_SEPARATOR, 1)[0]
    return KEY_SEPARATOR.join((run_id, model, scenario[:-1]))


def _run_range(run_id: str) -> tuple[str, str]:
    """Every partition of a run is at least the first and below the second."""
    return run_id + KEY_SEPARATOR, run_id + chr(ord(KEY_SEPARATOR) + 1)


class TranscriptRepository:
    def __init__(self, table: LeanTable, spill: DocumentBlobs, incidents: Incidents) -> None:
        self._table = table
        self._spill = spill
        self._incidents = incidents

    def put(self, transcript: Transcript) -> None:
        """Insert or replace; a transcript too large for an entity goes to Blob.

        The stored last access time is kept (the one on `transcript` is ignored: only `touch`
        sets it). A new transcript takes one request; replacing one reads its access time
        first and replaces only if no touch came in between.
        """
        entity = self._entity(transcript)
        try:
            self._table.create_entity(entity)
        except ResourceExistsError:
            self._replace(entity)

    def update(self, transcript: Transcript) -> None:
        """Replace a transcript just read, in one request: its access time is the one it was
        read with (a read landing in between loses its timestamp, which is best effort)."""
        entity = {**self._entity(transcript), **accessed_columns(transcript.last_accessed_at)}
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def _entity(self, transcript: Transcript) -> dict[str, Any]:
        """The entity of a transcript; one too large for an entity goes to Blob."""
        columns = {
            "Status": transcript.status.value,
            "ModelId": transcript.model_id,
            **{column: getattr(transcript, field) for column, field in TALLY_COLUMNS.items()},
        }
        document = transcript.to_json_dict(exclude={ACCESSED_FIELD})
        partition = partition_of(transcript.run_id, transcript.id)
        entity = build_entity(partition, transcript.id, columns, document)
        if entity is None:
            blob_name = f"{transcript.run_id}/{transcript.id}.json"
            self._spill.put(blob_name, document)
            entity = pointer_entity(partition, transcript.id, columns, blob_name)
        return entity

    def _replace(self, entity: dict[str, Any]) -> None:
        """Replace the stored entity, carrying its access time over."""
        partition, row = entity["PartitionKey"], entity["RowKey"]
        for _ in range(REPLACE_ATTEMPTS):
            current = self._table.get_entity(partition, row, select=[ACCESSED_COLUMN])
            try:
                self._table.update_entity(
                    {**entity, **accessed_columns(accessed_at(current))},
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except HttpResponseError as exc:
                if is_etag_mismatch(exc):
                    log.info(
                        "transcript changed while it was replaced; retrying",
                        extra={"partition": partition, "job_key": row},
                    )
                    continue
                raise
            return
        raise Conflict(f"transcript {row} of run {partition} is being written by others")

    def touch(self, run_id: str, transcript_id: str, at: datetime) -> None:
        """Set when the transcript was last read, and nothing else: a MERGE of that one
        column, without an ETag condition (for a spilled transcript, on its pointer entity;
        the blob is not touched)."""
        try:
            self._table.update_entity(
                {
                    "PartitionKey": partition_of(run_id, transcript_id),
                    "RowKey": transcript_id,
                    ACCESSED_COLUMN: at,
                },
                mode=UpdateMode.MERGE,
            )
        except ResourceNotFoundError as exc:
            raise NotFound(f"run {run_id!r} has no transcript {transcript_id!r}") from exc

    def get(self, run_id: str, transcript_id: str) -> Transcript:
        if not (is_valid_key(run_id) and is_valid_key(transcript_id)):
            raise NotFound(f"run {run_id!r} has no transcript {transcript_id!r}")
        try:
            entity = self._table.get_entity(partition_of(run_id, transcript_id), transcript_id)
        except ResourceNotFoundError as exc:
            raise NotFound(f"run {run_id!r} has no transcript {transcript_id!r}") from exc
        return self._load(entity)

    def get_if_exists(self, run_id: str, transcript_id: str) -> Transcript | None:
        try:
            return self.get(run_id, transcript_id)
        except NotFound:
            return None

    def list(
        self,
        run_id: str,
        limit: int,
        cursor: str | None,
        model_id: str | None = None,
        status: TranscriptStatus | None = None,
    ) -> Page[TranscriptSummary]:
        entities = self._query_after(run_id, limit, cursor, model_id, status)
        load = self._incidents.loader(
            "transcript",
            lambda entity: f"{entity.get('PartitionKey')}/{entity.get('RowKey')}",
            lambda entity: TranscriptSummary.model_validate(self._load(entity).model_dump()),
        )
        return keyset_page(entities, limit, load)

    def page(self, run_id: str, limit: int, cursor: str | None) -> Page[Transcript]:
        """The next `limit` whole transcripts of a run in key order, after `cursor`."""
        return keyset_page(self._query_after(run_id, limit, cursor), limit, self._load)

    def _query_after(
        self,
        run_id: str,
        limit: int,
        cursor: str | None,
        model_id: str | None = None,
        status: TranscriptStatus | None = None,
    ) -> Iterable[dict[str, Any]]:
        first, end = _run_range(run_id)
        parameters: dict[str, Any] = {"first": first, "end": end}
        clauses = ["PartitionKey ge @first and PartitionKey lt @end"]
        after = after_row(cursor)
        if after is not None:
            # The SDK finds parameters between spaces: none may touch a parenthesis.
            clauses = [
                "((PartitionKey eq @pk and RowKey gt @after )"
                " or (PartitionKey gt @pk and PartitionKey lt @end ))"
            ]
            parameters |= {"pk": partition_of(run_id, after), "after": after}
        if model_id is not None:
            clauses.append("ModelId eq @model")
            parameters["model"] = model_id
        if status is not None:
            clauses.append("Status eq @status")
            parameters["status"] = status.value
        entities: Iterable[dict[str, Any]] = self._table.query_entities(
            " and ".join(clauses), parameters=parameters, results_per_page=limit + 1
        )
        return entities

    def tally(self, run_id: str) -> dict[str, ModelProgress]:
        """Jobs done per model, counted from the transcripts that exist (a few columns each)."""
        first, end = _run_range(run_id)
        entities = self._table.query_entities(
            "PartitionKey ge @first and PartitionKey lt @end",
            parameters={"first": first, "end": end},
            select=["ModelId", "Status", *TALLY_COLUMNS],
            results_per_page=1000,
        )
        by_model: dict[str, ModelProgress] = {}
        for entity in entities:
            succeeded = entity.get("Status") == TranscriptStatus.SUCCEEDED.value
            by_model.setdefault(entity["ModelId"], ModelProgress()).add(
                ModelProgress(
                    completed=int(succeeded),
                    failed=int(not succeeded),
                    **{field: entity.get(column) or 0 for column, field in TALLY_COLUMNS.items()},
                )
            )
        return by_model

    def iterate(self, run_id: str) -> Iterator[Transcript]:
        """Every transcript of a run in key order, a page at a time (bounded memory)."""
        first, end = _run_range(run_id)
        entities = self._table.query_entities(
            "PartitionKey ge @first and PartitionKey lt @end",
            parameters={"first": first, "end": end},
            results_per_page=EXPORT_PAGE_SIZE,
        )
        for entity in entities:
            yield self._load(entity)

    def documents(
        self, run_id: str, after: Continuation | None = None, top: int = SCAN_FIRST_PAGE
    ) -> Generator[DocumentPage, None, None]:
        """The run's transcript documents as stored (JSON text), a page at a time in key
        order, from `after` (a page's `next`) or the start: the export's read, which selects
        only the document's columns and sizes its pages by bytes (`SCAN_PAGE_BYTES`), from
        `top` entities for the first."""
        first, end = _run_range(run_id)
        query = f"PartitionKey ge {odata_string(first)} and PartitionKey lt {odata_string(end)}"
        while True:
            page = self._table.query_page(query, select=_SCAN_COLUMNS, top=top, after=after)
            if page.entities:
                per_entity = max(1, page.size // len(page.entities))
                top = max(1, min(MAX_PAGE_ENTITIES, SCAN_PAGE_BYTES // per_entity))
            documents = [(e["RowKey"], self._document_json(e)) for e in page.entities]
            yield DocumentPage(documents, page.next, top)
            if page.next is None:
                return
            after = page.next

    def _document_json(self, entity: dict[str, Any]) -> str | bytes:
        if entity.get(DOC_BLOB):
            return self._spill.read(entity[DOC_BLOB])
        if entity.get(_DOC_COLUMNS[1]) is None:  # most documents fit one property
            return str(entity.get(_DOC_COLUMNS[0], ""))
        parts: list[str] = []
        for column in _DOC_COLUMNS:
            part = entity.get(column)
            if part is None:  # the service may list a selected column it does not hold
                break
            parts.append(part)
        return "".join(parts)

    def _load(self, entity: dict[str, Any]) -> Transcript:
        if DOC_BLOB in entity:
            document = self._spill.get(entity[DOC_BLOB])
        else:
            document = read_document(entity)
        return Transcript.model_validate(with_accessed(document, accessed_at(entity)))
