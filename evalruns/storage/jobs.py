"""The job list of a run, written once by the plan and read by batches, in ranges of ordinals."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from evalruns.domain.transcripts import Job
from evalruns.errors import NotFound
from evalruns.storage.documents import build_entity, read_document
from evalruns.storage.limits import LimitExceeded, is_valid_key, transactions, wire_bytes

ORDINAL_WIDTH = 7


def _row(ordinal: int) -> str:
    return f"{ordinal:0{ORDINAL_WIDTH}d}"


def _entity(job: Job) -> dict[str, Any]:
    entity = build_entity(job.run_id, _row(job.ordinal), {}, job.to_json_dict())
    if entity is None:
        raise LimitExceeded(f"job {job.key} is too large to store")
    return entity


class JobRepository:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def put_all(self, jobs: Iterable[Job]) -> int:
        """Upsert jobs in transactions of at most 100 and 4 MiB (all of one run): re-planning
        is harmless."""
        count = 0
        for group in transactions(map(_entity, jobs), weight=wire_bytes):
            operations = [("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in group]
            self._table.submit_transaction(operations)
            count += len(operations)
        return count

    def get(self, run_id: str, ordinal: int) -> Job:
        if not is_valid_key(run_id):
            raise NotFound(f"run {run_id!r} has no job {ordinal}")
        try:
            entity = self._table.get_entity(run_id, _row(ordinal))
        except ResourceNotFoundError as exc:
            raise NotFound(f"run {run_id} has no job {ordinal}") from exc
        return Job.model_validate(read_document(entity))

    def get_range(self, run_id: str, first: int, last: int) -> list[Job]:
        """Jobs `first..last` (inclusive) in one query: a batch loads its jobs at once."""
        entities = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @first and RowKey le @last",
            parameters={"pk": run_id, "first": _row(first), "last": _row(last)},
        )
        return [Job.model_validate(read_document(entity)) for entity in entities]

    def iterate(self, run_id: str) -> Iterator[Job]:
        for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": run_id}):
            yield Job.model_validate(read_document(entity))
