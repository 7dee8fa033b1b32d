"""The export streams: its memory does not grow with the run it exports."""

from __future__ import annotations

import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from evalruns.domain.definitions import Definition
from evalruns.domain.runs import Progress, RunConfig, RunModel, RunStatus
from evalruns.domain.transcripts import Transcript, TranscriptStatus, Turn, job_key
from evalruns.exports import segments
from evalruns.exports.service import export_run
from evalruns.services import Services
from evalruns.storage import transcripts as transcript_storage
from evalruns.storage.runs import StoredRun

# ---------------------------------------------------------------- factories

NOW = datetime(2025, 7, 1, tzinfo=UTC)
MODELS = ["mock-a", "mock-b", "mock-c", "mock-d"]
SCENARIOS = 25
SAMPLES = 10
RESPONSE_CHARS = 10_000


def make_run() -> StoredRun:
    definition = Definition(
        id="def-mem",
        name="Memory",
        template="[X] and [Y]",
        dimensions=[
            {"name": "X", "values": ["1", "2", "3", "4", "5"]},
            {"name": "Y", "values": ["1", "2", "3", "4", "5"]},
        ],
        created_at=NOW,
        updated_at=NOW,
    )
    return StoredRun(
        id=uuid.uuid4().hex,
        name="memory",
        definition_id=definition.id,
        # A live run's export is rewritten on every request, so it can be measured warm.
        status=RunStatus.RUNNING,
        config=RunConfig(
            models=[
                RunModel(
                    id=model,
                    provider="mock",
                    version=f"{model}-1",
                    cost_input_per_million=1,
                    cost_output_per_million=1,
                )
                for model in MODELS
            ],
            sample_percentage=100,
            sample_seed=1,
            samples_per_scenario=SAMPLES,
            temperature=0.5,
            max_tokens=4096,
            scenario_count=SCENARIOS,
        ),
        progress=Progress(),
        created_at=NOW,
        updated_at=NOW,
        definition=definition,
    )


def make_transcript(run_id: str, model: str, scenario: int, sample: int) -> Transcript:
    # ~10 KB of response text per transcript, different in each (no shared string objects).
    unit = f"{model} {scenario} {sample}: a long, thoughtful answer; "
    response = (unit * (RESPONSE_CHARS // len(unit) + 1))[:RESPONSE_CHARS]
    return Transcript(
        id=job_key(model, f"s{scenario:06d}", sample),
        run_id=run_id,
        scenario_id=f"s{scenario:06d}",
        scenario_number=scenario,
        scenario_name=f"X={scenario % 5}, Y={scenario // 5}",
        dimensions={"X": scenario % 5 + 1, "Y": scenario // 5 % 5 + 1},
        model_id=model,
        model_version=f"{model}-1",
        provider="mock",
        sample=sample,
        status=TranscriptStatus.SUCCEEDED,
        decision_code="3",
        decision_text="Neutral",
        turns=[
            Turn(role="user", content=f"Question {scenario}"),
            Turn(role="assistant", content=response),
        ],
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
def small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages and blocks of 512 KiB (4 MiB each in production), so a run of 10 MB is many
    times what the export holds at once."""
    monkeypatch.setattr(transcript_storage, "SCAN_PAGE_BYTES", 512 * 1024)
    monkeypatch.setattr(segments, "BLOCK_CHARS", 512 * 1024)


@pytest.mark.usefixtures("small_buffers")
def test_export_peak_memory_is_far_below_the_csv_size(services: Services) -> None:
    run = services.runs.create(make_run())
    transcripts = (
        make_transcript(run.id, model, scenario, sample)
        for model in MODELS
        for scenario in range(1, SCENARIOS + 1)
        for sample in range(1, SAMPLES + 1)
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(services.transcripts.put, transcripts))
    # Warm up (container, clients, lazily imported SDK modules) outside the measurement.
    export_run(services, run.id, datetime.now(UTC))

    tracemalloc.start()
    try:
        link = export_run(services, run.id, datetime.now(UTC))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert link.rows == 1000
    # ~10 MB of CSV: 1,000 rows of 10,000 characters of response plus the other columns.
    assert link.bytes > 1000 * RESPONSE_CHARS
    # What the export holds at once is the page being encoded and the one read ahead (each
    # as a response body and its decoded JSON), the block being filled (as text and as
    # bytes) and the blocks uploading: a few MiB here, whatever the run's size. Holding the
    # run would take several times the CSV. Half the CSV leaves room for interpreter and
    # library differences while still failing if the export buffers the run, or reads or
    # writes it in pieces that are a sizeable part of it.
    assert peak < link.bytes / 2, f"peak {peak / 2**20:.1f} MiB for {link.bytes / 2**20:.1f} MiB"

    response = httpx.get(link.url, timeout=60)
    assert response.status_code == 200
    assert len(response.content) == link.bytes
