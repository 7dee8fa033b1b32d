"""Job keys and transcript helpers."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from evalruns.domain.expansion import scenario_id
from evalruns.domain.transcripts import Transcript, TranscriptStatus, Turn, job_key

# --- factories -------------------------------------------------------------------------------

WHEN = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def transcript(*turns: tuple[str, str], **overrides: Any) -> Transcript:
    fields: dict[str, Any] = {
        "id": "mock-small!s000001!001",
        "run_id": "run-1",
        "scenario_id": "s000001",
        "scenario_number": 1,
        "scenario_name": "Base scenario",
        "model_id": "mock-small",
        "model_version": "mock-small-v1",
        "provider": "mock",
        "sample": 1,
        "status": TranscriptStatus.SUCCEEDED,
        "decision_code": "3",
        "dimensions": {},
        "turns": [Turn(role=role, content=content) for role, content in turns],
        "created_at": WHEN,
        "updated_at": WHEN,
        **overrides,
    }
    return Transcript.model_validate(fields)


# --- job keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "scenario", "sample", "key"),
    [
        ("mock-small", "s000001", 1, "mock-small!s000001!001"),
        ("gpt-4o", "s000125", 12, "gpt-4o!s000125!012"),
        ("gpt-4.1-mini", "s100000", 100, "gpt-4.1-mini!s100000!100"),
        ("m_1", "s000002", 0, "m_1!s000002!000"),
    ],
)
def test_job_key_format(model_id: str, scenario: str, sample: int, key: str) -> None:
    assert job_key(model_id, scenario, sample) == key


def test_job_key_is_deterministic() -> None:
    assert job_key("mock-small", "s000007", 3) == job_key("mock-small", "s000007", 3)


def test_job_keys_are_unique_per_job() -> None:
    jobs = list(itertools.product(["mock-small", "mock-small-2"], ["s000001", "s000002"], [1, 2]))

    assert len({job_key(*job) for job in jobs}) == len(jobs)


def test_shorter_model_id_sorts_before_a_longer_one_it_prefixes() -> None:
    keys = [job_key("mock-small-2", "s000001", 1), job_key("mock-small", "s000999", 100)]

    assert sorted(keys) == [keys[1], keys[0]]


def test_keys_sort_by_model_then_scenario_then_sample() -> None:
    models = ["mock-small", "mock-small-2", "mock-small.2", "mock-small2", "gpt-4o", "a", "a-b"]
    jobs = list(itertools.product(models, (scenario_id(n) for n in (1, 2, 10, 125)), (1, 2, 10)))
    shuffled = jobs[:]
    random.Random(5).shuffle(shuffled)

    keys = sorted(job_key(*job) for job in shuffled)

    assert keys == [job_key(*job) for job in sorted(jobs)]


@pytest.mark.parametrize(
    "model_id",
    [
        "",
        "GPT-4o",
        "openai:gpt-4o",
        "gpt-4o@2024-08-06",
        "a/b",
        "a\\b",
        "a#b",
        "a?b",
        "a!b",
        "a b",
        "-leading-dash",
        ".leading-dot",
        "tab\there",
        "mock-small\n",
    ],
)
def test_model_ids_that_cannot_be_in_a_key_are_rejected(model_id: str) -> None:
    with pytest.raises(ValueError, match="cannot be part of a key"):
        job_key(model_id, "s000001", 1)


# --- response text ---------------------------------------------------------------------------


def test_response_text_joins_assistant_turns_with_a_separator() -> None:
    record = transcript(
        ("user", "Question?"),
        ("assistant", "First answer."),
        ("user", "Are you sure?"),
        ("assistant", "Second answer."),
    )

    assert record.response_text == "First answer.\n\n---\n\nSecond answer."


def test_response_text_of_one_turn_is_that_turn() -> None:
    assert transcript(("user", "Q"), ("assistant", "Rating: 4")).response_text == "Rating: 4"


def test_response_text_leaves_out_system_and_user_turns() -> None:
    record = transcript(("system", "Be honest."), ("user", "Question?"))

    assert record.response_text == ""


def test_response_text_without_turns_is_empty() -> None:
    assert transcript().response_text == ""


def test_transcript_wire_form_is_camel_case() -> None:
    wire = transcript(("assistant", "x")).to_json_dict()

    assert wire["scenarioId"] == "s000001"
    assert wire["decisionCode"] == "3"
    assert wire["turns"] == [{"role": "assistant", "content": "x", "tokens": None}]
    assert wire["createdAt"] == "2025-06-01T12:00:00Z"
