"""Each run's ledger and, for a re-run of failed jobs, the jobs it selected: in the `Jobs`
table, one partition per run.

The ledger is one entity, replaced with an ETag condition, so of two lanes claiming at once
one wins and the other reads again. The selection is written once by the plan.
"""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from evalruns.domain.ledger import Ledger
from evalruns.errors import Conflict
from evalruns.storage.documents import build_entity, read_document
from evalruns.storage.limits import (
    LimitExceeded,
    is_etag_mismatch,
    is_valid_key,
    transactions,
    wire_bytes,
)
from evalruns.storage.rest import LeanTable

LEDGER_ROW = "ledger"
SELECTION_PREFIX = "selection."
# Ranges of ordinals per selection row: comfortably inside one entity's 1 MiB.
RANGES_PER_ROW = 10_000


def _entity(run_id: str, row: str, document: dict[str, Any]) -> dict[str, Any]:
    entity = build_entity(run_id, row, {}, document)
    if entity is None:
        raise LimitExceeded(f"the {row} of run {run_id} is too large for one table entity")
    return entity


class LedgerRepository:
    def __init__(self, table: LeanTable) -> None:
        self._table = table

    def create(self, run_id: str, ledger: Ledger) -> None:
        """Store a new run's ledger; one already there (a plan run again) is kept."""
        with contextlib.suppress(ResourceExistsError):
            self._table.create_entity(_entity(run_id, LEDGER_ROW, ledger.to_json_dict()))

    def get(self, run_id: str) -> tuple[Ledger, str] | None:
        """The ledger and its ETag; None before the run was planned (or for no run)."""
        if not is_valid_key(run_id):
            return None
        try:
            entity = self._table.get_entity(run_id, LEDGER_ROW)
        except ResourceNotFoundError:
            return None
        return Ledger.model_validate(read_document(entity)), str(entity.metadata["etag"])

    def replace(self, run_id: str, ledger: Ledger, etag: str) -> None:
        """Store `ledger` if nobody changed it since `etag` was read; Conflict otherwise."""
        try:
            self._table.update_entity(
                _entity(run_id, LEDGER_ROW, ledger.to_json_dict()),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as exc:
            if is_etag_mismatch(exc):
                raise Conflict(f"the ledger of run {run_id} changed meanwhile") from exc
            raise

    def put_selection(self, run_id: str, selection: dict[str, list[int]]) -> None:
        """The jobs a re-run executes, per provider (written once, before any lane starts),
        as ranges of consecutive ordinals in rows of at most RANGES_PER_ROW."""
        rows = []
        for provider, ordinals in selection.items():
            ranges = consecutive_runs(ordinals)
            for index, start in enumerate(range(0, max(1, len(ranges)), RANGES_PER_ROW)):
                chunk = ranges[start : start + RANGES_PER_ROW]
                row = f"{SELECTION_PREFIX}{provider}.{index:04d}"
                rows.append(_entity(run_id, row, {"ranges": chunk}))
        for group in transactions(rows, weight=wire_bytes):
            self._table.submit_transaction(
                [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in group]
            )

    def selection(self, run_id: str, providers: list[str]) -> dict[str, list[int]]:
        """The jobs a re-run selected, per provider, in order."""
        selected: dict[str, list[int]] = {}
        for provider in providers:
            ordinals: list[int] = []
            for index in range(10_000):
                try:
                    row = f"{SELECTION_PREFIX}{provider}.{index:04d}"
                    entity = self._table.get_entity(run_id, row)
                except ResourceNotFoundError:
                    break
                for first, last in read_document(entity)["ranges"]:
                    ordinals.extend(range(first, last + 1))
            selected[provider] = ordinals
        return selected


def consecutive_runs(ordinals: list[int]) -> list[tuple[int, int]]:
    """The ordinals (in order) as inclusive ranges of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for ordinal in ordinals:
        if runs and runs[-1][1] == ordinal - 1:
            runs[-1] = (runs[-1][0], ordinal)
        else:
            runs.append((ordinal, ordinal))
    return runs
