"""Definitions on Table Storage, listed newest first."""

from __future__ import annotations

import uuid

from evalruns.domain.base import utcnow
from evalruns.domain.definitions import Definition, DefinitionInput
from evalruns.storage.paging import Page
from evalruns.storage.timeline import Timeline


class DefinitionRepository:
    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    def create(self, given: DefinitionInput) -> Definition:
        now = utcnow()
        definition = Definition(
            **given.model_dump(), id=uuid.uuid4().hex, created_at=now, updated_at=now
        )
        self._timeline.insert(definition.id, now, {}, definition.to_json_dict())
        return definition

    def get(self, definition_id: str) -> Definition:
        return Definition.model_validate(self._timeline.get(definition_id).document)

    def list(self, limit: int, cursor: str | None) -> Page[Definition]:
        page = self._timeline.list({}, limit, cursor)
        return Page([Definition.model_validate(doc) for doc in page.items], page.next_cursor)
