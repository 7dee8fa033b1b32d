"""Repositories round-trip on a real Azurite: definitions, runs, ledgers and transcripts."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient

from evalruns.domain.definitions import Definition, DefinitionInput
from evalruns.domain.ledger import Group, Ledger
from evalruns.domain.runs import (
    Actor,
    Progress,
    RunConfig,
    RunModel,
    RunStatus,
    command_target,
)
from evalruns.domain.scheduler import Pace
from evalruns.domain.transcripts import (
    Transcript,
    TranscriptError,
    TranscriptStatus,
    Turn,
    job_key,
)
from evalruns.errors import Conflict, NotFound
from evalruns.services import Services
from evalruns.storage.runs import UPDATE_ATTEMPTS, StoredRun

# ---------------------------------------------------------------- factories

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_definition_input(name: str = "Pressure test") -> DefinitionInput:
    return DefinitionInput(
        name=name,
        preamble="You are helpful.",
        template="A [Urgency] request from a [Authority].",
        dimensions=[
            {"name": "Urgency", "values": ["calm", "pressing", "frantic"]},
            {"name": "Authority", "values": ["peer", "boss"]},
        ],
    )


def make_definition() -> Definition:
    return Definition(
        **make_definition_input().model_dump(), id="def1", created_at=NOW, updated_at=NOW
    )


def make_model(model_id: str = "mock-small") -> RunModel:
    return RunModel(
        id=model_id,
        provider="mock",
        version=f"{model_id}-20250601",
        cost_input_per_million=0.5,
        cost_output_per_million=1.5,
    )


def make_run(**overrides: Any) -> StoredRun:
    definition = overrides.pop("definition", None) or make_definition()
    created_at = overrides.pop("created_at", NOW)
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "name": "run",
        "definition_id": definition.id,
        "definition_name": definition.name,
        "status": RunStatus.PENDING,
        "config": RunConfig(
            models=[make_model()],
            sample_percentage=100,
            sample_seed=7,
            samples_per_scenario=1,
            temperature=0.7,
            max_tokens=256,
            scenario_count=definition.scenario_count,
        ),
        "progress": Progress.planned({"mock-small": definition.scenario_count}),
        "created_at": created_at,
        "updated_at": created_at,
        "definition": definition,
    }
    return StoredRun(**{**values, **overrides})


def make_transcript(
    run_id: str,
    model_id: str = "mock-small",
    scenario: int = 1,
    sample: int = 1,
    *,
    failed: bool = False,
    response: str | None = None,
) -> Transcript:
    scenario_id = f"s{scenario:06d}"
    turns = [Turn(role="user", content=f"Question {scenario}")]
    if not failed:
        turns.append(Turn(role="assistant", content=response or f"Rating: {scenario % 5 + 1}"))
    return Transcript(
        id=job_key(model_id, scenario_id, sample),
        run_id=run_id,
        scenario_id=scenario_id,
        scenario_number=scenario,
        scenario_name=f"Urgency={scenario}",
        dimensions={"Urgency": scenario % 5 + 1},
        model_id=model_id,
        model_version=f"{model_id}-v1",
        provider="mock",
        sample=sample,
        status=TranscriptStatus.FAILED if failed else TranscriptStatus.SUCCEEDED,
        decision_code="error" if failed else str(scenario % 5 + 1),
        error=TranscriptError(code="timeout", message="no answer") if failed else None,
        input_tokens=10,
        output_tokens=0 if failed else 20,
        cost_usd=0.0 if failed else 0.00003,
        duration_ms=42,
        turns=turns,
        created_at=NOW,
        updated_at=NOW,
    )


class TransactionSpy:
    """A real table client that records the size of each transaction it submits."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self.transaction_sizes: list[int] = []

    def submit_transaction(self, operations: list[Any], **kwargs: Any) -> Any:
        self.transaction_sizes.append(len(operations))
        return self._table.submit_transaction(operations, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


# ---------------------------------------------------------------- definitions


def test_definition_create_get_round_trip(services: Services) -> None:
    created = services.definitions.create(make_definition_input())

    loaded = services.definitions.get(created.id)

    assert loaded == created
    assert loaded.scenario_count == 6
    assert [d.name for d in loaded.dimensions] == ["Urgency", "Authority"]
    assert loaded.dimensions[0].levels[2].options == ["frantic"]


def test_definitions_list_newest_first(services: Services) -> None:
    created = [services.definitions.create(make_definition_input(f"def {i}")) for i in range(4)]

    page = services.definitions.list(limit=10, cursor=None)

    assert [d.id for d in page.items] == [d.id for d in reversed(created)]
    assert page.items[0] == created[-1]
    assert page.next_cursor is None


def test_unknown_definition_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        services.definitions.get(uuid.uuid4().hex)


# ---------------------------------------------------------------- runs


def test_run_create_get_round_trip_keeps_definition_snapshot(services: Services) -> None:
    run = make_run(parent_run_id="parent", child_run_ids=["c1", "c2"], cost_usd=1.25)
    services.runs.create(run)

    loaded = services.runs.get(run.id)

    assert loaded == run
    assert loaded.definition == make_definition()
    assert loaded.public().model_dump().keys() == loaded.model_dump().keys() - {"definition"}


def test_run_update_applies_change_and_refreshes_list_view(services: Services) -> None:
    run = services.runs.create(make_run())

    updated = services.runs.update(
        run.id, lambda current: current.model_copy(update={"status": RunStatus.RUNNING})
    )

    assert updated.status is RunStatus.RUNNING
    assert updated.updated_at > run.updated_at
    assert services.runs.get(run.id) == updated
    # The listing entity was replaced in the same transaction.
    assert services.runs.list(10, None).items == [updated]
    assert services.runs.list(10, None, status=RunStatus.PENDING).items == []


def test_run_update_returning_none_leaves_run_untouched(services: Services) -> None:
    run = services.runs.create(make_run())

    result = services.runs.update(run.id, lambda current: None)

    assert result == run
    assert services.runs.get(run.id).updated_at == run.updated_at


def test_racing_updates_both_land(services: Services) -> None:
    run = services.runs.create(make_run())
    both_read = threading.Barrier(2, timeout=30)
    calls: Counter[str] = Counter()

    def setting(field: str, value: Any) -> Callable[[StoredRun], StoredRun]:
        def change(current: StoredRun) -> StoredRun:
            calls[field] += 1
            if calls[field] == 1:
                # Both updates have read the same version before either writes.
                both_read.wait()
            return current.model_copy(update={field: value})

        return change

    with ThreadPoolExecutor(max_workers=2) as pool:
        renamed = pool.submit(services.runs.update, run.id, setting("name", "renamed"))
        errored = pool.submit(services.runs.update, run.id, setting("error", "provider down"))
        renamed.result()
        errored.result()

    stored = services.runs.get(run.id)
    assert stored.name == "renamed"
    assert stored.error == "provider down"
    # One writer lost the race on the ETag and re-applied its change to the fresh run.
    assert sum(calls.values()) == 3
    assert services.runs.list(10, None).items == [stored]


def test_update_gives_up_with_conflict_when_always_overtaken(services: Services) -> None:
    run = services.runs.create(make_run())
    attempts = 0

    def change(current: StoredRun) -> StoredRun:
        nonlocal attempts
        attempts += 1
        # Someone else writes between our read and our write, every time.
        services.runs.update(
            run.id, lambda other: other.model_copy(update={"cost_usd": other.cost_usd + 1})
        )
        return current.model_copy(update={"name": "never stored"})

    with pytest.raises(Conflict, match="being updated by others"):
        services.runs.update(run.id, change)

    stored = services.runs.get(run.id)
    assert attempts == UPDATE_ATTEMPTS
    assert stored.cost_usd == UPDATE_ATTEMPTS
    assert stored.name == run.name


def test_conflict_raised_by_change_propagates_and_stores_nothing(services: Services) -> None:
    run = services.runs.create(make_run(status=RunStatus.COMPLETED))

    def resume(current: StoredRun) -> StoredRun:
        command_target(Actor.RESUME, current.status)
        return current.model_copy(update={"status": RunStatus.RUNNING})

    with pytest.raises(Conflict) as raised:
        services.runs.update(run.id, resume)

    assert raised.value.current_status == "COMPLETED"
    assert services.runs.get(run.id) == run


def test_update_of_unknown_run_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        services.runs.update(uuid.uuid4().hex, lambda current: current)


# ---------------------------------------------------------------- ledgers


def make_ledger(count: int = 10) -> Ledger:
    return Ledger(groups={"mock": Group(count=count, pace=Pace.open(4))}, summary_cap=2)


def test_a_ledger_round_trips_and_a_second_create_keeps_the_first(services: Services) -> None:
    run_id = uuid.uuid4().hex
    assert services.ledgers.get(run_id) is None
    services.ledgers.create(run_id, make_ledger(10))
    services.ledgers.create(run_id, make_ledger(99))  # a plan run again keeps the ledger

    stored = services.ledgers.get(run_id)
    assert stored is not None
    ledger, etag = stored
    assert ledger == make_ledger(10)
    assert etag


def test_a_ledger_replaced_meanwhile_refuses_the_stale_write(services: Services) -> None:
    run_id = uuid.uuid4().hex
    services.ledgers.create(run_id, make_ledger())
    stored = services.ledgers.get(run_id)
    assert stored is not None
    first, etag = stored
    winner = first.model_copy(update={"round": 1})
    services.ledgers.replace(run_id, winner, etag)

    with pytest.raises(Conflict):
        services.ledgers.replace(run_id, first.model_copy(update={"round": 7}), etag)
    again = services.ledgers.get(run_id)
    assert again is not None and again[0].round == 1


def test_a_large_scattered_selection_round_trips_over_several_rows(services: Services) -> None:
    run_id = uuid.uuid4().hex
    scattered = list(range(0, 50_000, 2))  # no two consecutive: 25,000 ranges
    services.ledgers.put_selection(run_id, {"mock": scattered, "openai": [7, 8, 9]})

    assert services.ledgers.selection(run_id, ["mock", "openai", "anthropic"]) == {
        "mock": scattered,
        "openai": [7, 8, 9],
        "anthropic": [],
    }


# ---------------------------------------------------------------- transcripts


def test_transcript_put_get_and_replace(services: Services) -> None:
    run_id = uuid.uuid4().hex
    transcript = make_transcript(run_id, failed=True)
    services.transcripts.put(transcript)

    assert services.transcripts.get(run_id, transcript.id) == transcript

    retried = make_transcript(run_id, response="Rating: 4 after a retry")
    services.transcripts.put(retried)

    assert retried.id == transcript.id
    assert services.transcripts.get(run_id, transcript.id) == retried


def test_transcript_get_if_exists(services: Services) -> None:
    run_id = uuid.uuid4().hex
    transcript = make_transcript(run_id)
    services.transcripts.put(transcript)

    assert services.transcripts.get_if_exists(run_id, transcript.id) == transcript
    assert services.transcripts.get_if_exists(run_id, job_key("mock-small", "s000099", 1)) is None
    assert services.transcripts.get_if_exists(uuid.uuid4().hex, transcript.id) is None
    with pytest.raises(NotFound):
        services.transcripts.get(uuid.uuid4().hex, transcript.id)


def _key_order_transcripts(run_id: str) -> list[Transcript]:
    """Models where one id prefixes another, scenarios and samples across digit widths."""
    return [
        make_transcript(run_id, model, scenario, sample, failed=(scenario + sample) % 3 == 0)
        for model in ("a", "a-b", "a.b", "b1")
        for scenario in (2, 10, 100)
        for sample in (1, 2, 10)
    ]


def test_transcripts_iterate_in_model_scenario_sample_order(services: Services) -> None:
    run_id = uuid.uuid4().hex
    transcripts = _key_order_transcripts(run_id)
    shuffled = transcripts[:]
    random.Random(3).shuffle(shuffled)
    for transcript in shuffled:
        services.transcripts.put(transcript)
    services.transcripts.put(make_transcript(uuid.uuid4().hex))  # another run

    iterated = list(services.transcripts.iterate(run_id))

    expected = sorted(transcripts, key=lambda t: (t.model_id, t.scenario_number, t.sample))
    assert iterated == expected


def test_transcripts_list_filters_by_model_and_status(services: Services) -> None:
    run_id = uuid.uuid4().hex
    transcripts = _key_order_transcripts(run_id)
    for transcript in transcripts:
        services.transcripts.put(transcript)

    def ids(**filters: Any) -> list[str]:
        return [t.id for t in services.transcripts.list(run_id, 100, None, **filters).items]

    assert ids() == [t.id for t in transcripts]
    assert ids(model_id="a") == [t.id for t in transcripts if t.model_id == "a"]
    failed = [t.id for t in transcripts if t.status is TranscriptStatus.FAILED]
    assert 0 < len(failed) < len(transcripts)
    assert ids(status=TranscriptStatus.FAILED) == failed
    assert ids(model_id="a-b", status=TranscriptStatus.SUCCEEDED) == [
        t.id for t in transcripts if t.model_id == "a-b" and t.status is TranscriptStatus.SUCCEEDED
    ]
    assert ids(model_id="missing") == []


def test_transcript_list_items_are_summaries(services: Services) -> None:
    run_id = uuid.uuid4().hex
    transcript = make_transcript(run_id, scenario=4)
    services.transcripts.put(transcript)

    [summary] = services.transcripts.list(run_id, 10, None).items

    fields = type(summary).model_fields
    assert {name: getattr(summary, name) for name in fields} == {
        name: getattr(transcript, name) for name in fields
    }
    assert "turns" not in summary.to_json_dict()


def test_transcript_list_pages_visit_every_item_once(services: Services) -> None:
    run_id = uuid.uuid4().hex
    transcripts = _key_order_transcripts(run_id)
    for transcript in transcripts:
        services.transcripts.put(transcript)

    seen: list[str] = []
    cursor = None
    for _ in range(len(transcripts)):
        page = services.transcripts.list(run_id, 5, cursor, status=TranscriptStatus.SUCCEEDED)
        assert len(page.items) == 5 or page.next_cursor is None
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == [t.id for t in transcripts if t.status is TranscriptStatus.SUCCEEDED]


def test_transcript_created_at_keeps_timezone(services: Services) -> None:
    run_id = uuid.uuid4().hex
    transcript = make_transcript(run_id).model_copy(
        update={"created_at": NOW + timedelta(microseconds=123456)}
    )
    services.transcripts.put(transcript)

    loaded = services.transcripts.get(run_id, transcript.id)

    assert loaded.created_at == transcript.created_at
    assert loaded.created_at.utcoffset() == timedelta(0)
