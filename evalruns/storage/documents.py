"""Records as JSON documents split across string properties.

A pydantic record is stored as its JSON in `Doc0..DocN` (each under the 64 KiB property
limit) beside a few typed columns used for server-side filters. A document too large for one
entity goes to Blob and the entity keeps a pointer (`DocBlob`).

When a record was last read is not part of its document: it is the `LastAccessedAt` column,
which access tracking merges on its own (never touching the document) and every replace
carries over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from evalruns.storage.limits import (
    ENTITY_HEADROOM_BYTES,
    MAX_ENTITY_BYTES,
    MAX_PROPERTY_BYTES,
    check_entity,
    check_key,
    entity_bytes,
    utf16_bytes,
    wire_bytes,
)

DOC_PREFIX = "Doc"
DOC_BLOB = "DocBlob"
ACCESSED_COLUMN = "LastAccessedAt"
# The model field the column stands for: left out of documents, set from the column on load.
ACCESSED_FIELD = "last_accessed_at"
ACCESSED_KEY = "lastAccessedAt"
# 64 KiB of UTF-16 is 32,768 code units; astral characters take two, so split by measure.
_CHUNK_BYTES = MAX_PROPERTY_BYTES


def split_utf16(text: str, limit: int = _CHUNK_BYTES) -> Iterator[str]:
    """Pieces of `text` of at most `limit` UTF-16 bytes, never splitting a character."""
    start = 0
    while start < len(text):
        end = min(len(text), start + limit // 2)
        excess = utf16_bytes(text[start:end]) - limit
        while excess > 0:
            # A character takes 2 or 4 bytes: dropping a quarter of the excess (rounded up)
            # at least halves it and leaves at most 3 bytes of the limit unused.
            end -= -(-excess // 4)
            excess = utf16_bytes(text[start:end]) - limit
        yield text[start:end]
        start = end


def build_entity(
    partition: str, row: str, columns: Mapping[str, Any], document: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The entity holding `document`, or None when it must spill to Blob."""
    # Refuse bad keys before anything (a spilled blob included) is written under them.
    check_key(partition)
    check_key(row)
    entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row, **columns}
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    for index, chunk in enumerate(split_utf16(text)):
        entity[f"{DOC_PREFIX}{index}"] = chunk
    # Azure measures UTF-16; Azurite measures the request body, where non-ASCII is escaped.
    limit = MAX_ENTITY_BYTES - ENTITY_HEADROOM_BYTES
    if entity_bytes(entity) > limit or wire_bytes(entity) > limit:
        return None
    check_entity(entity)
    return entity


def pointer_entity(
    partition: str, row: str, columns: Mapping[str, Any], blob_name: str
) -> dict[str, Any]:
    entity = {"PartitionKey": partition, "RowKey": row, **columns, DOC_BLOB: blob_name}
    check_entity(entity)
    return entity


def read_document(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The document stored inline; callers handle `DocBlob` pointers first."""
    parts: list[str] = []
    index = 0
    while f"{DOC_PREFIX}{index}" in entity:
        parts.append(entity[f"{DOC_PREFIX}{index}"])
        index += 1
    loaded: dict[str, Any] = json.loads("".join(parts))
    return loaded


def accessed_at(entity: Mapping[str, Any]) -> datetime | None:
    """The entity's `LastAccessedAt` as a plain aware datetime (the SDK returns a subclass)."""
    value = entity.get(ACCESSED_COLUMN)
    if not isinstance(value, datetime):
        return None
    return datetime.combine(value.date(), value.time(), value.tzinfo)


def accessed_columns(at: datetime | None) -> dict[str, Any]:
    """The columns carrying `at` over into a replaced entity (none when never accessed)."""
    return {} if at is None else {ACCESSED_COLUMN: at}


def with_accessed(document: Mapping[str, Any], at: datetime | None) -> dict[str, Any]:
    """`document` with its last access time from the column, ready to validate."""
    return {**document, ACCESSED_KEY: at}
