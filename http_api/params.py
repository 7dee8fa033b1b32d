"""Query parameters: each one's JSON schema (in the OpenAPI document) and how a request's
value is read, in one object, so the API accepts exactly what the document allows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import azure.functions as func

from evalruns.domain.statuses import RunStatus, TranscriptStatus
from evalruns.errors import FieldError, InvalidInput
from evalruns.storage.paging import DEFAULT_LIMIT, MAX_LIMIT, check_limit


@dataclass(frozen=True)
class Param:
    """A query parameter: its JSON schema in the document, and how a request's value is read.

    An absent or empty parameter reads as None (the Functions host drops empty values before
    the function sees them); any other value must match the schema.
    """

    name: str
    schema: Mapping[str, Any]
    description: str

    def read(self, req: func.HttpRequest) -> Any:
        raw = req.params.get(self.name)
        if not raw:
            return None
        kind = self.schema.get("type")
        if kind == "string" and "enum" not in self.schema:
            return raw
        if kind == "boolean" and raw in ("true", "false"):
            return raw == "true"
        if kind == "integer" and raw.isascii() and raw.isdigit() and len(raw) <= 18:
            value = int(raw)
            if value >= self.schema.get("minimum", 0):
                return value
        if raw in self.schema.get("enum", ()):
            return raw
        raise InvalidInput(
            f"query parameter {self.name} must be {self.expected}, not {raw!r}",
            [FieldError(("query", self.name), f"must be {self.expected}")],
        )

    @property
    def expected(self) -> str:
        if "enum" in self.schema:
            return "one of " + ", ".join(self.schema["enum"])
        if self.schema.get("type") == "boolean":
            return "true or false"
        return f"a whole number of at least {self.schema.get('minimum', 0)}"


def enum_param(name: str, values: type[Enum], description: str) -> Param:
    return Param(name, {"type": "string", "enum": [str(v.value) for v in values]}, description)


LIMIT = Param(
    "limit",
    {"type": "integer", "minimum": 1},
    f"page size (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}: a larger one is capped)",
)
CURSOR = Param(
    "cursor",
    {"type": "string"},
    "`nextCursor` of the previous page, unchanged (any other value is a 400)",
)
PAGE = (LIMIT, CURSOR)
RUN_STATUS = enum_param("status", RunStatus, "only runs with this status")
DEFINITION_ID = Param("definitionId", {"type": "string"}, "only runs of this definition")
MODEL_ID = Param("modelId", {"type": "string"}, "only transcripts of this model")
TRANSCRIPT_STATUS = enum_param("status", TranscriptStatus, "only transcripts with this status")
AVAILABLE_ONLY = Param(
    "availableOnly", {"type": "boolean"}, "only models whose provider has credentials"
)
REFRESH = Param("refresh", {"type": "boolean"}, "check again rather than answer from the cache")


def page(req: func.HttpRequest) -> tuple[int, str | None]:
    """A listing's page size and cursor."""
    return check_limit(LIMIT.read(req)), CURSOR.read(req)
