"""Reading HTTP requests into pydantic models and shaping JSON responses."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import azure.functions as func

from evalruns.errors import FieldError, InvalidInput
from http_api.problems import validation_problem

if TYPE_CHECKING:
    from pydantic import BaseModel

    from evalruns.domain.base import ApiModel
    from evalruns.storage.paging import Page

M = TypeVar("M", bound="BaseModel")
E = TypeVar("E", bound=Enum)


def parse_body(req: func.HttpRequest, model: type[M]) -> M:
    from pydantic import ValidationError  # loaded with `model` already

    try:
        data = json.loads(req.get_body() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"the body is not valid JSON: {exc}", [FieldError(("body",), "invalid JSON")]
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(
            "the body must be a JSON object", [FieldError(("body",), "expected an object")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "body") from exc


def json_response(
    body: Any, status: HTTPStatus = HTTPStatus.OK, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=int(status),
        mimetype="application/json",
        charset="utf-8",
        headers=headers,
    )


def page_response(
    page: Page[Any], transform: Callable[[Any], ApiModel] | None = None
) -> func.HttpResponse:
    """`{"items", "nextCursor"}`, items optionally transformed into their public model."""
    items = [(transform(item) if transform else item).to_json_dict() for item in page.items]
    return json_response({"items": items, "nextCursor": page.next_cursor})
