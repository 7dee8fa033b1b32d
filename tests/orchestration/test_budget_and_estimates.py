"""Budgets pause a run before it overspends; estimates match what the provider then reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from devhost.durable import DurableEngine
from evalruns.domain.runs import RunPatch, RunRequest, RunStatus
from evalruns.services import Services
from evalruns.services.control import patch_run, resume_run
from evalruns.services.estimates import estimate_run
from tests.orchestration.test_run_control import EngineOrchestrations
from tests.support.runs import grid_definition, probe_calls, start_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_a_budget_pauses_the_run_before_it_overspends_and_raising_it_continues(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(batch_size=2)
    # A job costs about $0.00004 and at worst (40 tokens out at $1.5/M) about $0.00007: the
    # budget covers roughly ten jobs, so the run must stop part way.
    budget = 0.0005
    run = start_run(services, engine, grid_definition(5, 4), budgetUsd=budget, maxTokens=40)
    engine.run_until_idle(advance_clock=False)
    paused = services.runs.get(run.id)
    assert paused.status == RunStatus.PAUSED and paused.pause_reason == "budget"
    assert 0 < probe_calls() < 20
    assert paused.progress.completed == probe_calls()
    assert paused.progress.cost_usd <= budget

    patch_run(services, run.id, RunPatch(budget_usd=1.0))
    asyncio.run(resume_run(services, EngineOrchestrations(engine), run.id))
    engine.run_until_complete(run.id)
    done = services.runs.get(run.id)
    assert done.status == RunStatus.COMPLETED and done.budget_usd == 1.0
    assert done.progress.completed == 20 and probe_calls() == 20
    assert done.cost_usd <= 1.0


def test_resuming_without_more_budget_pauses_again(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(batch_size=2)
    run = start_run(services, engine, grid_definition(5, 4), budgetUsd=0.0005, maxTokens=40)
    engine.run_until_idle(advance_clock=False)
    calls = probe_calls()
    asyncio.run(resume_run(services, EngineOrchestrations(engine), run.id))
    engine.run_until_idle(advance_clock=False)
    again = services.runs.get(run.id)
    assert again.status == RunStatus.PAUSED and again.pause_reason == "budget"
    assert probe_calls() == calls


def test_estimates_match_the_tokens_the_provider_reports(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    definition = services.definitions.create(grid_definition(5, 4))
    request = RunRequest(
        definition_id=definition.id,
        models=["mock-small", "mock-large"],
        sample_seed=3,
        sample_percentage=60,
    )
    before = estimate_run(services, request)
    assert before.jobs == 24
    assert {e.output_tokens_basis for e in before.by_model.values()} == {"maxTokens"}
    assert before.by_model["mock-small"].output_tokens == 12 * 1024

    run = start_run(
        services,
        engine,
        grid_definition(5, 4),
        models=["mock-small", "mock-large"],
        sampleSeed=3,
        samplePercentage=60,
    )
    engine.run_until_complete(run.id)
    actual = services.runs.get(run.id).progress
    input_actual = sum(entry.input_tokens for entry in actual.by_model.values())
    output_actual = sum(entry.output_tokens for entry in actual.by_model.values())
    # Input: counted from the same prompts with the provider's own rule (tolerance 2%).
    assert abs(before.input_tokens - input_actual) <= 0.02 * input_actual

    after = estimate_run(services, request)
    assert {e.output_tokens_basis for e in after.by_model.values()} == {"observed"}
    # Output: from the observed average of finished runs (tolerance 10%).
    assert abs(after.output_tokens - output_actual) <= 0.10 * output_actual
    assert after.cost_usd < before.cost_usd
    assert abs(after.cost_usd - actual.cost_usd) <= 0.10 * actual.cost_usd
