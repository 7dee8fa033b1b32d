"""The base of every boundary model: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
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


def json_number(value: object) -> object:
    """A number as JSON writes it: pydantic would also take `true` or `"5"`, which the
    OpenAPI document (type number) forbids."""
    if isinstance(value, bool | str):
        raise ValueError("must be a number")
    return value


# Numbers in request bodies: exactly the JSON numbers the document allows. (Constraints of an
# optional number go before the validator, or the JSON schema does not show them.)
JsonInt = Annotated[int, BeforeValidator(json_number)]
JsonFloat = Annotated[float, BeforeValidator(json_number)]


def utcnow() -> datetime:
    return datetime.now(UTC)
