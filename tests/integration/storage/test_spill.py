"""Transcripts beyond one property or one entity: split inline, or spilled to Blob."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from evalruns.domain.transcripts import Transcript, TranscriptStatus, Turn, job_key
from evalruns.services import Services
from evalruns.storage.documents import DOC_BLOB, DOC_PREFIX
from evalruns.storage.limits import MAX_PROPERTY_BYTES, utf16_bytes
from evalruns.storage.transcripts import partition_of

# ---------------------------------------------------------------- factories

NOW = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
MiB = 1024 * 1024


def make_transcript(run_id: str, turns: list[Turn], scenario: int = 1) -> Transcript:
    return Transcript(
        id=job_key("mock-large", f"s{scenario:06d}", 1),
        run_id=run_id,
        scenario_id=f"s{scenario:06d}",
        scenario_number=scenario,
        scenario_name="Length=long",
        dimensions={"Length": 5},
        model_id="mock-large",
        model_version="mock-large-20250301",
        provider="mock",
        sample=1,
        status=TranscriptStatus.SUCCEEDED,
        decision_code="4",
        decision_text="Mostly agrees",
        input_tokens=1000,
        output_tokens=900_000,
        cost_usd=1.35,
        duration_ms=120_000,
        turns=turns,
        created_at=NOW,
        updated_at=NOW,
    )


def long_text(chars: int, seed: str) -> str:
    """Varied text of `chars` characters with quotes, newlines and non-ASCII."""
    unit = f'{seed}: "quoted", line\n tab\t é ü 日本 😀 '
    return (unit * (chars // len(unit) + 1))[:chars]


def conversation(total_chars: int) -> list[Turn]:
    third = total_chars // 3
    return [
        Turn(role="system", content=long_text(third, "system"), tokens=None),
        Turn(role="user", content=long_text(third, "user"), tokens=third // 4),
        Turn(role="assistant", content=long_text(third, "assistant"), tokens=third // 4),
    ]


def raw_entity(services: Services, transcript: Transcript) -> dict[str, Any]:
    return dict(
        services.storage.table("Transcripts").get_entity(
            partition_of(transcript.run_id, transcript.id), transcript.id
        )
    )


def spill_blobs(services: Services) -> list[str]:
    container = services.storage.container(services.settings.spill_container)
    return [blob.name for blob in container.list_blobs()]


def doc_properties(entity: dict[str, Any]) -> list[str]:
    return sorted(name for name in entity if name.startswith(DOC_PREFIX) and name != DOC_BLOB)


def assert_reads_back(services: Services, transcript: Transcript) -> None:
    assert services.transcripts.get(transcript.run_id, transcript.id) == transcript
    assert services.transcripts.get_if_exists(transcript.run_id, transcript.id) == transcript
    assert list(services.transcripts.iterate(transcript.run_id)) == [transcript]
    [summary] = services.transcripts.list(transcript.run_id, 10, None).items
    assert summary.id == transcript.id
    assert summary.output_tokens == transcript.output_tokens


# ---------------------------------------------------------------- spill to Blob


@pytest.mark.parametrize(
    "turns",
    [
        conversation(3 * MiB),
        conversation(6 * MiB),
        [Turn(role="assistant", content="😀" * (MiB // 2) + "€" * MiB)],
    ],
    ids=["mixed-3MiB", "mixed-6MiB", "astral-4MiB"],
)
def test_oversized_transcript_spills_to_blob_with_pointer(
    services: Services, turns: list[Turn]
) -> None:
    transcript = make_transcript(uuid.uuid4().hex, turns)
    assert sum(utf16_bytes(turn.content) for turn in transcript.turns) > 3 * MiB

    services.transcripts.put(transcript)

    entity = raw_entity(services, transcript)
    assert doc_properties(entity) == []
    assert entity[DOC_BLOB] in spill_blobs(services)
    assert entity["Status"] == "SUCCEEDED" and entity["ModelId"] == "mock-large"
    assert_reads_back(services, transcript)


def test_spilled_transcripts_are_found_by_filters(services: Services) -> None:
    run_id = uuid.uuid4().hex
    huge = make_transcript(run_id, conversation(2 * MiB), scenario=1)
    small = make_transcript(run_id, [Turn(role="assistant", content="Rating: 2")], scenario=2)
    services.transcripts.put(huge)
    services.transcripts.put(small)

    listed = services.transcripts.list(run_id, 10, None, model_id="mock-large")

    assert [summary.id for summary in listed.items] == [huge.id, small.id]
    assert list(services.transcripts.iterate(run_id)) == [huge, small]


# ---------------------------------------------------------------- inline across properties


@pytest.mark.parametrize(
    "turns",
    [
        [Turn(role="assistant", content="x" * 200_000)],
        conversation(200_000),
        [Turn(role="assistant", content="😀" * 40_000 + "€" * 20_000)],
    ],
    ids=["ascii-200k", "mixed-200k", "astral-200k"],
)
def test_medium_transcript_is_split_inline(services: Services, turns: list[Turn]) -> None:
    transcript = make_transcript(uuid.uuid4().hex, turns)

    services.transcripts.put(transcript)

    entity = raw_entity(services, transcript)
    assert DOC_BLOB not in entity
    pieces = doc_properties(entity)
    assert len(pieces) >= 3
    assert pieces == sorted(f"{DOC_PREFIX}{index}" for index in range(len(pieces)))
    assert all(utf16_bytes(entity[name]) <= MAX_PROPERTY_BYTES for name in pieces)
    assert spill_blobs(services) == []
    assert_reads_back(services, transcript)


def test_non_ascii_transcript_too_big_on_the_wire_spills(services: Services) -> None:
    # 250,000 BMP characters are 500 KB of UTF-16 (Azure would take them inline) but 1.5 MB
    # of escaped JSON, which Azurite refuses in one entity: they go to Blob instead of failing.
    transcript = make_transcript(
        uuid.uuid4().hex, [Turn(role="assistant", content="日本" * 125_000)]
    )

    services.transcripts.put(transcript)

    assert DOC_BLOB in raw_entity(services, transcript)
    assert_reads_back(services, transcript)


# ---------------------------------------------------------------- replacing


def test_replacing_changes_layout_without_stale_properties(services: Services) -> None:
    run_id = uuid.uuid4().hex
    medium = make_transcript(run_id, conversation(300_000))
    huge = make_transcript(run_id, conversation(3 * MiB))
    small = make_transcript(run_id, [Turn(role="assistant", content="Rating: 1")])

    services.transcripts.put(medium)
    assert len(doc_properties(raw_entity(services, medium))) >= 5

    services.transcripts.put(huge)
    entity = raw_entity(services, huge)
    assert doc_properties(entity) == [] and DOC_BLOB in entity
    assert services.transcripts.get(run_id, huge.id) == huge

    services.transcripts.put(small)
    entity = raw_entity(services, small)
    assert doc_properties(entity) == [f"{DOC_PREFIX}0"] and DOC_BLOB not in entity
    assert_reads_back(services, small)
