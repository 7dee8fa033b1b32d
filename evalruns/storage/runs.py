"""Runs on Table Storage: newest first, filterable by status and definition.

The run's definition snapshot is stored beside it, so later edits of the definition never
change a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from evalruns.domain.base import utcnow
from evalruns.domain.definitions import Definition
from evalruns.domain.runs import Run, RunStatus
from evalruns.errors import Conflict
from evalruns.storage.paging import Page
from evalruns.storage.timeline import Timeline

log = logging.getLogger(__name__)
UPDATE_ATTEMPTS = 8


class StoredRun(Run):
    """A run with its definition snapshot, as stored."""

    definition: Definition

    def public(self) -> Run:
        """The run as the API shows it, without the definition snapshot."""
        return Run.model_validate(self.model_dump(exclude={"definition"}))


def _columns(run: Run) -> dict[str, Any]:
    return {"Status": run.status.value, "DefinitionId": run.definition_id}


class RunRepository:
    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    def create(self, run: StoredRun) -> StoredRun:
        self._timeline.insert(run.id, run.created_at, _columns(run), run.to_json_dict())
        return run

    def get(self, run_id: str) -> StoredRun:
        return StoredRun.model_validate(self._timeline.get(run_id).document)

    def update(self, run_id: str, change: Callable[[StoredRun], StoredRun | None]) -> StoredRun:
        """Apply `change` to the current run and store it, retrying on concurrent writes.

        `change` may raise (e.g. Conflict for a transition not allowed) or return None to
        leave the run untouched.
        """
        for _ in range(UPDATE_ATTEMPTS):
            stored = self._timeline.get(run_id)
            current = StoredRun.model_validate(stored.document)
            changed = change(current)
            if changed is None or changed == current:
                return current
            changed = changed.model_copy(update={"updated_at": utcnow()})
            try:
                self._timeline.replace(run_id, stored, _columns(changed), changed.to_json_dict())
            except Conflict:
                log.info("run %s changed concurrently; retrying update", run_id)
                continue
            return changed
        raise Conflict(f"run {run_id} is being updated by others; try again")

    def list(
        self,
        limit: int,
        cursor: str | None,
        status: RunStatus | None = None,
        definition_id: str | None = None,
    ) -> Page[StoredRun]:
        filters: dict[str, Any] = {}
        if status is not None:
            filters["Status"] = status.value
        if definition_id is not None:
            filters["DefinitionId"] = definition_id
        page = self._timeline.list(filters, limit, cursor)
        return Page([StoredRun.model_validate(doc) for doc in page.items], page.next_cursor)
