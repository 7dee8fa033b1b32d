"""Runs: the status machine, the start request and progress arithmetic."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from evalruns.domain.runs import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    MOVES,
    Actor,
    ModelProgress,
    Progress,
    RunConfig,
    RunModel,
    RunRequest,
    RunStatus,
    command_target,
    may_move,
)
from evalruns.errors import Conflict, EvalrunsError

S = RunStatus

# DESIGN.md section 4, written out independently of the implementation's table.
ALLOWED_TRANSITIONS = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.PAUSED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.FAILED),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.SUMMARIZING),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.FAILED),
    (S.PAUSED, S.RUNNING),
    (S.PAUSED, S.CANCELLED),
    (S.PAUSED, S.FAILED),
    (S.SUMMARIZING, S.COMPLETED),
    (S.SUMMARIZING, S.CANCELLED),
    (S.SUMMARIZING, S.FAILED),
}
TERMINAL_STATUSES = (S.COMPLETED, S.FAILED, S.CANCELLED)
NON_TERMINAL_STATUSES = (S.PENDING, S.RUNNING, S.PAUSED, S.SUMMARIZING)
ALLOWED_ACTIONS = {
    "pause": {S.PENDING, S.RUNNING},
    "resume": {S.PAUSED},
    "cancel": set(NON_TERMINAL_STATUSES),
}
ACTION_TARGETS = {"pause": S.PAUSED, "resume": S.RUNNING, "cancel": S.CANCELLED}
ORCHESTRATION_MOVES = {
    (S.PENDING, S.RUNNING),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.SUMMARIZING),
    (S.SUMMARIZING, S.COMPLETED),
    *((status, S.FAILED) for status in NON_TERMINAL_STATUSES),
}
ALL_PAIRS = list(itertools.product(RunStatus, RunStatus))
ALL_ACTION_CASES = list(itertools.product(sorted(ALLOWED_ACTIONS), RunStatus))

# --- factories -------------------------------------------------------------------------------


def request_body(**overrides: Any) -> dict[str, Any]:
    return {"definitionId": "def-1", "models": ["mock-small"], **overrides}


def rejection(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        RunRequest.model_validate(request_body(**overrides))
    return str(caught.value)


def model(model_id: str = "mock-small") -> RunModel:
    return RunModel(
        id=model_id,
        provider="mock",
        version=f"{model_id}-v1",
        cost_input_per_million=1.0,
        cost_output_per_million=2.0,
    )


# --- statuses and transitions ----------------------------------------------------------------


def test_terminal_statuses() -> None:
    assert {status for status in RunStatus if status.is_terminal} == set(TERMINAL_STATUSES)


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=str)
def test_the_moves_table_allows_exactly_the_design_transitions(
    current: RunStatus, target: RunStatus
) -> None:
    allowed = any(may_move(current, target, actor) for actor in Actor)
    assert allowed is ((current, target) in ALLOWED_TRANSITIONS)


@pytest.mark.parametrize(("current", "target", "actor"), sorted(MOVES), ids=str)
def test_every_move_names_who_may_make_it(
    current: RunStatus, target: RunStatus, actor: Actor
) -> None:
    if actor is Actor.RECONCILE:
        assert target in (S.CANCELLED, S.FAILED) and not current.is_terminal
    elif actor.is_user:
        assert command_target(actor, current) == target
        assert (current, target) in {
            (source, ACTION_TARGETS[actor.value]) for source in ALLOWED_ACTIONS[actor.value]
        }
    else:
        assert (current, target) in ORCHESTRATION_MOVES


def test_the_orchestration_makes_exactly_its_moves() -> None:
    made = {(current, target) for current, target, actor in MOVES if actor is Actor.ORCHESTRATION}
    assert made == ORCHESTRATION_MOVES


def test_the_reconciler_only_ends_live_runs_as_cancelled_or_failed() -> None:
    made = {(current, target) for current, target, actor in MOVES if actor is Actor.RECONCILE}
    assert made == {(s, t) for s in NON_TERMINAL_STATUSES for t in (S.CANCELLED, S.FAILED)}


@pytest.mark.parametrize("status", TERMINAL_STATUSES)
def test_terminal_statuses_allow_no_move_and_no_command(status: RunStatus) -> None:
    assert not any(may_move(status, target, actor) for target in RunStatus for actor in Actor)
    for actor in (Actor.PAUSE, Actor.RESUME, Actor.CANCEL):
        with pytest.raises(Conflict):
            command_target(actor, status)


@pytest.mark.parametrize("status", NON_TERMINAL_STATUSES)
def test_every_live_status_can_be_cancelled_or_fail(status: RunStatus) -> None:
    assert may_move(status, S.CANCELLED, Actor.CANCEL)
    assert may_move(status, S.FAILED, Actor.ORCHESTRATION)
    assert not may_move(status, S.CANCELLED, Actor.ORCHESTRATION)


def test_the_happy_path_is_a_chain_of_allowed_moves() -> None:
    path = [S.PENDING, S.RUNNING, S.PAUSED, S.RUNNING, S.SUMMARIZING, S.COMPLETED]

    for current, target in itertools.pairwise(path):
        assert any(may_move(current, target, actor) for actor in Actor)


def test_no_status_can_skip_summarizing_or_go_back_to_pending() -> None:
    assert not any(may_move(S.RUNNING, S.COMPLETED, actor) for actor in Actor)
    assert not any(may_move(status, S.PENDING, actor) for status in RunStatus for actor in Actor)


def test_only_a_resume_leaves_paused_and_the_orchestration_pauses_only_a_running_run() -> None:
    assert {t for s, t, a in MOVES if s == S.PAUSED and t == S.RUNNING} == {S.RUNNING}
    assert may_move(S.PAUSED, S.RUNNING, Actor.RESUME)
    assert not may_move(S.PAUSED, S.RUNNING, Actor.ORCHESTRATION)
    assert may_move(S.RUNNING, S.PAUSED, Actor.ORCHESTRATION)
    assert not may_move(S.PENDING, S.PAUSED, Actor.ORCHESTRATION)


# --- user commands ---------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "status"), ALL_ACTION_CASES, ids=str)
def test_command_target_matches_the_design(action: str, status: RunStatus) -> None:
    actor = Actor(action)
    if status in ALLOWED_ACTIONS[action]:
        assert command_target(actor, status) == ACTION_TARGETS[action]
        return
    with pytest.raises(Conflict) as caught:
        command_target(actor, status)

    error = caught.value
    assert error.current_status == status.value
    assert status.value in error.message
    assert action in error.message


def test_conflict_names_the_statuses_the_action_is_allowed_from() -> None:
    with pytest.raises(Conflict) as caught:
        command_target(Actor.RESUME, S.RUNNING)

    assert caught.value.message == (
        "cannot resume a run that is RUNNING; resume is allowed from PAUSED"
    )


def test_conflict_is_a_user_facing_error() -> None:
    with pytest.raises(EvalrunsError) as caught:
        command_target(Actor.PAUSE, S.COMPLETED)

    assert caught.value.title == "Conflict"
    assert str(caught.value) == caught.value.message


# --- RunRequest ------------------------------------------------------------------------------


def test_minimal_request_gets_the_documented_defaults() -> None:
    request = RunRequest.model_validate(request_body())

    assert request.definition_id == "def-1"
    assert request.models == ["mock-small"]
    assert request.sample_percentage == 100
    assert request.sample_seed is None
    assert request.samples_per_scenario == 1
    assert request.temperature == DEFAULT_TEMPERATURE == 0.7
    assert request.max_tokens == DEFAULT_MAX_TOKENS == 1024
    assert request.name is None


def test_camel_case_fields_are_read() -> None:
    request = RunRequest.model_validate(
        {
            "definitionId": "def-9",
            "models": ["mock-small", "gpt-4o@2024-08-06"],
            "samplePercentage": 12.5,
            "sampleSeed": 77,
            "samplesPerScenario": 3,
            "temperature": 0,
            "maxTokens": 256,
            "name": "nightly",
        }
    )

    assert (
        request.definition_id,
        request.models,
        request.sample_percentage,
        request.sample_seed,
        request.samples_per_scenario,
        request.temperature,
        request.max_tokens,
        request.name,
    ) == ("def-9", ["mock-small", "gpt-4o@2024-08-06"], 12.5, 77, 3, 0, 256, "nightly")


def test_snake_case_fields_are_read_too_and_the_wire_form_is_camel_case() -> None:
    request = RunRequest.model_validate(
        {"definition_id": "def-1", "models": ["m"], "samples_per_scenario": 2}
    )

    wire = request.to_json_dict()

    assert request.samples_per_scenario == 2
    assert wire["definitionId"] == "def-1"
    assert wire["samplesPerScenario"] == 2
    assert "samples_per_scenario" not in wire


def test_empty_model_list_is_rejected() -> None:
    rejection(models=[])


def test_missing_models_are_rejected() -> None:
    with pytest.raises(ValidationError):
        RunRequest.model_validate({"definitionId": "def-1"})


def test_duplicated_model_is_rejected_and_named() -> None:
    message = rejection(models=["mock-small", "mock-large", "mock-small"])

    assert "'mock-small' is listed twice" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("samplePercentage", 0),
        ("samplePercentage", 0.5),
        ("samplePercentage", 100.01),
        ("samplePercentage", 101),
        ("samplesPerScenario", 0),
        ("samplesPerScenario", 101),
        ("samplesPerScenario", 1.5),
        ("temperature", -0.01),
        ("temperature", 2.01),
        ("maxTokens", 0),
        ("maxTokens", -5),
        ("sampleSeed", -1),
        ("definitionId", ""),
    ],
)
def test_out_of_range_numbers_are_rejected(field: str, value: object) -> None:
    message = rejection(**{field: value})

    assert field in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("samplePercentage", 1),
        ("samplePercentage", 100),
        ("samplePercentage", 33.3),
        ("samplesPerScenario", 1),
        ("samplesPerScenario", 100),
        ("temperature", 0),
        ("temperature", 2),
        ("temperature", 1.25),
        ("maxTokens", 1),
        ("sampleSeed", 0),
    ],
)
def test_boundary_values_are_accepted(field: str, value: object) -> None:
    request = RunRequest.model_validate(request_body(**{field: value}))

    assert request.to_json_dict()[field] == value


# --- progress --------------------------------------------------------------------------------


def test_planned_progress_has_totals_and_nothing_done() -> None:
    progress = Progress.planned({"mock-small": 10, "mock-large": 5})

    assert progress.total == 15
    assert (progress.completed, progress.failed, progress.percent, progress.done) == (0, 0, 0, 0)
    assert progress.by_model == {
        "mock-small": ModelProgress(total=10),
        "mock-large": ModelProgress(total=5),
    }


def test_planned_progress_for_no_models_is_empty() -> None:
    progress = Progress.planned({})

    assert progress.total == 0
    assert progress.by_model == {}


def test_from_models_sums_counts_cost_and_percent() -> None:
    by_model = {
        "a": ModelProgress(total=10, completed=5, failed=1, cost_usd=0.1),
        "b": ModelProgress(total=10, completed=4, failed=0, cost_usd=0.2),
    }

    progress = Progress.from_models(20, by_model)

    assert progress.total == 20
    assert progress.completed == 9
    assert progress.failed == 1
    assert progress.done == 10
    assert progress.percent == 50.0
    assert progress.cost_usd == 0.3
    assert progress.by_model == by_model


@pytest.mark.parametrize(
    ("total", "completed", "failed", "percent"),
    [(3, 1, 0, 33.33), (3, 2, 0, 66.67), (3, 1, 1, 66.67), (3, 3, 0, 100.0), (7, 0, 7, 100.0)],
)
def test_percent_counts_failures_as_done_and_rounds_to_two_places(
    total: int, completed: int, failed: int, percent: float
) -> None:
    by_model = {"m": ModelProgress(total=total, completed=completed, failed=failed)}

    assert Progress.from_models(total, by_model).percent == percent


def test_nothing_to_do_is_one_hundred_percent() -> None:
    assert Progress.from_models(0, {}).percent == 100.0


def test_cost_is_rounded_to_eight_places() -> None:
    by_model = {
        "a": ModelProgress(cost_usd=0.000000011),
        "b": ModelProgress(cost_usd=0.000000002),
    }

    assert Progress.from_models(1, by_model).cost_usd == 0.00000001


def test_progress_wire_form_is_camel_case() -> None:
    wire = Progress.planned({"m": 2}).to_json_dict()

    assert wire["byModel"] == {
        "m": {
            "total": 2,
            "completed": 0,
            "failed": 0,
            "costUsd": 0.0,
            "inputTokens": 0,
            "outputTokens": 0,
        }
    }
    assert wire["costUsd"] == 0.0


def test_job_count_is_scenarios_times_samples_times_models() -> None:
    config = RunConfig(
        models=[model("a"), model("b"), model("c")],
        sample_percentage=10,
        sample_seed=1,
        samples_per_scenario=4,
        temperature=0.7,
        max_tokens=10,
        scenario_count=12,
    )

    assert config.job_count == 144
