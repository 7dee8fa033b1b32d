"""Transcripts on Table Storage: one partition per run, row key = job key.

Row keys order by model, scenario and sample, so reading a partition in key order is the
export's order and needs no sorting in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from evalruns.domain.transcripts import Transcript, TranscriptStatus, TranscriptSummary
from evalruns.errors import NotFound
from evalruns.storage.blobs import DocumentBlobs
from evalruns.storage.documents import DOC_BLOB, build_entity, pointer_entity, read_document
from evalruns.storage.limits import is_valid_key
from evalruns.storage.paging import Page, after_row, keyset_page

# Entities per query page when iterating a run. A page is held in several copies while it is
# read (response body, parsed JSON, documents), and an entity may be up to 1 MiB, so keep it
# small: 200 made the export's peak memory larger than the whole CSV of a 1,000-row run.
EXPORT_PAGE_SIZE = 25


class TranscriptRepository:
    def __init__(self, table: TableClient, spill: DocumentBlobs) -> None:
        self._table = table
        self._spill = spill

    def put(self, transcript: Transcript) -> None:
        """Insert or replace; a transcript too large for an entity goes to Blob."""
        columns = {"Status": transcript.status.value, "ModelId": transcript.model_id}
        document = transcript.to_json_dict()
        entity = build_entity(transcript.run_id, transcript.id, columns, document)
        if entity is None:
            blob_name = f"{transcript.run_id}/{transcript.id}.json"
            self._spill.put(blob_name, document)
            entity = pointer_entity(transcript.run_id, transcript.id, columns, blob_name)
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def get(self, run_id: str, transcript_id: str) -> Transcript:
        if not (is_valid_key(run_id) and is_valid_key(transcript_id)):
            raise NotFound(f"run {run_id!r} has no transcript {transcript_id!r}")
        try:
            entity = self._table.get_entity(run_id, transcript_id)
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
        clauses = ["PartitionKey eq @pk"]
        parameters: dict[str, Any] = {"pk": run_id}
        after = after_row(cursor)
        if after is not None:
            clauses.append("RowKey gt @after")
            parameters["after"] = after
        if model_id is not None:
            clauses.append("ModelId eq @model")
            parameters["model"] = model_id
        if status is not None:
            clauses.append("Status eq @status")
            parameters["status"] = status.value
        entities = self._table.query_entities(
            " and ".join(clauses), parameters=parameters, results_per_page=limit + 1
        )
        return keyset_page(
            entities, limit, lambda e: TranscriptSummary.model_validate(self._load(e).model_dump())
        )

    def iterate(self, run_id: str) -> Iterator[Transcript]:
        """Every transcript of a run in key order, a page at a time (bounded memory)."""
        entities = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": run_id}, results_per_page=EXPORT_PAGE_SIZE
        )
        for entity in entities:
            yield self._load(entity)

    def _load(self, entity: dict[str, Any]) -> Transcript:
        if DOC_BLOB in entity:
            return Transcript.model_validate(self._spill.get(entity[DOC_BLOB]))
        return Transcript.model_validate(read_document(entity))
