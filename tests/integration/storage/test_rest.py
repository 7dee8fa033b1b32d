"""`LeanTable` on a real Azurite speaks the same Table REST as the SDK: what one writes the other
reads back unchanged, and failures raise the SDK's own exceptions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EdmType, EntityProperty, UpdateMode

from evalruns.services import Services
from evalruns.storage.rest import LeanTable

VALUES: dict[str, Any] = {
    "Text": "Rating: 4 — naïve ‘quotes’ and 'apostrophes' & ?#%/ \n newline",
    "Empty": "",
    "Flag": True,
    "Small": -(2**31),
    "Large": 2**40,
    "Ratio": 0.1,
    "Whole": 3.0,
    "At": datetime(2025, 2, 3, 4, 5, 6, 789000, tzinfo=UTC),
}
KEYS = ["plain", "with 'quote'", "spaces and ünïcode", "run:1:mock:0", "100% sure & done+1"]


@pytest.fixture
def table(services: Services) -> LeanTable:
    return services.storage.table("Rest")


def entity(row_key: str, **values: Any) -> dict[str, Any]:
    return {"PartitionKey": "p-" + row_key, "RowKey": row_key, **VALUES, **values}


def plain(read: Any) -> dict[str, Any]:
    """An entity as read, with the SDK's Int64 wrapper taken off (LeanTable reads a plain int)."""
    return {k: v.value if isinstance(v, EntityProperty) else v for k, v in dict(read).items()}


@pytest.mark.parametrize("key", KEYS)
def test_what_lean_writes_the_sdk_reads_unchanged(table: LeanTable, key: str) -> None:
    table.create_entity(entity(key))

    read = table.sdk.get_entity("p-" + key, key)

    assert plain(read) == entity(key)


@pytest.mark.parametrize("key", KEYS)
def test_what_the_sdk_writes_lean_reads_unchanged(table: LeanTable, key: str) -> None:
    table.sdk.create_entity(entity(key, Large=EntityProperty(2**40, EdmType.INT64)))

    read = table.get_entity("p-" + key, key)

    assert dict(read) == entity(key)
    assert read.metadata["etag"] == table.sdk.get_entity("p-" + key, key).metadata["etag"]


def test_select_reads_only_the_named_columns(table: LeanTable) -> None:
    table.create_entity(entity("k"))

    read = table.get_entity("p-k", "k", select=["Flag", "Large"])

    assert dict(read) == {"Flag": True, "Large": 2**40}


def test_upsert_merges_or_replaces_as_asked(table: LeanTable) -> None:
    key = uuid.uuid4().hex
    table.upsert_entity({"PartitionKey": "p", "RowKey": key, "A": 1, "B": "b"})
    table.upsert_entity({"PartitionKey": "p", "RowKey": key, "A": 2})
    merged = dict(table.get_entity("p", key))
    table.upsert_entity({"PartitionKey": "p", "RowKey": key, "C": 3}, mode=UpdateMode.REPLACE)

    assert merged == {"PartitionKey": "p", "RowKey": key, "A": 2, "B": "b"}
    assert dict(table.get_entity("p", key)) == {"PartitionKey": "p", "RowKey": key, "C": 3}


def test_an_update_with_a_stale_etag_is_refused_and_changes_nothing(table: LeanTable) -> None:
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "N": 1})
    stale = table.get_entity("p", "r").metadata["etag"]
    fresh = table.update_entity(
        {"PartitionKey": "p", "RowKey": "r", "N": 2},
        mode=UpdateMode.REPLACE,
        etag=stale,
        match_condition=MatchConditions.IfNotModified,
    )

    with pytest.raises(ResourceModifiedError) as refused:
        table.update_entity(
            {"PartitionKey": "p", "RowKey": "r", "N": 3},
            mode=UpdateMode.REPLACE,
            etag=stale,
            match_condition=MatchConditions.IfNotModified,
        )

    assert refused.value.status_code == 412
    assert fresh["etag"] != stale
    assert table.get_entity("p", "r")["N"] == 2


def test_failures_raise_the_sdks_exceptions_with_the_services_message(table: LeanTable) -> None:
    table.create_entity({"PartitionKey": "p", "RowKey": "r"})

    with pytest.raises(ResourceNotFoundError) as missing:
        table.get_entity("p", "nothing")
    with pytest.raises(ResourceExistsError):
        table.create_entity({"PartitionKey": "p", "RowKey": "r"})
    with pytest.raises(ResourceNotFoundError):
        table.update_entity({"PartitionKey": "p", "RowKey": "nothing", "N": 1})

    assert "404" in str(missing.value)


def test_a_value_table_storage_cannot_hold_is_refused_before_sending(table: LeanTable) -> None:
    with pytest.raises(TypeError, match="Blob"):
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "Blob": object()})


def test_a_connection_the_server_closed_is_opened_anew(table: LeanTable) -> None:
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "N": 1})
    table.get_entity("p", "r")
    table._connection().sock.close()  # as a server dropping a kept-alive connection would

    assert table.get_entity("p", "r")["N"] == 1


def test_everything_else_is_the_sdks(table: LeanTable) -> None:
    for number in range(3):
        table.create_entity({"PartitionKey": "q", "RowKey": str(number), "N": number})

    rows = table.query_entities("PartitionKey eq 'q'")

    assert sorted(row["N"] for row in rows) == [0, 1, 2]
