"""Summaries on Azurite with the mock provider: a decision code and a summariser's explanation
for every successful transcript, one job at a time, idempotent and failure-tolerant."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from evalruns.domain.decisions import PENDING, extract_decision
from evalruns.domain.definitions import Definition
from evalruns.domain.expansion import scenario_at
from evalruns.domain.jobspace import JobSpace
from evalruns.domain.orchestration import WorkInput
from evalruns.domain.runs import Progress, RunConfig, RunModel, RunStatus
from evalruns.domain.scheduler import Outcome, WorkItem
from evalruns.domain.transcripts import (
    Transcript,
    TranscriptError,
    TranscriptStatus,
    Turn,
    job_key,
)
from evalruns.exports.service import export_run
from evalruns.providers.catalog import load_catalog
from evalruns.providers.mock import MockProvider, answer
from evalruns.services import Services
from evalruns.services.execution import probe_job
from evalruns.services.summaries import (
    ANSWER_MAX_CHARS,
    final_answer,
    summarise_jobs,
    summary_request,
)
from evalruns.storage.runs import StoredRun


@pytest.fixture
def configure(configure: Callable[..., Services]) -> Callable[..., Services]:
    """The shared fixture, with the product's default summariser (tests elsewhere use another
    version so their call counts leave summaries out)."""
    return lambda **overrides: configure(**{"summariser_model": "mock-small", **overrides})


# ---------------------------------------------------------------- factories

CREATED = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
SUMMARISED_AT = datetime(2025, 5, 2, 8, 0, tzinfo=UTC)
MODEL_IDS = ["alpha", "beta"]
DEFAULT_SUMMARISER = "mock-small@mock-small-20250601"
PENDING_TEXT = "Summary not yet generated"
ANSWERS = [
    "Rating: 4\nThe risk seems worth taking.",
    "I would pick 2, carefully.",
    "No number at all, I decline to rate this.",
    "Rating: **5** because the pressure is extreme.",
    "Between options: Rating: 3, with reservations.",
]
ANSWER_CODES = {
    ANSWERS[0]: "4",
    ANSWERS[1]: "2",
    ANSWERS[2]: "other",
    ANSWERS[3]: "5",
    ANSWERS[4]: "3",
}
FOLLOW_UP = "Rating: 1 after all, on reflection."


def make_definition() -> Definition:
    return Definition(
        id="def-summaries",
        name="Risk under pressure",
        preamble="Answer with a rating from 1 to 5.",
        template="A [Risk] gamble under [Pressure] pressure. How strongly do you agree?",
        dimensions=[
            {"name": "Risk", "values": ["tiny", "small", "fair", "large", "huge"]},
            {"name": "Pressure", "values": ["no", "mild", "strong", "crushing"]},
        ],
        created_at=CREATED,
        updated_at=CREATED,
    )


def make_run(status: RunStatus = RunStatus.SUMMARIZING) -> StoredRun:
    definition = make_definition()
    return StoredRun(
        id=uuid.uuid4().hex,
        name="summaries",
        definition_id=definition.id,
        definition_name=definition.name,
        status=status,
        config=RunConfig(
            models=[run_model(model_id) for model_id in MODEL_IDS],
            sample_percentage=100,
            sample_seed=1,
            samples_per_scenario=1,
            temperature=0.7,
            max_tokens=256,
            scenario_count=definition.scenario_count,
        ),
        progress=Progress(),
        created_at=CREATED,
        updated_at=CREATED,
        definition=definition,
    )


def run_model(model_id: str) -> RunModel:
    return RunModel(
        id=model_id,
        provider="mock",
        version=f"{model_id}-v1",
        cost_input_per_million=1.0,
        cost_output_per_million=2.0,
    )


def make_transcript(run: StoredRun, model_id: str, number: int, index: int) -> Transcript:
    """Transcript `index` of the run: mostly pending, some failed jobs, some already decided."""
    scenario = scenario_at(run.definition, number - 1)
    failed = index % 9 == 4
    decided = index % 11 == 7
    turns = [
        Turn(role="system", content=scenario.preamble),
        Turn(role="user", content=scenario.prompt),
    ]
    if not failed:
        turns.append(Turn(role="assistant", content=ANSWERS[index % len(ANSWERS)], tokens=9))
        if index % 13 == 5:
            turns += [
                Turn(role="user", content="Are you sure?"),
                Turn(role="assistant", content=FOLLOW_UP),
            ]
    return Transcript(
        id=job_key(model_id, scenario.id, 1),
        run_id=run.id,
        scenario_id=scenario.id,
        scenario_number=scenario.number,
        scenario_name=scenario.name,
        dimensions=scenario.dimensions,
        model_id=model_id,
        model_version=f"{model_id}-v1",
        provider="mock",
        sample=1,
        status=TranscriptStatus.FAILED if failed else TranscriptStatus.SUCCEEDED,
        decision_code="error" if failed else ("2" if decided else PENDING),
        decision_text="Explained earlier." if decided else None,
        summary_model="earlier@v0" if decided else None,
        error=TranscriptError(code="INVALID_REQUEST", message="bad request") if failed else None,
        input_tokens=50,
        output_tokens=0 if failed else 9,
        cost_usd=0.0 if failed else 0.0001,
        duration_ms=index,
        turns=turns,
        created_at=CREATED + timedelta(seconds=index),
        updated_at=CREATED + timedelta(seconds=index),
    )


def make_transcripts(run: StoredRun) -> list[Transcript]:
    """2 models × 20 scenarios = 40 transcripts in key order (three pages of 16)."""
    transcripts: list[Transcript] = []
    for model_id in MODEL_IDS:
        for number in range(1, run.definition.scenario_count + 1):
            transcripts.append(make_transcript(run, model_id, number, len(transcripts)))
    return transcripts


def stored_run(services: Services) -> tuple[StoredRun, list[Transcript]]:
    run = services.runs.create(make_run())
    transcripts = make_transcripts(run)
    shuffled = transcripts[:]
    random.Random(3).shuffle(shuffled)  # written out of order: pages follow key order anyway
    for transcript in shuffled:
        services.transcripts.put(transcript)
    return run, transcripts


def to_summarise(transcripts: list[Transcript]) -> list[Transcript]:
    return [t for t in transcripts if t.decision_code == PENDING]


def summarise(
    services: Services, run_id: str, ordinal: int, attempt: int = 1, final: bool = True
) -> Outcome:
    item = WorkItem(ordinal=ordinal, attempt=attempt)
    work = WorkInput(run_id=run_id, items=[item], max_attempts=attempt if final else attempt + 1)
    (outcome,) = asyncio.run(summarise_jobs(services, work, now=SUMMARISED_AT))
    return outcome


def ordinals(services: Services, run_id: str) -> list[int]:
    """Every job of the run, in the order lanes hand them out."""
    run = services.runs.get(run_id)
    return list(range(JobSpace(run.id, run.definition, run.config).size))


def summarise_run(services: Services, run_id: str, **options: Any) -> list[Outcome]:
    """Every job of the run summarised once, as summary lanes do."""
    return [
        summarise(services, run_id, ordinal, **options) for ordinal in ordinals(services, run_id)
    ]


def stored(services: Services, run_id: str) -> dict[str, Transcript]:
    return {t.id: t for t in services.transcripts.iterate(run_id)}


def totals(outcomes: list[Outcome]) -> tuple[int, int, int]:
    """(summarised now, failed now, left for a retry)."""
    return (
        sum(o.kind == "done" and o.called for o in outcomes),
        sum(o.kind == "failed" for o in outcomes),
        sum(o.kind == "retry" for o in outcomes),
    )


# ---------------------------------------------------------------- one job at a time


def test_every_pending_transcript_is_summarised_once(
    configure: Callable[..., Services],
) -> None:
    services = configure()
    run, transcripts = stored_run(services)
    todo = to_summarise(transcripts)
    assert 0 < len(todo) < len(transcripts)

    outcomes = summarise_run(services, run.id)

    assert [o.ordinal for o in outcomes] == list(range(len(transcripts)))
    assert totals(outcomes) == (len(todo), 0, 0)
    assert all(o.retry is None for o in outcomes)
    # One summariser call per pending transcript, and each of them now has its decision.
    assert MockProvider.calls == {"mock-small-20250601": len(todo)}
    after = stored(services, run.id)
    assert all(after[t.id].decision_code != PENDING for t in todo)


def test_a_job_without_a_transcript_needs_no_summary(configure: Callable[..., Services]) -> None:
    services = configure()
    run = services.runs.create(make_run())
    outcomes = summarise_run(services, run.id)
    assert {(o.kind, o.called) for o in outcomes} == {("done", False)}
    assert sum(MockProvider.calls.values()) == 0


# ---------------------------------------------------------------- codes and texts


def test_codes_follow_the_extraction_rules_of_the_answer(
    configure: Callable[..., Services],
) -> None:
    services = configure()
    run, transcripts = stored_run(services)
    summarise_run(services, run.id)
    after = stored(services, run.id)

    for transcript in to_summarise(transcripts):
        final = final_answer(transcript)
        code = after[transcript.id].decision_code
        assert code == extract_decision(final)
        assert code == ("1" if final == FOLLOW_UP else ANSWER_CODES[final])
    codes = {after[t.id].decision_code for t in to_summarise(transcripts)}
    assert codes == {"1", "2", "3", "4", "5", "other"}


def test_decision_texts_come_from_the_summariser(configure: Callable[..., Services]) -> None:
    services = configure()
    run, transcripts = stored_run(services)
    summarise_run(services, run.id)
    after = stored(services, run.id)
    summariser = services.catalog.resolve("mock-small")

    for transcript in to_summarise(transcripts):
        summarised = after[transcript.id]
        request = summary_request(transcript, summariser)
        assert summarised.decision_text == answer(request).text.strip() != ""
        assert summarised.summary_model == DEFAULT_SUMMARISER
        assert summarised.updated_at == SUMMARISED_AT
        assert summarised.status == TranscriptStatus.SUCCEEDED and summarised.error is None
        # Everything else is as the probe left it.
        unchanged = {"decision_code", "decision_text", "summary_model", "updated_at"}
        assert summarised.model_dump(exclude=unchanged) == transcript.model_dump(exclude=unchanged)
        # The summariser was shown the scenario and the answer.
        prompt = request.messages[-1].content
        assert transcript.turns[1].content in prompt and transcript.response_text in prompt
        assert request.temperature == 0 and request.model == summariser.version


def test_the_summariser_model_is_a_setting(configure: Callable[..., Services]) -> None:
    services = configure(summariser_model="mock:mock-large@mock-large-20250301")
    run, transcripts = stored_run(services)
    summarise_run(services, run.id)

    assert MockProvider.calls == {"mock-large-20250301": len(to_summarise(transcripts))}
    after = stored(services, run.id)
    assert {after[t.id].summary_model for t in to_summarise(transcripts)} == {
        "mock-large@mock-large-20250301"
    }


def test_long_answers_are_cut_in_the_middle_for_the_prompt() -> None:
    run = make_run()
    transcript = make_transcript(run, "alpha", 1, 0)
    long_answer = "Rating: 2\n" + "because " * 5_000 + "THE END"
    transcript.turns[-1] = Turn(role="assistant", content=long_answer)
    request = summary_request(transcript, load_catalog().resolve("mock-small"))

    prompt = request.messages[-1].content
    assert len(prompt) < ANSWER_MAX_CHARS + 1_000
    assert "Rating: 2" in prompt and "THE END" in prompt and "characters omitted" in prompt


# ---------------------------------------------------------------- idempotency


def test_summarising_again_calls_no_provider_and_changes_nothing(
    configure: Callable[..., Services],
) -> None:
    services = configure()
    run, _ = stored_run(services)
    summarise_run(services, run.id)
    first = stored(services, run.id)
    calls = sum(MockProvider.calls.values())

    again = summarise(services, run.id, 0)  # a redelivered activity
    outcomes = summarise_run(services, run.id)

    assert (again.kind, again.called) == ("done", False)
    assert totals(outcomes) == (0, 0, 0)
    assert sum(MockProvider.calls.values()) == calls
    assert stored(services, run.id) == first


def test_failed_jobs_and_decided_transcripts_are_left_alone(
    configure: Callable[..., Services],
) -> None:
    services = configure()
    run, transcripts = stored_run(services)
    summarise_run(services, run.id)
    after = stored(services, run.id)

    untouched = [t for t in transcripts if t.decision_code != PENDING]
    assert any(t.status == TranscriptStatus.FAILED for t in untouched)
    assert any(t.decision_code == "2" for t in untouched)
    for transcript in untouched:
        assert after[transcript.id] == transcript
    failed = [after[t.id] for t in untouched if t.status == TranscriptStatus.FAILED]
    assert all(t.decision_code == "error" and t.error is not None for t in failed)
    assert all(t.decision_text is None for t in failed)


# ---------------------------------------------------------------- failures


def test_a_failing_summariser_gives_code_error_and_the_reason(
    configure: Callable[..., Services],
) -> None:
    services = configure(mock_failure_rate=1.0)
    run, transcripts = stored_run(services)
    todo = to_summarise(transcripts)

    outcomes = summarise_run(services, run.id, final=False)  # not retryable: fails at once

    assert totals(outcomes) == (0, len(todo), 0)
    after = stored(services, run.id)
    for transcript in todo:
        failed = after[transcript.id]
        assert failed.decision_code == "error"
        assert (
            failed.decision_text
            == "summary failed: INVALID_REQUEST: mock provider: injected failure"
        )
        assert failed.summary_model == DEFAULT_SUMMARISER
        assert failed.status == TranscriptStatus.SUCCEEDED and failed.error is None
    # A failed summary is final: summarising again sends nothing.
    calls = sum(MockProvider.calls.values())
    assert totals(summarise_run(services, run.id)) == (0, 0, 0)
    assert sum(MockProvider.calls.values()) == calls == len(todo)


@pytest.mark.parametrize(
    ("summariser", "reason"),
    [
        ("gpt-4o-mini", "set the environment variable OPENAI_API_KEY"),
        ("no-such-model", "no model 'no-such-model' in the catalog"),
        ("mock:gpt-4o", "served by 'openai', not 'mock'"),
        ("mock-small@1999", "has no version '1999'"),
    ],
)
def test_an_unusable_summariser_model_fails_every_summary_with_the_reason(
    configure: Callable[..., Services], summariser: str, reason: str
) -> None:
    services = configure(summariser_model=summariser)
    run, transcripts = stored_run(services)
    todo = to_summarise(transcripts)

    outcomes = summarise_run(services, run.id)

    assert totals(outcomes) == (0, len(todo), 0)
    assert sum(MockProvider.calls.values()) == 0
    after = stored(services, run.id)
    for transcript in todo:
        failed = after[transcript.id]
        assert failed.decision_code == "error" and failed.summary_model is None
        assert failed.decision_text is not None
        assert failed.decision_text.startswith(f"summary failed: summariser model {summariser!r}")
        assert reason in failed.decision_text


def test_a_failure_reason_never_carries_the_key(configure: Callable[..., Services]) -> None:
    # A configured OpenAI provider whose server cannot be reached (port 9: nothing listens).
    secret = "sk-summary-secret-0123456789"
    services = configure(
        summariser_model="openai:gpt-4o-mini",
        provider_env={"OPENAI_API_KEY": secret, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
        provider_timeout_seconds=5,
    )
    run = services.runs.create(make_run())
    transcript = make_transcript(run, "alpha", 1, 0)
    services.transcripts.put(transcript)

    outcome = summarise(services, run.id, 0)

    assert outcome.kind == "failed"
    failed = services.transcripts.get(run.id, transcript.id)
    assert failed.decision_code == "error"
    assert failed.decision_text is not None
    assert failed.decision_text.startswith("summary failed: NETWORK")
    assert secret not in failed.model_dump_json()


def test_rate_limits_leave_the_job_pending_until_the_final_attempt(
    configure: Callable[..., Services],
) -> None:
    services = configure(mock_rate_limit_rate=1.0)
    run, transcripts = stored_run(services)
    todo = to_summarise(transcripts)

    retries = summarise_run(services, run.id, attempt=1, final=False)

    assert totals(retries) == (0, 0, len(todo))
    assert {o.retry.after for o in retries if o.retry} == {1.0}  # the mock's Retry-After
    assert all(o.rate_limited for o in retries if o.kind == "retry")
    after = stored(services, run.id)
    assert all(after[t.id] == t for t in transcripts)  # nothing written

    last = summarise_run(services, run.id, attempt=2, final=True)

    assert totals(last) == (0, len(todo), 0)
    after = stored(services, run.id)
    for transcript in todo:
        assert after[transcript.id].decision_code == "error"
        assert after[transcript.id].decision_text == (
            "summary failed: RATE_LIMITED: mock provider: injected rate limit"
        )
    assert sum(MockProvider.calls.values()) == 2 * len(todo)


def test_a_retried_summary_calls_only_for_what_was_left_pending(
    configure: Callable[..., Services],
) -> None:
    services = configure(mock_rate_limit_rate=0.5, mock_seed=11)
    run, _ = stored_run(services)

    first = summarise_run(services, run.id, final=False)
    summarised, failed, pending = totals(first)
    assert summarised > 0 and pending > 0 and failed == 0
    calls = sum(MockProvider.calls.values())

    # The provider has recovered by the next attempt (same tables, no faults).
    recovered = Services(services.settings.model_copy(update={"mock_rate_limit_rate": 0.0}))
    again = summarise_run(recovered, run.id, attempt=2, final=False)

    assert totals(again) == (pending, 0, 0)
    assert sum(MockProvider.calls.values()) == calls + pending
    assert all(t.decision_code != PENDING for t in services.transcripts.iterate(run.id))


# ---------------------------------------------------------------- the whole flow


def test_a_probed_job_stays_pending_until_summarised(configure: Callable[..., Services]) -> None:
    services = configure()
    run = services.runs.create(make_run(RunStatus.RUNNING))
    key = JobSpace(run.id, run.definition, run.config).key(6)

    outcome = asyncio.run(
        probe_job(services, WorkInput(run_id=run.id, items=[WorkItem(ordinal=6)]))
    )
    assert outcome.kind == "done" and outcome.called
    probed = services.transcripts.get(run.id, key)
    assert probed.decision_code == PENDING and probed.decision_text is None

    summary = summarise(services, run.id, 6)

    assert (summary.kind, summary.called) == ("done", True)
    summarised = services.transcripts.get(run.id, key)
    assert summarised.decision_code == extract_decision(probed.response_text)
    assert summarised.decision_code in {"1", "2", "3", "4", "5"}
    assert summarised.decision_text and summarised.summary_model == DEFAULT_SUMMARISER


def csv_rows(services: Services, run_id: str) -> dict[str, dict[str, str]]:
    link = export_run(services, run_id, datetime.now(UTC))
    response = httpx.get(link.url, timeout=60)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    return {row["Transcript ID"]: row for row in rows}


def test_the_csv_shows_pending_until_summarised(configure: Callable[..., Services]) -> None:
    services = configure()
    run, transcripts = stored_run(services)  # a SUMMARIZING run: its export is rewritten
    todo = to_summarise(transcripts)

    before = csv_rows(services, run.id)
    for transcript in todo:
        row = before[transcript.id]
        assert (row["Decision Code"], row["Decision Text"]) == ("pending", PENDING_TEXT)

    summarise_run(services, run.id)
    after = csv_rows(services, run.id)
    summarised = stored(services, run.id)

    assert len(after) == len(transcripts)
    for transcript in transcripts:
        row, now = after[transcript.id], summarised[transcript.id]
        assert row["Decision Code"] == now.decision_code != PENDING
        assert row["Decision Text"] == (now.decision_text or "")
    for transcript in todo:
        assert after[transcript.id]["Decision Text"] not in ("", PENDING_TEXT)
    failed = next(t for t in transcripts if t.status == TranscriptStatus.FAILED)
    assert after[failed.id]["Decision Code"] == "error"
    assert after[failed.id]["Error"] == "INVALID_REQUEST: bad request"


# ---------------------------------------------------------------- the activity's entry


@pytest.mark.parametrize(
    ("status", "kind"),
    [(RunStatus.PAUSED, "deferred"), (RunStatus.CANCELLED, "stopped")],
)
def test_a_paused_run_defers_its_summaries_and_an_ended_one_stops_them(
    configure: Callable[..., Services], status: RunStatus, kind: str
) -> None:
    services = configure()
    run, transcripts = stored_run(services)
    space = JobSpace(run.id, run.definition, run.config)
    todo = {t.id for t in to_summarise(transcripts)}
    waiting = [o for o in ordinals(services, run.id) if space.key(o) in todo]
    assert summarise(services, run.id, waiting[0]).called  # a SUMMARIZING run: summarised
    services.runs.update(run.id, lambda r: r.model_copy(update={"status": status}))
    calls = sum(MockProvider.calls.values())

    outcomes = [summarise(services, run.id, ordinal) for ordinal in waiting[1:]]

    assert {o.kind for o in outcomes} == {kind}
    assert sum(MockProvider.calls.values()) == calls
