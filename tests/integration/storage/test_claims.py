"""Claims against a run's ledger on a real Azurite: a redelivered claim is answered as the first
time and changes nothing, and claims racing from several processes hand out every job once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from evalruns.domain.definitions import Definition
from evalruns.domain.ledger import ClaimRequest, ClaimResult, Report
from evalruns.domain.orchestration import TickInput
from evalruns.domain.runs import ModelProgress, Progress, RunConfig, RunModel, RunStatus
from evalruns.domain.scheduler import MAX_CLAIM
from evalruns.services import Services
from evalruns.services.execution import plan_run
from evalruns.services.work import claim, tick
from evalruns.storage.runs import StoredRun

NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
MODELS = ("alpha", "beta")
CAP = 8


def make_run() -> StoredRun:
    definition = Definition(
        id="def-claims",
        name="Claims",
        preamble="Rate 1 to 5.",
        template="A [Risk] gamble under [Pressure] pressure.",
        dimensions=[
            {"name": "Risk", "values": ["tiny", "small", "fair", "large", "huge"]},
            {"name": "Pressure", "values": ["no", "mild", "strong", "crushing"]},
        ],
        created_at=NOW,
        updated_at=NOW,
    )
    models = [
        RunModel(
            id=model,
            provider="mock",
            version=f"{model}-v1",
            cost_input_per_million=1.0,
            cost_output_per_million=2.0,
        )
        for model in MODELS
    ]
    return StoredRun(
        id=uuid.uuid4().hex,
        name="claims",
        definition_id=definition.id,
        definition_name=definition.name,
        status=RunStatus.RUNNING,
        config=RunConfig(
            models=models,
            sample_percentage=100,
            sample_seed=1,
            samples_per_scenario=2,
            temperature=0.7,
            max_tokens=64,
            scenario_count=definition.scenario_count,
        ),
        progress=Progress(),
        created_at=NOW,
        updated_at=NOW,
        definition=definition,
    )


def planned_run(services: Services) -> tuple[str, list[str]]:
    """A RUNNING run with its ledger, and the probe lanes its first tick opened."""
    run = services.runs.create(make_run())
    plan_run(services, run.id)
    started = tick(services, TickInput(run_id=run.id)).start
    return run.id, [lane.lane_id for lane in started if lane.kind == "probe"]


def ledger_etag(services: Services, run_id: str) -> str:
    stored = services.ledgers.get(run_id)
    assert stored is not None
    return stored[1]


def request(lane_id: str, seq: int, want: int = MAX_CLAIM, **report: object) -> ClaimRequest:
    return ClaimRequest(
        lane_id=lane_id, seq=seq, at=NOW, want=want, report=Report.model_validate(report)
    )


def test_a_redelivered_claim_gets_the_first_answer_and_writes_nothing(
    configure: Callable[..., Services],
) -> None:
    services = configure(provider_caps={"mock": CAP})
    run_id, lanes = planned_run(services)
    first = claim(services, run_id, request(lanes[0], 1))
    etag = ledger_etag(services, run_id)

    again = claim(services, run_id, request(lanes[0], 1))

    assert first.items and len(first.items) <= MAX_CLAIM
    assert again == first
    assert ledger_etag(services, run_id) == etag


def test_a_redelivered_report_is_counted_once(configure: Callable[..., Services]) -> None:
    services = configure(provider_caps={"mock": CAP})
    run_id, lanes = planned_run(services)
    items = claim(services, run_id, request(lanes[0], 1)).items
    done = {"alpha": ModelProgress(completed=len(items), cost_usd=0.5)}
    report = {"by_model": done, "finished": len(items), "calls": len(items)}

    answers = [claim(services, run_id, request(lanes[0], 2, **report)) for _ in range(3)]
    progress = tick(services, TickInput(run_id=run_id)).progress

    assert answers[1:] == answers[:1] * 2
    assert progress.completed == len(items)
    assert progress.by_model["alpha"].cost_usd == 0.5


def test_claims_racing_from_several_processes_hand_out_every_job_once(
    configure: Callable[..., Services],
) -> None:
    """Each lane claims through a Services of its own (as in another worker process, where only
    the ledger's ETag decides), every claim delivered twice, until the ledger is dry."""
    first = configure(provider_caps={"mock": CAP})
    run_id, lanes = planned_run(first)
    total = first.job_spaces.get(run_id).count("mock")
    processes = {lane: configure(**first.settings.model_dump()) for lane in lanes}

    def drain(lane: str) -> list[int]:
        services, got, seq = processes[lane], [], 0
        while True:
            seq += 1
            answer: ClaimResult = claim(services, run_id, request(lane, seq))
            assert claim(services, run_id, request(lane, seq)) == answer  # redelivered
            got += [item.ordinal for item in answer.items]
            if answer.exhausted or not answer.items:
                return got

    with ThreadPoolExecutor(len(lanes)) as pool:
        handed = [ordinal for got in pool.map(drain, lanes) for ordinal in got]

    assert len(lanes) == CAP
    assert Counter(handed).most_common(1)[0][1] == 1
    group = first.job_spaces.get(run_id).groups["mock"]
    assert sorted(handed) == list(range(group.first, group.first + group.size))
    assert len(handed) == total == 2 * 20 * len(MODELS)
