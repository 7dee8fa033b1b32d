"""The base of every boundary model: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        str_strip_whitespace=False,
    )

    def to_json_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The wire form: camelCase keys, ISO timestamps."""
        return self.model_dump(mode="json", by_alias=True, **kwargs)


def utcnow() -> datetime:
    return datetime.now(UTC)
