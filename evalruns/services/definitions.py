"""Definitions and their scenarios."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from evalruns.domain.definitions import Definition, DefinitionInput
from evalruns.domain.expansion import Scenario, expand
from evalruns.errors import FieldError, InvalidInput
from evalruns.services.container import Services
from evalruns.storage.paging import Page, decode_cursor, encode_cursor


@dataclass(frozen=True)
class ScenarioPage:
    items: list[Scenario]
    total: int
    next_cursor: str | None


def create_definition(services: Services, given: DefinitionInput) -> Definition:
    return services.definitions.create(given)


def get_definition(services: Services, definition_id: str) -> Definition:
    return services.definitions.get(definition_id)


def list_definitions(services: Services, limit: int, cursor: str | None) -> Page[Definition]:
    return services.definitions.list(limit, cursor)


def list_scenarios(
    services: Services, definition_id: str, limit: int, cursor: str | None
) -> ScenarioPage:
    """A page of the expansion, computed from positions alone (nothing stored)."""
    definition = services.definitions.get(definition_id)
    total = definition.scenario_count
    state = decode_cursor(cursor) or {}
    start = state.get("offset", 0)
    # An offset past the end is no page of this definition (a hand-made cursor, or another
    # definition's); refuse it rather than count a negative page.
    if not isinstance(start, int) or not 0 <= start <= total:
        raise InvalidInput(
            "the cursor is not valid: pass a nextCursor unchanged",
            [FieldError(("query", "cursor"), "invalid cursor")],
        )
    end = min(total, start + limit)
    items = list(islice(expand(definition, start), end - start))
    return ScenarioPage(items, total, encode_cursor({"offset": end}) if end < total else None)
