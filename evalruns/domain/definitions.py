"""Definitions: a scenario template with `[Dimension]` placeholders and scored levels."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, computed_field, field_validator, model_validator

from evalruns.domain.base import ApiModel, JsonInt

MIN_SCORE = 1
MAX_SCORE = 5
MAX_SCENARIOS = 100_000
PLACEHOLDER = re.compile(r"\[([^\[\]\r\n]+)\]")

NonEmpty = Annotated[str, Field(min_length=1, max_length=2000)]


class Level(ApiModel):
    score: JsonInt = Field(ge=MIN_SCORE, le=MAX_SCORE)
    label: str = Field(min_length=1, max_length=200)
    options: list[NonEmpty] = Field(min_length=1, max_length=50)

    @field_validator("options")
    @classmethod
    def _options_have_text(cls, options: list[str]) -> list[str]:
        if any(not option.strip() for option in options):
            raise ValueError("options must not be blank")
        return options


class Dimension(ApiModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\[\]\r\n]+$")
    levels: list[Level] = Field(min_length=1, max_length=MAX_SCORE)

    @model_validator(mode="before")
    @classmethod
    def _expand_values(cls, data: Any) -> Any:
        """`values: [a, b]` is shorthand for levels scored 1, 2, ... with one option each."""
        if isinstance(data, dict) and "values" in data:
            if "levels" in data:
                raise ValueError("give either 'levels' or 'values', not both")
            values = data["values"]
            if not isinstance(values, list):
                raise ValueError("'values' must be a list of strings")
            if len(values) > MAX_SCORE:
                raise ValueError(f"'values' may hold at most {MAX_SCORE} entries (scores 1-5)")
            levels = [
                {"score": index + 1, "label": value, "options": [value]}
                for index, value in enumerate(values)
            ]
            data = {key: value for key, value in data.items() if key != "values"}
            data["levels"] = levels
        return data

    @field_validator("levels")
    @classmethod
    def _scores_unique(cls, levels: list[Level]) -> list[Level]:
        scores = [level.score for level in levels]
        if len(set(scores)) != len(scores):
            raise ValueError("each level of a dimension needs a different score")
        return levels


class DefinitionInput(ApiModel):
    """The body of `POST /api/definitions`."""

    name: str = Field(min_length=1, max_length=200)
    preamble: str = Field(default="", max_length=20_000)
    template: str = Field(max_length=20_000)
    dimensions: list[Dimension] = Field(default_factory=list, max_length=20)

    @field_validator("template")
    @classmethod
    def _template_not_empty(cls, template: str) -> str:
        if not template.strip():
            raise ValueError("the template is empty: write the scenario text")
        return template

    @field_validator("dimensions")
    @classmethod
    def _names_unique(cls, dimensions: list[Dimension]) -> list[Dimension]:
        seen: set[str] = set()
        for dimension in dimensions:
            key = dimension.name.casefold()
            if key in seen:
                raise ValueError(f"dimension '{dimension.name}' is defined twice")
            seen.add(key)
        return dimensions

    @model_validator(mode="after")
    def _placeholders_defined(self) -> DefinitionInput:
        known = {dimension.name.casefold() for dimension in self.dimensions}
        missing = sorted(
            {name for name in PLACEHOLDER.findall(self.template) if name.casefold() not in known}
        )
        if missing:
            listed = ", ".join(f"[{name}]" for name in missing)
            raise ValueError(
                f"the template uses {listed} but no dimension has that name "
                "(names match case-insensitively)"
            )
        if self.scenario_count > MAX_SCENARIOS:
            raise ValueError(
                f"the dimensions expand to {self.scenario_count:,} scenarios; the limit is "
                f"{MAX_SCENARIOS:,}: remove levels or split the definition"
            )
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def scenario_count(self) -> int:
        """The size of the cartesian product of levels (1 without dimensions)."""
        return math.prod(len(dimension.levels) for dimension in self.dimensions)


class Definition(DefinitionInput):
    id: str
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None = None
