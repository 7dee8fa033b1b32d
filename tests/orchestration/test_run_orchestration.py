"""Runs executed end to end by the real orchestrators, through the Durable SDK's own replay,
with real activities on Azurite and the mock provider."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from devhost.durable import DurableEngine, EventType
from evalruns import names
from evalruns.domain.orchestration import WorkInput
from evalruns.domain.runs import RunStatus
from evalruns.domain.transcripts import TranscriptStatus
from evalruns.services import Services
from orchestrators.payloads import decode
from tests.support.runs import grid_definition, probe_calls, start_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def transcripts_of(services: Services, run_id: str) -> list:  # type: ignore[type-arg]
    return list(services.transcripts.iterate(run_id))


def test_run_completes_with_every_job_once(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(provider_caps={"mock": 3})
    run = start_run(
        services,
        engine,
        grid_definition(5, 5),
        models=["mock-small", "mock-large"],
        samplesPerScenario=2,
    )
    status = engine.run_until_complete(run.id)
    assert status.runtime_status == "Completed"

    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.COMPLETED
    assert stored.started_at is not None and stored.completed_at is not None
    assert stored.progress.total == stored.progress.completed == 100
    assert stored.progress.percent == 100
    assert {m: p.completed for m, p in stored.progress.by_model.items()} == {
        "mock-small": 50,
        "mock-large": 50,
    }
    assert stored.cost_usd > 0 and stored.cost_usd == stored.progress.cost_usd

    transcripts = transcripts_of(services, run.id)
    assert len(transcripts) == 100
    assert len({t.id for t in transcripts}) == 100
    assert all(t.status == TranscriptStatus.SUCCEEDED for t in transcripts)
    assert all(t.decision_code in {"1", "2", "3", "4", "5"} for t in transcripts)
    assert Counter(t.model_id for t in transcripts) == {"mock-small": 50, "mock-large": 50}
    assert probe_calls() == 100
    first = transcripts[0]
    assert [turn.role for turn in first.turns] == ["system", "user", "assistant"]
    assert {(t.model_id, t.model_version) for t in transcripts} == {
        ("mock-small", "mock-small-20250601"),
        ("mock-large", "mock-large-20250301"),
    }
    assert first.input_tokens > 0 and first.output_tokens > 0 and first.duration_ms >= 0


def test_custom_status_reports_progress_per_model(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    # Rate limits make the lanes wait on timers, so the engine's clock moves on while jobs
    # remain and the run's ticks (one a second) show progress part way.
    services = configure(
        provider_caps={"mock": 2}, mock_rate_limit_rate=0.5, mock_seed=3, max_attempts=20
    )
    run = start_run(services, engine, grid_definition(4, 5), models=["mock-small", "mock-large"])
    snapshots: list[dict] = []  # type: ignore[type-arg]

    def capture(_step: object) -> None:
        status = engine.status(run.id)
        custom = status.custom_status if status else None
        if isinstance(custom, dict) and (not snapshots or snapshots[-1] != custom):
            snapshots.append(custom)

    engine.run_until_complete(run.id, on_step=capture)
    done = [s["completed"] + s["failed"] for s in snapshots]
    assert done == sorted(done) and done[0] < done[-1] == 40
    middle = next(s for s in snapshots if 0 < s["completed"] < 40)
    assert set(middle["byModel"]) == {"mock-small", "mock-large"}
    assert middle["byModel"]["mock-small"]["total"] == 20
    assert 0 < middle["percent"] < 100
    final = engine.status(run.id)
    assert final is not None and final.custom_status["completed"] == 40


def lanes_of(engine: DurableEngine, run_id: str) -> list[str]:
    return [i for i in engine.instance_ids() if i.startswith(f"{run_id}:")]


def peak_history(engine: DurableEngine, run_id: str) -> int:
    """The longest history of the run's instances (the run and its lanes)."""
    ids = [run_id, *lanes_of(engine, run_id)]
    return max(engine.instance(i).peak_history_length for i in ids)


def test_history_stays_bounded_however_large_the_run(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    """A run twice as large has no longer histories: each lane has one job in flight and
    continues as new every few steps, and the run orchestrator every few ticks (both runs are
    large enough to reach those limits)."""
    services = configure(provider_caps={"mock": 2})
    peaks = {}
    for samples in (2, 4):
        run = start_run(
            services,
            engine,
            grid_definition(5, 5, 4),
            models=["mock-small", "mock-large"],
            samplesPerScenario=samples,
        )
        engine.run_until_complete(run.id, max_steps=500_000)
        assert services.runs.get(run.id).progress.completed == run.config.job_count
        lane_generations = max(engine.instance(i).generations for i in lanes_of(engine, run.id))
        peaks[run.config.job_count] = (peak_history(engine, run.id), lane_generations)
    print(f"jobs: (peak history events, most lane generations) {peaks}")
    (small_peak, small_generations), (large_peak, large_generations) = peaks.values()
    assert large_generations > small_generations > 1
    assert large_peak <= small_peak + 10
    assert large_peak < 300


def test_rate_limits_are_retried_on_durable_timers(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(
        provider_caps={"mock": 2}, mock_rate_limit_rate=0.3, mock_seed=7, max_attempts=12
    )
    run = start_run(services, engine, grid_definition(5, 4))
    engine.run_until_complete(run.id)
    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.COMPLETED
    assert stored.progress.completed == 20 and stored.progress.failed == 0
    probes = engine.activity_calls(names.PROBE_ACTIVITY)
    assert len(probes) > 20  # some calls were rejected and retried
    assert probe_calls() == len(probes)
    # A job told to retry later waits in its lane on a durable timer, never in an activity.
    lanes = lanes_of(engine, run.id)
    assert sum(engine.instance(lane).timers_created for lane in lanes) > 0
    assert any(
        event["EventType"] == EventType.TIMER_CREATED
        for lane in lanes
        for event in engine.history(lane)
    ) or any(engine.instance(lane).generations > 1 for lane in lanes)
    attempts = {t.id: t.attempts for t in transcripts_of(services, run.id)}
    assert max(attempts.values()) > 1


def test_non_retryable_failures_are_recorded_without_retry(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(mock_failure_rate=1.0)
    run = start_run(services, engine, grid_definition(3))
    engine.run_until_complete(run.id)
    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.FAILED
    assert stored.error and "all 3 jobs failed" in stored.error
    assert stored.progress.failed == 3
    transcripts = transcripts_of(services, run.id)
    assert [t.status for t in transcripts] == [TranscriptStatus.FAILED] * 3
    assert all(t.error and t.error.code == "INVALID_REQUEST" for t in transcripts)
    assert all(t.decision_code == "error" for t in transcripts)
    assert len(engine.activity_calls(names.PROBE_ACTIVITY)) == 3


def test_exhausted_retries_fail_the_job_with_the_reason(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(mock_rate_limit_rate=1.0, max_attempts=3)
    run = start_run(services, engine, grid_definition(2))
    engine.run_until_complete(run.id)
    transcripts = transcripts_of(services, run.id)
    assert [t.error.code for t in transcripts if t.error] == ["RATE_LIMITED"] * 2
    assert [t.attempts for t in transcripts] == [3, 3]
    assert len(engine.activity_calls(names.PROBE_ACTIVITY)) == 6


def test_some_failures_still_complete_the_run(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(mock_failure_rate=0.3, mock_seed=3)
    run = start_run(services, engine, grid_definition(5, 4))
    engine.run_until_complete(run.id)
    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.COMPLETED
    assert stored.progress.failed > 0 and stored.progress.completed > 0
    assert stored.progress.failed + stored.progress.completed == 20
    statuses = Counter(t.status for t in transcripts_of(services, run.id))
    assert statuses[TranscriptStatus.FAILED] == stored.progress.failed


def test_a_failing_orchestration_marks_the_run_failed(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    run = start_run(services, engine, grid_definition(2))

    class JobsOutage:
        """The jobs table failing on every write (an outage Azurite cannot stage)."""

        def get(self, run_id: str) -> None:
            return None  # not planned yet

        def create(self, run_id: str, ledger: object) -> None:
            raise RuntimeError("jobs table unavailable")

    services.__dict__["ledgers"] = JobsOutage()
    status = engine.run_until_complete(run.id)
    assert status.runtime_status == "Failed"
    assert "jobs table unavailable" in str(status.output)
    plans = engine.activity_calls(names.PLAN_ACTIVITY)
    assert len(plans) == 4  # the infrastructure retry policy tried before giving up
    stored = services.runs.get(run.id)
    assert stored.status == RunStatus.FAILED
    assert stored.error and "jobs table unavailable" in stored.error


def test_probe_never_calls_the_provider_twice_for_a_succeeded_job(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    import asyncio

    from evalruns.domain.scheduler import WorkItem
    from evalruns.services.execution import probe_job

    services = configure()
    run = start_run(services, engine, grid_definition(2))
    engine.run_until_complete(run.id)
    assert probe_calls() == 2
    redelivered = WorkInput(run_id=run.id, items=[WorkItem(ordinal=0)])
    again = asyncio.run(probe_job(services, redelivered))
    assert again.kind == "done" and not again.called
    assert probe_calls() == 2


def test_jobs_keep_flowing_while_rejected_ones_wait(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    """A rejected job waits in its lane until it is due: the lane goes on with other jobs
    meanwhile (it rests only after two refusals in a row), and the retry follows when due,
    with the next attempt number."""
    services = configure(
        provider_caps={"mock": 1}, mock_rate_limit_rate=0.3, mock_seed=7, max_attempts=12
    )
    run = start_run(services, engine, grid_definition(5, 5))
    engine.run_until_complete(run.id)
    assert services.runs.get(run.id).progress.completed == 25
    probes = [
        decode(call.input, WorkInput).items[0]
        for call in engine.activity_calls(names.PROBE_ACTIVITY)
    ]
    assert any(probe.attempt > 1 for probe in probes)
    firsts = [i for i, probe in enumerate(probes) if probe.attempt == 1]
    assert [probes[i].ordinal for i in firsts] == list(range(25))  # fresh work in order
    for i, probe in enumerate(probes):
        if probe.attempt == 1:
            continue
        rejected = max(j for j in range(i) if probes[j].ordinal == probe.ordinal)
        if rejected < firsts[-1]:
            # One lane: while fresh jobs were left, it ran another before the retry.
            assert any(other.ordinal != probe.ordinal for other in probes[rejected + 1 : i])
    for ordinal, count in Counter(probe.ordinal for probe in probes).items():
        attempts = [probe.attempt for probe in probes if probe.ordinal == ordinal]
        assert attempts == list(range(1, count + 1))


def test_summaries_keep_flowing_while_rate_limited_ones_wait(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    """A summary the summariser rate-limited waits in its lane until due without holding back
    the next ones; it is tried again with the next attempt, and every transcript ends
    summarised."""
    services = configure(
        provider_caps={"mock": 4}, mock_rate_limit_rate=0.3, mock_seed=5, max_attempts=12
    )
    run = start_run(services, engine, grid_definition(5, 5, 4))
    engine.run_until_complete(run.id)
    assert services.runs.get(run.id).status == RunStatus.COMPLETED
    calls = engine.activity_calls(names.SUMMARISE_ACTIVITY)
    summaries = [item for call in calls for item in decode(call.input, WorkInput).items]
    assert any(summary.attempt > 1 for summary in summaries)
    for ordinal in {summary.ordinal for summary in summaries}:
        attempts = [s.attempt for s in summaries if s.ordinal == ordinal]
        assert attempts == list(range(1, len(attempts) + 1))
    transcripts = transcripts_of(services, run.id)
    assert all(t.decision_code in {"1", "2", "3", "4", "5"} for t in transcripts)
