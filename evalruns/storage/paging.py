"""Opaque cursors and pages for every list."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, TypeVar

from evalruns.errors import FieldError, InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(state: dict[str, Any] | None) -> str | None:
    if not state:
        return None
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        state = None
    if not isinstance(state, dict):
        raise InvalidInput(
            "the cursor is not valid: pass the nextCursor of a previous page unchanged",
            [FieldError(("query", "cursor"), "invalid cursor")],
        )
    return state


def after_row(cursor: str | None) -> str | None:
    """The row key a cursor resumes after."""
    state = decode_cursor(cursor)
    if state is None:
        return None
    row = state.get("after")
    if not isinstance(row, str):
        raise InvalidInput("the cursor is not valid", [FieldError(("query", "cursor"), "invalid")])
    return row


def keyset_page(
    entities: Iterable[dict[str, Any]],
    limit: int,
    convert: Callable[[dict[str, Any]], T | None],
) -> Page[T]:
    """The first `limit` entities of a query ordered by row key, and the cursor after them.

    Cursors are keys, not Table continuation tokens, so a filtered query still fills its page
    and results stay stable while new rows are written. An entity `convert` answers None for
    (one it could not load) is left out of the page but still moves the cursor on.
    """
    fetched = list(islice(entities, limit + 1))
    items = fetched[:limit]
    more = len(fetched) > limit
    cursor = encode_cursor({"after": items[-1]["RowKey"]}) if more and items else None
    converted = (convert(entity) for entity in items)
    return Page([item for item in converted if item is not None], cursor)


def check_limit(limit: int | None) -> int:
    """The page size: 20 by default, capped at 100."""
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise InvalidInput(
            "limit must be a positive number (at most 100 items come back per page)",
            [FieldError(("query", "limit"), "must be at least 1")],
        )
    return min(limit, MAX_LIMIT)
