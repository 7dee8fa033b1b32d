"""Definitions on Table Storage, listed newest first."""

from __future__ import annotations

import uuid
from datetime import datetime

from evalruns.domain.base import utcnow
from evalruns.domain.definitions import Definition, DefinitionInput
from evalruns.storage.documents import ACCESSED_FIELD, with_accessed
from evalruns.storage.paging import Page
from evalruns.storage.timeline import Record, Timeline


def _load(record: Record) -> Definition:
    return Definition.model_validate(with_accessed(record.document, record.last_accessed_at))


class DefinitionRepository:
    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    def create(self, given: DefinitionInput) -> Definition:
        now = utcnow()
        definition = Definition(
            **given.model_dump(), id=uuid.uuid4().hex, created_at=now, updated_at=now
        )
        document = definition.to_json_dict(exclude={ACCESSED_FIELD})
        self._timeline.insert(definition.id, now, {}, document)
        return definition

    def get(self, definition_id: str) -> Definition:
        return _load(self._timeline.get(definition_id))

    def touch(self, definition_id: str, at: datetime) -> None:
        """Record that the definition was read at `at`, changing nothing else."""
        self._timeline.touch(definition_id, at)

    def list(self, limit: int, cursor: str | None) -> Page[Definition]:
        return self._timeline.list({}, limit, cursor, _load)
