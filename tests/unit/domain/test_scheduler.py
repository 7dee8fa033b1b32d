"""The scheduler: retry delays, attempts and pacing."""

from __future__ import annotations

import pytest

from evalruns.domain.scheduler import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_MAX_SECONDS,
    RETRY_AFTER_MAX_SECONDS,
    retry_delay,
)

MAX_JITTER = 1.25


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
