"""Expansion of a definition into scenarios: the cartesian product of its levels.

Every scenario is computed from its position alone (mixed-radix), so paging, sampling and
re-expansion never need the whole list in memory and always give the same ids and prompts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

from pydantic import Field

from evalruns.domain.base import ApiModel
from evalruns.domain.definitions import PLACEHOLDER, DefinitionInput, Dimension, Level

SCENARIO_ID_WIDTH = 6


class Scenario(ApiModel):
    id: str
    number: int = Field(description="1-based position in expansion order")
    name: str
    preamble: str
    prompt: str
    dimensions: dict[str, int]


def scenario_id(number: int) -> str:
    return f"s{number:0{SCENARIO_ID_WIDTH}d}"


def scenario_at(definition: DefinitionInput, index: int) -> Scenario:
    """The scenario at 0-based `index`; the last dimension varies fastest."""
    total = definition.scenario_count
    if not 0 <= index < total:
        raise IndexError(f"scenario index {index} outside 0..{total - 1}")
    chosen: list[tuple[Dimension, Level]] = []
    remainder = index
    for dimension in reversed(definition.dimensions):
        remainder, position = divmod(remainder, len(dimension.levels))
        chosen.append((dimension, dimension.levels[position]))
    chosen.reverse()
    scores = {dimension.name: level.score for dimension, level in chosen}
    return Scenario(
        id=scenario_id(index + 1),
        number=index + 1,
        name=_scenario_name(chosen),
        preamble=definition.preamble,
        prompt=_fill(definition.template, chosen),
        dimensions=scores,
    )


def expand(definition: DefinitionInput, start: int = 0) -> Iterator[Scenario]:
    for index in range(start, definition.scenario_count):
        yield scenario_at(definition, index)


def _scenario_name(chosen: Sequence[tuple[Dimension, Level]]) -> str:
    if not chosen:
        return "Base scenario"
    return ", ".join(f"{dimension.name}={level.label}" for dimension, level in chosen)


def _fill(template: str, chosen: Sequence[tuple[Dimension, Level]]) -> str:
    signature = "|".join(f"{dimension.name}={level.score}" for dimension, level in chosen)
    wording = {
        dimension.name.casefold(): _pick_option(template, signature, dimension, level)
        for dimension, level in chosen
    }

    def replace(match: re.Match[str]) -> str:
        return wording.get(match.group(1).casefold(), match.group(0))

    return PLACEHOLDER.sub(replace, template)


def _pick_option(template: str, signature: str, dimension: Dimension, level: Level) -> str:
    """A wording option chosen by hash of the definition and scenario, never at random."""
    if len(level.options) == 1:
        return level.options[0]
    digest = hashlib.sha256(f"{template}\x1f{signature}\x1f{dimension.name}".encode()).digest()
    return level.options[int.from_bytes(digest[:8], "big") % len(level.options)]


def max_prompt_chars(definition: DefinitionInput) -> int:
    """No scenario's preamble and prompt together are longer than this: every placeholder
    filled with its dimension's longest wording (a bound for budgets, with no expansion)."""
    longest = {
        dimension.name.casefold(): max(
            (len(option) for level in dimension.levels for option in level.options), default=0
        )
        for dimension in definition.dimensions
    }
    filled = PLACEHOLDER.sub(
        lambda match: "x" * longest.get(match.group(1).casefold(), len(match.group(0))),
        definition.template,
    )
    return len(definition.preamble) + len(filled)
