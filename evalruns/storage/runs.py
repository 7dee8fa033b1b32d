"""Runs on Table Storage: newest first, filterable by status and definition.

The run's definition snapshot is stored beside it, so later edits of the definition never
change a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from evalruns.domain.base import utcnow
from evalruns.domain.definitions import Definition
from evalruns.domain.ledger import Gate
from evalruns.domain.runs import Run, RunStatus
from evalruns.errors import Conflict
from evalruns.storage.documents import ACCESSED_FIELD, with_accessed
from evalruns.storage.paging import Page
from evalruns.storage.timeline import Record, Timeline

log = logging.getLogger(__name__)
UPDATE_ATTEMPTS = 8


class StoredRun(Run):
    """A run with its definition snapshot, as stored."""

    definition: Definition

    def public(self) -> Run:
        """The run as the API shows it, without the definition snapshot."""
        return Run.model_validate(self.model_dump(exclude={"definition"}))


def _columns(run: Run) -> dict[str, Any]:
    columns: dict[str, Any] = {"Status": run.status.value, "DefinitionId": run.definition_id}
    if run.budget_usd is not None:
        columns["BudgetUsd"] = float(run.budget_usd)
    if run.settling:
        columns["Settling"] = True
    return columns


def _document(run: StoredRun) -> dict[str, Any]:
    """The stored document: the last access time lives in its own column.

    Validated again on the way in (a `model_copy` update is not), so nothing is stored that
    `_load` would refuse.
    """
    return StoredRun.model_validate(run.model_dump()).to_json_dict(exclude={ACCESSED_FIELD})


def _load(record: Record) -> StoredRun:
    return StoredRun.model_validate(with_accessed(record.document, record.last_accessed_at))


class RunRepository:
    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    def create(self, run: StoredRun) -> StoredRun:
        self._timeline.insert(run.id, run.created_at, _columns(run), _document(run))
        return run.model_copy(update={ACCESSED_FIELD: None})

    def get(self, run_id: str) -> StoredRun:
        return _load(self._timeline.get(run_id))

    def touch(self, run_id: str, at: datetime) -> None:
        """Record that the run was read at `at`, changing nothing else."""
        self._timeline.touch(run_id, at)

    def status(self, run_id: str) -> RunStatus:
        return self.gate(run_id).status

    def gate(self, run_id: str) -> Gate:
        """The run's status and budget alone (two columns): what lanes check before work."""
        columns = self._timeline.columns(run_id, ["Status", "BudgetUsd"])
        return Gate(status=RunStatus(columns["Status"]), budget_usd=columns.get("BudgetUsd"))

    def update(self, run_id: str, change: Callable[[StoredRun], StoredRun | None]) -> StoredRun:
        """Apply `change` to the current run and store it, retrying on concurrent writes.

        `change` may raise (e.g. Conflict for a transition not allowed) or return None to
        leave the run untouched.
        """
        for _ in range(UPDATE_ATTEMPTS):
            stored = self._timeline.get(run_id)
            current = _load(stored)
            changed = change(current)
            if changed is None or changed == current:
                return current
            changed = changed.model_copy(update={"updated_at": utcnow()})
            try:
                self._timeline.replace(run_id, stored, _columns(changed), _document(changed))
            except Conflict:
                log.info("run %s changed concurrently; retrying update", run_id)
                continue
            # The stored access time was carried over, whatever `change` set.
            return changed.model_copy(update={ACCESSED_FIELD: stored.last_accessed_at})
        raise Conflict(f"run {run_id} is being updated by others; try again")

    def list(
        self,
        limit: int,
        cursor: str | None,
        status: RunStatus | None = None,
        definition_id: str | None = None,
        settling: bool = False,
    ) -> Page[StoredRun]:
        """Newest first; `settling` lists only runs whose progress is still being recounted."""
        filters: dict[str, Any] = {}
        if settling:
            filters["Settling"] = True
        if status is not None:
            filters["Status"] = status.value
        if definition_id is not None:
            filters["DefinitionId"] = definition_id
        return self._timeline.list(filters, limit, cursor, _load)
