"""Azure Table rules that Azurite does not enforce but Azure does, enforced here.

Strings count as UTF-16; a property holds at most 64 KiB, an entity 1 MiB, a key 1 KiB, and
keys may not contain `/ \\ # ?` or control characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError

from evalruns.errors import InvalidInput

MAX_PROPERTY_BYTES = 64 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
MAX_KEY_BYTES = 1024
MAX_CUSTOM_PROPERTIES = 252
MAX_BATCH_OPERATIONS = 100
MAX_BATCH_BYTES = 4 * 1024 * 1024
# Room left in a transaction for its multipart framing (well under 1 KiB per operation).
BATCH_HEADROOM_BYTES = 256 * 1024
# Room left for system properties and the per-entity overhead Azure counts.
ENTITY_HEADROOM_BYTES = 8 * 1024

_FORBIDDEN_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class LimitExceeded(InvalidInput):
    """A write Azure would refuse; raised before the request is sent.

    It is invalid input, not a server fault: what is too large came from the caller (a
    definition's text, say), so the API answers 400 with the message instead of a 500.
    """


def utf16_bytes(value: str) -> int:
    return len(value.encode("utf-16-le"))


def is_valid_key(value: str) -> bool:
    return bool(value) and not _FORBIDDEN_KEY.search(value) and utf16_bytes(value) <= MAX_KEY_BYTES


def check_key(value: str) -> str:
    if not is_valid_key(value):
        raise LimitExceeded(f"{value[:80]!r} is not a valid table key")
    return value


def property_bytes(value: Any) -> int:
    """The size Azure counts for a property value."""
    if isinstance(value, str):
        return 4 + utf16_bytes(value)
    if isinstance(value, bytes):
        return 4 + len(value)
    if isinstance(value, bool):
        return 1
    if isinstance(value, (int, float, datetime)):
        return 8
    return 16


def entity_bytes(entity: Mapping[str, Any]) -> int:
    """Azure's entity size: 4 + keys in UTF-16 + per property 8 + name + value."""
    size = 4 + utf16_bytes(entity["PartitionKey"]) + utf16_bytes(entity["RowKey"])
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        size += 8 + utf16_bytes(name) + property_bytes(value)
    return size


def wire_bytes(entity: Mapping[str, Any]) -> int:
    """The request body as the SDK sends it (JSON, non-ASCII escaped as \\uXXXX).

    Transactions are limited to 4 MiB of it, and Azurite refuses an entity whose body is over
    1 MiB, which non-ASCII text reaches long before Azure's UTF-16 measure does.
    """
    return len(json.dumps(entity, default=str))


def check_entity(entity: Mapping[str, Any]) -> None:
    check_key(entity["PartitionKey"])
    check_key(entity["RowKey"])
    custom = [name for name in entity if name not in ("PartitionKey", "RowKey")]
    if len(custom) > MAX_CUSTOM_PROPERTIES:
        raise LimitExceeded(f"{len(custom)} properties; Azure allows {MAX_CUSTOM_PROPERTIES}")
    for name in custom:
        if property_bytes(entity[name]) - 4 > MAX_PROPERTY_BYTES:
            raise LimitExceeded(f"property {name} is over {MAX_PROPERTY_BYTES} bytes")
    if entity_bytes(entity) > MAX_ENTITY_BYTES:
        raise LimitExceeded(f"entity is over {MAX_ENTITY_BYTES} bytes")


def is_etag_mismatch(error: HttpResponseError) -> bool:
    """Whether a write conditioned on an ETag failed because the entity changed meanwhile.

    A single request answers 412; a failed transaction may carry another status, with
    `UpdateConditionNotSatisfied` in its message.
    """
    return error.status_code == 412 or "UpdateConditionNotSatisfied" in str(error)


def transactions(
    operations: Iterable[Any], weight: Callable[[Any], int] = lambda _: 0
) -> Iterator[list[Any]]:
    """Groups of at most 100 operations, the most one Table transaction may hold, and, when
    `weight` gives each one's request bytes, of at most 4 MiB (less framing headroom)."""
    group: list[Any] = []
    size = 0
    for operation in operations:
        operation_size = weight(operation)
        full = len(group) == MAX_BATCH_OPERATIONS
        if group and (full or size + operation_size > MAX_BATCH_BYTES - BATCH_HEADROOM_BYTES):
            yield group
            group, size = [], 0
        group.append(operation)
        size += operation_size
    if group:
        yield group
