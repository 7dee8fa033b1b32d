"""Azure Table rules Azurite does not enforce: keys, property/entity sizes in UTF-16, counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.data.tables import TableClient

from evalruns.domain.definitions import Definition
from evalruns.domain.ledger import Ledger
from evalruns.domain.runs import Progress, RunConfig, RunModel, RunStatus
from evalruns.domain.transcripts import Transcript, TranscriptStatus, Turn
from evalruns.errors import NotFound
from evalruns.services import Services
from evalruns.storage import documents
from evalruns.storage.blobs import DocumentBlobs
from evalruns.storage.definitions import DefinitionRepository
from evalruns.storage.documents import build_entity, read_document, split_utf16
from evalruns.storage.ledgers import LedgerRepository
from evalruns.storage.limits import (
    BATCH_HEADROOM_BYTES,
    MAX_BATCH_BYTES,
    MAX_CUSTOM_PROPERTIES,
    MAX_PROPERTY_BYTES,
    LimitExceeded,
    check_entity,
    is_valid_key,
    transactions,
    utf16_bytes,
    wire_bytes,
)
from evalruns.storage.runs import RunRepository, StoredRun
from evalruns.storage.timeline import Timeline
from evalruns.storage.transcripts import TranscriptRepository

# ---------------------------------------------------------------- factories

NOW = datetime(2025, 5, 1, tzinfo=UTC)
# Forbidden characters anywhere in a key, and keys over 1 KiB of UTF-16.
BAD_IDS = ["a/b", "a\\b", "a#b", "a?b", "a\x00b", "a\nb", "a\tb", "a\x7fb", "a\x9fb", "€" * 513]


def make_model() -> RunModel:
    return RunModel(
        id="mock-small",
        provider="mock",
        version="mock-small-20250601",
        cost_input_per_million=0.5,
        cost_output_per_million=1.5,
    )


def make_run(run_id: str) -> StoredRun:
    definition = Definition(id="def", name="d", template="plain", created_at=NOW, updated_at=NOW)
    return StoredRun(
        id=run_id,
        name="r",
        definition_id="def",
        status=RunStatus.PENDING,
        config=RunConfig(
            models=[make_model()],
            sample_percentage=100,
            sample_seed=1,
            samples_per_scenario=1,
            temperature=0.0,
            max_tokens=16,
            scenario_count=1,
        ),
        progress=Progress(),
        created_at=NOW,
        updated_at=NOW,
        definition=definition,
    )


def make_transcript(run_id: str, response: str = "Rating: 3") -> Transcript:
    return Transcript(
        id="mock-small!s000001!001",
        run_id=run_id,
        scenario_id="s000001",
        scenario_number=1,
        scenario_name="Base scenario",
        dimensions={},
        model_id="mock-small",
        model_version="mock-small-20250601",
        provider="mock",
        sample=1,
        status=TranscriptStatus.SUCCEEDED,
        decision_code="3",
        turns=[Turn(role="user", content="plain"), Turn(role="assistant", content=response)],
        created_at=NOW,
        updated_at=NOW,
    )


class Tripwire:
    """A real table client that records every request it is asked to make."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._table, name)
        if not callable(attribute):
            return attribute

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return record


def entity(**properties: Any) -> dict[str, Any]:
    return {"PartitionKey": "p", "RowKey": "r", **properties}


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize("bad", [*BAD_IDS, ""])
def test_forbidden_keys_are_invalid(bad: str) -> None:
    assert not is_valid_key(bad)


@pytest.mark.parametrize(
    "good", ["abc", "id!1", "ts!0001!x", "mock-small!s000001!001", "ünï €😀", "€" * 512]
)
def test_ordinary_keys_are_valid(good: str) -> None:
    assert is_valid_key(good)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_reads_with_forbidden_ids_are_not_found_without_a_request(
    services: Services, bad: str
) -> None:
    runs_table = Tripwire(services.storage.table("Runs"))
    definitions_table = Tripwire(services.storage.table("Definitions"))
    jobs_table = Tripwire(services.storage.table("Jobs"))
    transcripts_table = Tripwire(services.storage.table("Transcripts"))
    spill = DocumentBlobs(services.storage.container(services.settings.spill_container))
    runs = RunRepository(Timeline(runs_table, "run", services.incidents))  # type: ignore[arg-type]
    definitions = DefinitionRepository(
        Timeline(definitions_table, "definition", services.incidents)  # type: ignore[arg-type]
    )
    ledgers = LedgerRepository(jobs_table)  # type: ignore[arg-type]
    transcripts = TranscriptRepository(transcripts_table, spill, services.incidents)  # type: ignore[arg-type]
    valid_transcript_id = "mock-small!s000001!001"

    reads: list[Callable[[], object]] = [
        lambda: runs.get(bad),
        lambda: runs.update(bad, lambda run: run),
        lambda: definitions.get(bad),
        lambda: transcripts.get(bad, valid_transcript_id),
        lambda: transcripts.get("run1", bad),
    ]
    for read in reads:
        with pytest.raises(NotFound):
            read()
    assert transcripts.get_if_exists(bad, valid_transcript_id) is None
    assert ledgers.get(bad) is None
    assert transcripts.get_if_exists("run1", bad) is None

    calls = runs_table.calls + definitions_table.calls + jobs_table.calls + transcripts_table.calls
    assert calls == []


@pytest.mark.parametrize("bad", ["a/b", "a#b", "a?b", "a\\b", "a\x01b"])
def test_reads_with_forbidden_ids_through_services_are_not_found(
    services: Services, bad: str
) -> None:
    for read in (
        lambda: services.runs.get(bad),
        lambda: services.definitions.get(bad),
        lambda: services.transcripts.get(bad, "x"),
    ):
        with pytest.raises(NotFound):
            read()


@pytest.mark.parametrize("bad", ["run/1", "run#1", "run?1", "run\\1", "run\x02"])
def test_writes_with_forbidden_ids_are_refused_before_storage(services: Services, bad: str) -> None:
    spill_container = services.storage.container(services.settings.spill_container)

    with pytest.raises(LimitExceeded):
        services.runs.create(make_run(bad))
    with pytest.raises(LimitExceeded):
        services.ledgers.create(bad, Ledger())
    with pytest.raises(LimitExceeded):
        services.transcripts.put(make_transcript(bad))
    # Even a transcript big enough to spill to Blob is refused before anything is written.
    with pytest.raises(LimitExceeded):
        services.transcripts.put(make_transcript(bad, response="x" * 2_000_000))

    for name in ("Runs", "Jobs", "Transcripts"):
        assert list(services.storage.table(name).list_entities()) == []
    assert list(spill_container.list_blobs()) == []


# ---------------------------------------------------------------- property and entity sizes


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ("a" * 32_768, True),  # ASCII still takes 2 bytes per character in UTF-16
        ("a" * 32_769, False),
        ("€" * 32_768, True),  # one UTF-16 code unit: 65,536 bytes
        ("€" * 32_769, False),
        ("€" * 33_000, False),  # 66,000 bytes
        ("😀" * 16_384, True),  # astral: two code units, 4 bytes each
        ("😀" * 16_385, False),  # only 16,385 characters, but 65,540 bytes
        ("😀" * 16_383 + "€€", True),
        ("😀" * 16_383 + "€€€", False),
        (b"\x00" * MAX_PROPERTY_BYTES, True),
        (b"\x00" * (MAX_PROPERTY_BYTES + 1), False),
    ],
    ids=lambda value: (
        f"{type(value).__name__}{len(value)}" if isinstance(value, str | bytes) else str(value)
    ),
)
def test_property_limit_counts_utf16_bytes(value: str | bytes, fits: bool) -> None:
    if fits:
        check_entity(entity(Text=value))
    else:
        with pytest.raises(LimitExceeded, match="property Text"):
            check_entity(entity(Text=value))


def test_entity_limit_is_one_mebibyte() -> None:
    full = "a" * (MAX_PROPERTY_BYTES // 2)
    check_entity(entity(**{f"P{n:02d}": full for n in range(15)}))
    with pytest.raises(LimitExceeded, match="entity is over"):
        check_entity(entity(**{f"P{n:02d}": full for n in range(16)}))
    # Astral text reaches the limit with half the characters.
    emoji = "😀" * (MAX_PROPERTY_BYTES // 4)
    with pytest.raises(LimitExceeded, match="entity is over"):
        check_entity(entity(**{f"P{n:02d}": emoji for n in range(16)}))


def test_property_count_limit() -> None:
    check_entity(entity(**{f"P{n}": n for n in range(MAX_CUSTOM_PROPERTIES)}))
    with pytest.raises(LimitExceeded, match="253 properties"):
        check_entity(entity(**{f"P{n}": n for n in range(MAX_CUSTOM_PROPERTIES + 1)}))


@pytest.mark.parametrize(
    "properties",
    [
        {f"P{n:02d}": "a" * (MAX_PROPERTY_BYTES // 2) for n in range(15)},
        {"Text": "€" * (MAX_PROPERTY_BYTES // 2)},
        {"Text": "😀" * (MAX_PROPERTY_BYTES // 4)},
        {f"P{n}": n for n in range(MAX_CUSTOM_PROPERTIES)},
    ],
    ids=["15-full-ascii-properties", "full-euro-property", "full-emoji-property", "252-properties"],
)
def test_entities_at_the_limits_are_storable(
    services: Services, properties: dict[str, Any]
) -> None:
    table = services.storage.table("Transcripts")
    at_limit = entity(**properties)
    check_entity(at_limit)

    table.upsert_entity(at_limit)

    stored = table.get_entity("p", "r")
    assert {name: stored[name] for name in properties} == properties


def test_wire_bytes_counts_escaped_non_ascii() -> None:
    assert wire_bytes(entity(Text="abc")) == len(
        '{"PartitionKey": "p", "RowKey": "r", "Text": "abc"}'
    )
    assert wire_bytes(entity(Text="€")) - wire_bytes(entity(Text="")) == len("\\u20ac")
    assert wire_bytes(entity(Text="😀")) - wire_bytes(entity(Text="")) == len("\\ud83d\\ude00")


@pytest.mark.parametrize(
    ("text", "inline"),
    [
        ("a" * 400_000, True),  # 800 KB of UTF-16, 400 KB on the wire
        ("€" * 150_000, True),  # 300 KB of UTF-16, 900 KB on the wire
        ("€" * 200_000, False),  # 400 KB of UTF-16 but 1.2 MB on the wire
        ("a" * 600_000, False),  # 1.2 MB of UTF-16
    ],
    ids=["ascii-400k", "euro-150k", "euro-200k", "ascii-600k"],
)
def test_build_entity_spills_by_either_measure(text: str, inline: bool) -> None:
    built = build_entity("p", "r", {"Status": "SUCCEEDED"}, {"text": text})

    assert (built is not None) == inline
    if built is not None:
        check_entity(built)
        assert read_document(built) == {"text": text}


def test_transactions_group_by_count_and_by_bytes() -> None:
    assert [len(group) for group in transactions(range(250))] == [100, 100, 50]
    assert [len(group) for group in transactions(range(100))] == [100]
    assert list(transactions([])) == []

    budget = MAX_BATCH_BYTES - BATCH_HEADROOM_BYTES
    groups = list(transactions(range(10), weight=lambda _: budget // 3))
    assert [len(group) for group in groups] == [3, 3, 3, 1]
    assert [n for group in groups for n in group] == list(range(10))


@pytest.mark.parametrize("bad", ["a/b", "a#b", "a?b", "a\\b", "a\x1fb", "€" * 513])
def test_check_entity_refuses_bad_keys(bad: str) -> None:
    with pytest.raises(LimitExceeded, match="not a valid table key"):
        check_entity({"PartitionKey": bad, "RowKey": "r"})
    with pytest.raises(LimitExceeded, match="not a valid table key"):
        check_entity({"PartitionKey": "p", "RowKey": bad})


# ---------------------------------------------------------------- splitting


@pytest.mark.parametrize(
    "text",
    [
        "😀" * 40_000,
        "a😀" * 30_000,
        "€" * 70_000,
        "x" * 200_000,
        "x" * 32_767 + "😀" + "y" * 40_000,  # an astral character straddling the naive cut
        ("日本語😀e\u0301" * 20_000),
        "short",
    ],
    ids=["emoji", "ascii-emoji", "euro", "ascii", "straddle", "mixed", "short"],
)
def test_split_utf16_keeps_characters_whole_and_pieces_within_limit(text: str) -> None:
    pieces = list(split_utf16(text))

    assert "".join(pieces) == text
    for piece in pieces:
        assert piece
        # A piece holding half a surrogate pair could not be encoded strictly.
        encoded = piece.encode("utf-16-le")
        assert len(encoded) <= MAX_PROPERTY_BYTES
        assert encoded.decode("utf-16-le") == piece
    # Pieces are nearly full (at most one 4-byte character short), so a document never needs
    # more properties than its size requires.
    assert all(utf16_bytes(piece) > MAX_PROPERTY_BYTES - 4 for piece in pieces[:-1])


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("😀😀😀", 8, ["😀😀", "😀"]),
        ("a😀b", 4, ["a", "😀", "b"]),
        ("😀a", 2 * 2, ["😀", "a"]),
        ("abcdef", 4, ["ab", "cd", "ef"]),
        ("", 8, []),
    ],
)
def test_split_utf16_small_limits(text: str, limit: int, expected: list[str]) -> None:
    assert list(split_utf16(text, limit)) == expected


def test_split_utf16_finds_each_cut_in_a_few_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first guess for astral text is 16,384 characters too long; stepping back one
    # character at a time made storing a 3 MB emoji transcript take ~20 seconds.
    measured = 0

    def counting(text: str) -> int:
        nonlocal measured
        measured += 1
        return utf16_bytes(text)

    monkeypatch.setattr(documents, "utf16_bytes", counting)

    pieces = list(split_utf16("😀" * 160_000 + "a😀" * 50_000))

    assert "".join(pieces) == "😀" * 160_000 + "a😀" * 50_000
    assert measured < 10 * len(pieces)
