"""Stored rows that a read could not load.

A listing skips such a row rather than fail for every caller; the row's key and the reason are
kept here so that `/api/health` counts them and an operator can find and repair each one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from evalruns.domain.base import utcnow
from evalruns.storage.rest import LeanTable

log = logging.getLogger(__name__)

T = TypeVar("T")
REASON_CHARS = 2_000
# Every character Table Storage refuses in a key, replaced so any key can be recorded.
_KEY_UNSAFE = str.maketrans({c: "_" for c in "/\\#?\t\n\r"})


class Incidents:
    def __init__(self, table: LeanTable) -> None:
        self._table = table

    def record(self, kind: str, key: str, error: Exception) -> None:
        """Keep `key` as unreadable; never raises, so the listing that found it still answers."""
        reason = str(error)[:REASON_CHARS]
        log.error("unreadable %s %s skipped by a listing: %s", kind, key, reason)
        try:
            self._table.upsert_entity(
                {
                    "PartitionKey": kind,
                    "RowKey": key.translate(_KEY_UNSAFE)[:512],
                    "Key": key,
                    "Reason": reason,
                    "SeenAt": utcnow(),
                }
            )
        except Exception:
            log.warning("could not record the unreadable %s %s", kind, key, exc_info=True)

    def count(self) -> int:
        return sum(1 for _ in self._table.list_entities(select=["RowKey"]))

    def loader(
        self, kind: str, key_of: Callable[[Any], str], load: Callable[[Any], T]
    ) -> Callable[[Any], T | None]:
        """`load`, answering None (and recording the row) where the stored row is invalid."""

        def load_or_skip(row: Any) -> T | None:
            try:
                return load(row)
            except (ValidationError, ValueError, KeyError, TypeError) as error:
                self.record(kind, key_of(row), error)
                return None

        return load_or_skip
