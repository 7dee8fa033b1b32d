"""A run's job space: ordinals provider by provider, then scenario, model and sample; the job
and key of every ordinal; the selection a re-run executes."""

from __future__ import annotations

import pytest

from evalruns.domain.expansion import scenario_at
from evalruns.domain.jobspace import JobSpace
from evalruns.domain.runs import RunConfig, RunModel
from evalruns.domain.sampling import sample_indices, sample_size
from tests.support.runs import grid_definition

RUN = "run-1"
DEFINITION = grid_definition(3, 4)  # 12 scenarios
PERCENTAGE = 50.0
SEED = 7
SAMPLES = 2


def model(model_id: str, provider: str) -> RunModel:
    return RunModel(
        id=model_id,
        provider=provider,
        version=f"{model_id}-v1",
        cost_input_per_million=1.0,
        cost_output_per_million=2.0,
    )


# The other provider's model comes between the two mock models: groups follow providers.
MODELS = [model("mock-small", "mock"), model("other-one", "other"), model("mock-large", "mock")]
CONFIG = RunConfig(
    models=MODELS,
    sample_percentage=PERCENTAGE,
    sample_seed=SEED,
    samples_per_scenario=SAMPLES,
    temperature=0.3,
    max_tokens=256,
    scenario_count=sample_size(DEFINITION.scenario_count, PERCENTAGE),
)
SCENARIOS = sample_indices(DEFINITION.scenario_count, PERCENTAGE, SEED)


@pytest.fixture
def space() -> JobSpace:
    return JobSpace(RUN, DEFINITION, CONFIG)


def test_the_space_runs_over_the_sampled_scenarios(space: JobSpace) -> None:
    assert space.scenarios == SCENARIOS
    assert len(SCENARIOS) == 6 < DEFINITION.scenario_count
    assert {space.job(o).scenario_number - 1 for o in range(space.size)} == set(SCENARIOS)


def test_groups_are_contiguous_ranges_provider_by_provider(space: JobSpace) -> None:
    groups = space.groups

    assert list(groups) == ["mock", "other"]
    assert (groups["mock"].first, groups["mock"].size) == (0, 6 * 2 * SAMPLES)
    assert (groups["other"].first, groups["other"].size) == (24, 6 * 1 * SAMPLES)
    assert [m.id for m in groups["mock"].models] == ["mock-small", "mock-large"]
    assert space.size == 36 == CONFIG.job_count
    assert [space.count(provider) for provider in groups] == [24, 12]
    for ordinal in range(space.size):
        provider = "mock" if ordinal < 24 else "other"
        assert space.job(ordinal).model.provider == provider
        assert ordinal in groups[provider]


def test_without_a_selection_a_providers_index_is_its_offset_in_the_range(
    space: JobSpace,
) -> None:
    assert [space.ordinal_of("mock", index) for index in (0, 1, 23)] == [0, 1, 23]
    assert [space.ordinal_of("other", index) for index in (0, 11)] == [24, 35]


def test_within_a_provider_ordinals_run_by_scenario_then_model_then_sample(
    space: JobSpace,
) -> None:
    expected = [
        (scenario, model_id, sample)
        for scenario in SCENARIOS
        for model_id in ("mock-small", "mock-large")
        for sample in range(1, SAMPLES + 1)
    ] + [
        (scenario, "other-one", sample)
        for scenario in SCENARIOS
        for sample in range(1, SAMPLES + 1)
    ]

    jobs = [space.job(ordinal) for ordinal in range(space.size)]

    assert [(job.scenario_number - 1, job.model.id, job.sample) for job in jobs] == expected


def test_every_ordinal_is_a_distinct_job(space: JobSpace) -> None:
    keys = [space.job(ordinal).key for ordinal in range(space.size)]

    assert len(set(keys)) == space.size
    # Ordinal 5: the second sampled scenario, the first mock model, the second sample.
    assert space.job(5).key == f"mock-small!s{SCENARIOS[1] + 1:06d}!002"


def test_the_key_without_expansion_is_the_jobs_key(space: JobSpace) -> None:
    assert [space.key(o) for o in range(space.size)] == [
        space.job(o).key for o in range(space.size)
    ]


def test_jobs_carry_the_runs_settings_and_their_scenarios_prompt(space: JobSpace) -> None:
    for ordinal in range(space.size):
        job = space.job(ordinal)
        scenario = scenario_at(DEFINITION, job.scenario_number - 1)

        assert (job.run_id, job.ordinal) == (RUN, ordinal)
        assert (job.temperature, job.max_tokens) == (0.3, 256)
        assert job.model in MODELS
        assert (job.scenario_id, job.scenario_name) == (scenario.id, scenario.name)
        assert (job.preamble, job.prompt) == ("Answer with a rating.", scenario.prompt)
        assert job.dimensions == scenario.dimensions


def test_a_selection_decides_what_is_executed() -> None:
    selection = {"mock": [3, 5, 20], "other": [30]}
    space = JobSpace(RUN, DEFINITION, CONFIG, selection)

    assert (space.count("mock"), space.count("other")) == (3, 1)
    assert [space.ordinal_of("mock", index) for index in range(3)] == [3, 5, 20]
    assert space.ordinal_of("other", 0) == 30
    # The space itself, and every job's identity, stay those of the whole run.
    assert space.size == 36
    assert space.job(20) == JobSpace(RUN, DEFINITION, CONFIG).job(20)


def test_a_provider_left_out_of_the_selection_executes_nothing() -> None:
    space = JobSpace(RUN, DEFINITION, CONFIG, {"mock": [1]})

    assert space.count("other") == 0


@pytest.mark.parametrize("ordinal", [-1, 36, 1000])
def test_an_ordinal_outside_the_space_has_no_job(space: JobSpace, ordinal: int) -> None:
    with pytest.raises(IndexError):
        space.job(ordinal)
    with pytest.raises(IndexError):
        space.key(ordinal)
