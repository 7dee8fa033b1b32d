"""Decoding what Durable hands an orchestrator.

The Python client JSON-encodes inputs and event payloads that the extension encodes again, so
an orchestrator may receive a JSON string where a dict was sent (DESIGN.md rule 6).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def decode(value: Any, model: type[M]) -> M:
    while isinstance(value, str):
        value = json.loads(value)
    return model.model_validate(value)


def encode(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)
