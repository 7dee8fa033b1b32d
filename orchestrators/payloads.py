"""Decoding what Durable hands an orchestrator, and its clock.

The Python client JSON-encodes inputs and event payloads that the extension encodes again, so
an orchestrator may receive a JSON string where a dict was sent (DESIGN.md rule 6).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


def decode(value: Any, model: type[M]) -> M:
    while isinstance(value, str):
        value = json.loads(value)
    return model.model_validate(value)


def encode(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def utc_now(context: Any) -> datetime:
    """The orchestration's replay-safe current time, always timezone-aware."""
    now: datetime = context.current_utc_datetime
    return now if now.tzinfo else now.replace(tzinfo=UTC)
