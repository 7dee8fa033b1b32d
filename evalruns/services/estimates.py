"""What a run would cost, before anything is spent.

Input tokens are counted from the actual prompts (preamble and scenario prompt), with the same
four-characters-a-token rule the mock provider reports. Output tokens are `maxTokens` per job,
or, once the model has finished runs, the average it actually produced there.
"""

from __future__ import annotations

from itertools import islice
from typing import Literal

from evalruns.domain.base import ApiModel
from evalruns.domain.expansion import scenario_at
from evalruns.domain.runs import RunRequest, RunStatus
from evalruns.domain.sampling import new_seed, sample_indices
from evalruns.domain.tokens import cost_usd, estimate_tokens
from evalruns.services.container import Services
from evalruns.services.runs import resolve_models

# Finished runs read for a model's observed average output (newest first).
OBSERVED_RUNS = 50


class ModelEstimate(ApiModel):
    jobs: int
    input_tokens: int
    output_tokens: int
    output_tokens_basis: Literal["maxTokens", "observed"]
    cost_usd: float


class Estimate(ApiModel):
    jobs: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    sample_seed: int
    by_model: dict[str, ModelEstimate]


def estimate_run(services: Services, request: RunRequest) -> Estimate:
    definition = services.definitions.get(request.definition_id)
    models = resolve_models(services, request.models)
    seed = request.sample_seed if request.sample_seed is not None else new_seed()
    indices = sample_indices(definition.scenario_count, request.sample_percentage, seed)
    prompt_tokens = sum(
        estimate_tokens(len(scenario.preamble) + len(scenario.prompt))
        for scenario in (scenario_at(definition, index) for index in indices)
    )
    samples = request.samples_per_scenario
    observed = observed_output_tokens(services, {model.id for model in models})
    by_model: dict[str, ModelEstimate] = {}
    for model in models:
        jobs = len(indices) * samples
        average = observed.get(model.id)
        output = round(average * jobs) if average is not None else request.max_tokens * jobs
        by_model[model.id] = ModelEstimate(
            jobs=jobs,
            input_tokens=prompt_tokens * samples,
            output_tokens=output,
            output_tokens_basis="observed" if average is not None else "maxTokens",
            cost_usd=round(
                cost_usd(
                    prompt_tokens * samples,
                    output,
                    model.cost_input_per_million,
                    model.cost_output_per_million,
                ),
                6,
            ),
        )
    return Estimate(
        jobs=sum(entry.jobs for entry in by_model.values()),
        input_tokens=sum(entry.input_tokens for entry in by_model.values()),
        output_tokens=sum(entry.output_tokens for entry in by_model.values()),
        cost_usd=round(sum(entry.cost_usd for entry in by_model.values()), 6),
        sample_seed=seed,
        by_model=by_model,
    )


def observed_output_tokens(services: Services, model_ids: set[str]) -> dict[str, float]:
    """Average output tokens per successful job, from the newest finished runs."""
    tokens: dict[str, int] = {}
    jobs: dict[str, int] = {}
    page_cursor: str | None = None
    seen = 0
    while seen < OBSERVED_RUNS:
        page = services.runs.list(
            min(100, OBSERVED_RUNS - seen), page_cursor, status=RunStatus.COMPLETED
        )
        for run in islice(page.items, OBSERVED_RUNS - seen):
            for model_id, entry in run.progress.by_model.items():
                if model_id in model_ids and entry.completed and entry.output_tokens:
                    tokens[model_id] = tokens.get(model_id, 0) + entry.output_tokens
                    jobs[model_id] = jobs.get(model_id, 0) + entry.completed
        seen += len(page.items)
        page_cursor = page.next_cursor
        if page_cursor is None:
            break
    return {model_id: tokens[model_id] / jobs[model_id] for model_id in tokens}
