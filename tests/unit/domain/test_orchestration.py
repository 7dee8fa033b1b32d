"""Pure helpers used by the orchestrators: batching, progress merging, retry delays."""

from __future__ import annotations

import pytest

from evalruns.domain.orchestration import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_MAX_SECONDS,
    RETRY_AFTER_MAX_SECONDS,
    BatchResult,
    ProbeOutcome,
    add_outcomes,
    final_status,
    merge_progress,
    retry_delay,
)
from evalruns.domain.runs import ModelProgress, Progress, RunStatus

MAX_JITTER = 1.25

# --- factories -------------------------------------------------------------------------------


def outcome(
    kind: str, model_id: str = "mock-small", cost: float = 0.0, ordinal: int = 0
) -> ProbeOutcome:
    return ProbeOutcome.model_validate(
        {"ordinal": ordinal, "outcome": kind, "modelId": model_id, "costUsd": cost}
    )


def progress(total: int, **by_model: ModelProgress) -> Progress:
    return Progress.from_models(total, dict(by_model))


# --- counting outcomes -----------------------------------------------------------------------


def test_add_outcomes_counts_successes_and_failures_per_model() -> None:
    totals: dict[str, ModelProgress] = {}

    add_outcomes(
        totals,
        [
            outcome("succeeded", "a", 0.5),
            outcome("succeeded", "a", 0.25),
            outcome("failed", "a"),
            outcome("succeeded", "b", 1.0),
        ],
    )

    assert totals == {
        "a": ModelProgress(completed=2, failed=1, cost_usd=0.75),
        "b": ModelProgress(completed=1, failed=0, cost_usd=1.0),
    }


def test_add_outcomes_does_not_count_retries() -> None:
    totals = {"a": ModelProgress(total=5, completed=1)}

    add_outcomes(totals, [outcome("retry", "a"), outcome("retry", "a")])

    assert (totals["a"].completed, totals["a"].failed) == (1, 0)


def test_add_outcomes_adds_to_existing_totals() -> None:
    totals = {"a": ModelProgress(total=5, completed=1, failed=1, cost_usd=0.1)}

    add_outcomes(totals, [outcome("succeeded", "a", 0.2), outcome("failed", "a")])

    assert totals["a"] == ModelProgress(total=5, completed=2, failed=2, cost_usd=0.3)


# --- merging progress ------------------------------------------------------------------------


def test_merge_progress_adds_a_batch_and_recomputes_the_summary() -> None:
    before = progress(
        10,
        a=ModelProgress(total=5, completed=2, cost_usd=0.1),
        b=ModelProgress(total=5, failed=1),
    )
    batch = BatchResult(
        by_model={
            "a": ModelProgress(completed=1, failed=1, cost_usd=0.2),
            "b": ModelProgress(completed=2),
        }
    )

    after = merge_progress(before, batch.by_model)

    assert after.total == 10
    assert after.by_model == {
        "a": ModelProgress(total=5, completed=3, failed=1, cost_usd=0.3),
        "b": ModelProgress(total=5, completed=2, failed=1),
    }
    assert (after.completed, after.failed, after.percent, after.cost_usd) == (5, 2, 70.0, 0.3)


def test_merge_progress_leaves_its_input_unchanged() -> None:
    before = progress(4, a=ModelProgress(total=4, completed=1))
    snapshot = before.model_copy(deep=True)

    merge_progress(before, {"a": ModelProgress(completed=3)})

    assert before == snapshot


def test_merge_progress_accepts_a_model_it_has_not_seen() -> None:
    before = Progress.planned({"a": 2})

    after = merge_progress(before, {"b": ModelProgress(failed=1)})

    assert after.by_model["b"].failed == 1
    assert after.failed == 1
    assert after.total == 2


def test_merging_batches_one_at_a_time_equals_counting_everything() -> None:
    outcomes = [outcome(kind, model) for kind in ("succeeded", "failed") for model in "ab"] * 3
    merged = Progress.planned({"a": 6, "b": 6})
    for start in range(0, len(outcomes), 5):
        batch: dict[str, ModelProgress] = {}
        add_outcomes(batch, outcomes[start : start + 5])
        merged = merge_progress(merged, batch)

    assert (merged.completed, merged.failed, merged.percent) == (6, 6, 100.0)
    assert merged.by_model["a"] == ModelProgress(total=6, completed=3, failed=3)


# --- retry delays ----------------------------------------------------------------------------


def test_retry_delay_is_deterministic() -> None:
    assert retry_delay("run-1", 7, 2, None) == retry_delay("run-1", 7, 2, None)
    assert retry_delay("run-1", 7, 2, 5.0) == retry_delay("run-1", 7, 2, 5.0)


def test_retry_delay_jitter_differs_between_jobs() -> None:
    delays = {retry_delay("run-1", ordinal, 1, None) for ordinal in range(50)}

    assert len(delays) > 10


@pytest.mark.parametrize("attempt", range(1, 7))
@pytest.mark.parametrize("ordinal", range(20))
def test_backoff_is_exponential_with_at_most_25_percent_jitter(attempt: int, ordinal: int) -> None:
    base = BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)

    delay = retry_delay("run-x", ordinal, attempt, None)

    assert base <= delay <= base * MAX_JITTER


@pytest.mark.parametrize("attempt", [8, 10, 30])
def test_backoff_is_capped(attempt: int) -> None:
    assert retry_delay("run-x", 3, attempt, None) == BACKOFF_MAX_SECONDS


@pytest.mark.parametrize("retry_after", [0.5, 1.0, 30.0, 90.0])
@pytest.mark.parametrize("ordinal", range(10))
def test_retry_after_is_honoured_with_jitter(retry_after: float, ordinal: int) -> None:
    delay = retry_delay("run-x", ordinal, 1, retry_after)

    assert retry_after <= delay <= retry_after * MAX_JITTER


def test_retry_after_replaces_the_backoff_even_on_late_attempts() -> None:
    delay = retry_delay("run-x", 0, 6, 1.0)

    assert delay <= MAX_JITTER


@pytest.mark.parametrize("retry_after", [None, 0.0, -3.0])
def test_missing_or_non_positive_retry_after_falls_back_to_backoff(
    retry_after: float | None,
) -> None:
    assert retry_delay("run-x", 4, 3, retry_after) == retry_delay("run-x", 4, 3, None)
    assert retry_delay("run-x", 4, 3, retry_after) >= BACKOFF_BASE_SECONDS * 4


def test_retry_after_is_honoured_beyond_the_backoff_cap() -> None:
    # Retrying before the provider's Retry-After only earns another 429.
    assert 600.0 <= retry_delay("run-x", 0, 1, 600.0) <= 750.0
    assert retry_delay("run-x", 0, 1, 10 * 3600.0) == RETRY_AFTER_MAX_SECONDS


# --- final status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "completed", "failed", "status"),
    [
        (10, 10, 0, RunStatus.COMPLETED),
        (10, 9, 1, RunStatus.COMPLETED),
        (10, 1, 9, RunStatus.COMPLETED),
        (10, 0, 10, RunStatus.FAILED),
        (1, 0, 1, RunStatus.FAILED),
        (0, 0, 0, RunStatus.COMPLETED),
    ],
)
def test_final_status_fails_only_when_every_job_failed(
    total: int, completed: int, failed: int, status: RunStatus
) -> None:
    finished = progress(total, m=ModelProgress(total=total, completed=completed, failed=failed))

    assert final_status(finished) is status
