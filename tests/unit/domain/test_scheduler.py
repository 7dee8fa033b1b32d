"""The scheduler: retry delays, attempts and pacing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evalruns.domain.scheduler import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_MAX_SECONDS,
    DECREASE,
    HEADROOM,
    MAX_CLAIM,
    MAX_REST_SECONDS,
    MIN_REST_SECONDS,
    RETRY_AFTER_MAX_SECONDS,
    Outcome,
    Pace,
    Retry,
    WorkItem,
    claim_size,
    is_final,
    next_attempt,
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


# --- next attempts ---------------------------------------------------------------------------

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def retry_outcome(ordinal: int, after: float | None = None, limited: bool = False) -> Outcome:
    return Outcome(
        ordinal=ordinal,
        kind="retry",
        called=True,
        rate_limited=limited,
        retry=Retry(rate_limited=limited, after=after),
    )


def test_next_attempt_counts_the_attempt_and_waits_the_providers_retry_after() -> None:
    item = WorkItem(ordinal=5, attempt=2)

    following = next_attempt("run-x", item, retry_outcome(5, after=30.0, limited=True), T0)

    assert following.ordinal == 5
    assert following.attempt == 3
    assert following.due == T0 + timedelta(seconds=retry_delay("run-x", 5, 2, 30.0))
    assert at(30.0) <= following.due <= at(30.0 * MAX_JITTER)


def test_next_attempt_backs_off_from_the_current_attempt_without_a_retry_after() -> None:
    item = WorkItem(ordinal=5, attempt=3, due=at(-60))

    following = next_attempt("run-x", item, retry_outcome(5), T0)

    # Attempt 3 failed: the backoff is the third one (8 s), not the fourth (16 s).
    assert following.attempt == 4
    assert following.due == T0 + timedelta(seconds=retry_delay("run-x", 5, 3, None))
    assert at(BACKOFF_BASE_SECONDS * 4) <= following.due <= at(BACKOFF_BASE_SECONDS * 5)


def test_next_attempt_without_a_retry_verdict_backs_off() -> None:
    outcome = Outcome(ordinal=1, kind="retry")

    following = next_attempt("run-x", WorkItem(ordinal=1), outcome, T0)

    assert following.due == T0 + timedelta(seconds=retry_delay("run-x", 1, 1, None))


def test_next_attempt_is_due_only_once_its_delay_has_passed() -> None:
    following = next_attempt("run-x", WorkItem(ordinal=9), retry_outcome(9, after=10.0), T0)

    assert following.due is not None
    assert not following.is_due(following.due - timedelta(microseconds=1))
    assert following.is_due(following.due)
    assert WorkItem(ordinal=9).is_due(T0)


@pytest.mark.parametrize(
    ("attempt", "max_attempts", "final"),
    [(1, 3, False), (2, 3, False), (3, 3, True), (4, 3, True), (1, 1, True)],
)
def test_is_final_on_the_last_allowed_attempt(attempt: int, max_attempts: int, final: bool) -> None:
    assert is_final(attempt, max_attempts) is final


# --- claim sizes -----------------------------------------------------------------------------


def test_claims_are_large_while_much_work_remains() -> None:
    assert claim_size(10_000, 4) == MAX_CLAIM
    assert claim_size(32, 2) == 8


def test_claims_shrink_to_one_at_the_end() -> None:
    assert claim_size(5, 4) == 1
    assert claim_size(1, 1) == 1
    assert claim_size(0, 3) == 1


def test_more_lanes_take_smaller_claims() -> None:
    assert claim_size(100, 10) < claim_size(100, 2) <= MAX_CLAIM


def test_claim_sizes_never_grow_as_work_runs_out() -> None:
    sizes = [claim_size(remaining, 3) for remaining in range(500, -1, -1)]

    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("lanes", [0, 1, 2, 7, 50])
def test_claim_size_stays_between_one_and_max_claim(lanes: int) -> None:
    for remaining in range(0, 2_000, 7):
        assert 1 <= claim_size(remaining, lanes) <= MAX_CLAIM


# --- pace ------------------------------------------------------------------------------------


def reports(pace: Pace, *batches: tuple[float, int, int]) -> Pace:
    """The pace after lanes reported (seconds after T0, calls, limited) in turn."""
    for seconds, calls, limited in batches:
        pace = pace.after_report(calls, limited, at(seconds))
    return pace


def test_pace_opens_at_the_cap() -> None:
    pace = Pace.open(4)

    assert pace.allowed == 4.0
    assert [pace.admits(slot) for slot in range(6)] == [True] * 4 + [False] * 2
    assert pace.rest_seconds() == MIN_REST_SECONDS


def test_the_first_report_only_opens_a_window() -> None:
    pace = Pace.open(4).after_report(10, 10, T0)

    assert pace.allowed == 4.0
    assert (pace.calls, pace.limited, pace.window_start) == (10, 10, T0)


def test_a_report_without_calls_within_the_window_changes_nothing() -> None:
    pace = reports(Pace.open(4), (0, 3, 3))

    assert pace.after_report(0, 0, at(0.5)) == pace


def test_a_quiet_window_lets_one_more_lane_in() -> None:
    cut = reports(Pace.open(4), (0, 4, 4), (1.0, 4, 4))
    assert cut.allowed == 4 * DECREASE

    assert cut.after_report(0, 0, at(2.5)).allowed == 4 * DECREASE + 1


def test_a_refusing_window_cuts_the_allowed_lanes() -> None:
    pace = reports(Pace.open(8), (0, 4, 4), (1.0, 4, 3))

    assert pace.allowed == 8 * DECREASE
    assert (pace.calls, pace.limited, pace.window_start, pace.last_cut) == (0, 0, at(1), at(1))
    assert pace.admits(5)
    assert not pace.admits(6)
    assert pace.rest_seconds() == MAX_REST_SECONDS / 2


def test_lanes_reporting_the_same_burst_within_a_window_cut_once() -> None:
    # Ten lanes report the refusals of one burst over two seconds: one cut per window.
    burst = [(0.2 * lane, 3, 3) for lane in range(10)]

    pace = reports(Pace.open(8), *burst)

    assert pace.allowed == 8 * DECREASE


def test_a_refusing_window_after_the_next_cuts_again() -> None:
    pace = reports(Pace.open(8), (0, 4, 4), (1.0, 4, 4), (1.5, 4, 4), (2.0, 4, 4))

    assert pace.allowed == 8 * DECREASE * DECREASE


def test_no_cut_within_a_window_of_the_last_cut() -> None:
    pace = Pace(cap=8, allowed=8.0, calls=4, limited=4, window_start=T0, last_cut=at(0.5))

    pace = pace.after_report(4, 4, at(1.0))

    assert pace.allowed == 8.0


def test_windows_without_refusals_add_one_lane_up_to_the_cap() -> None:
    pace = Pace(cap=4, allowed=1.0)
    allowed = []
    for second in range(6):
        pace = pace.after_report(2, 0, at(second))
        allowed.append(pace.allowed)

    assert allowed == [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize("limited", [1, 2, 5])
def test_random_refusals_neither_cut_nor_raise_the_pace(limited: int) -> None:
    # 10%, 20% and exactly half of the window's calls refused: not "most of them".
    pace = reports(Pace(cap=8, allowed=4.0), (0, 5, 0), (0.5, 4, limited), (1.0, 1, 0))

    assert pace.allowed == 4.0


def test_one_lanes_bad_luck_does_not_slow_every_lane() -> None:
    pace = reports(Pace.open(8), (0, 2, 2), (0.3, 4, 0), (0.6, 4, 0), (1.0, 4, 0))

    assert pace.allowed == 8.0


def test_the_pace_never_falls_below_one_lane() -> None:
    pace = reports(Pace.open(4), *[(float(second), 10, 10) for second in range(30)])

    assert pace.allowed == 1.0
    assert pace.admits(0)
    assert not pace.admits(1)


def test_admits_by_whole_lanes() -> None:
    assert [Pace(cap=8, allowed=2.25).admits(slot) for slot in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    # A product of cuts that falls a hair short of a whole number still admits it.
    assert Pace(cap=4, allowed=3.0 - 1e-12).admits(2)
    assert Pace(cap=4, allowed=0.0).admits(0)


def test_lanes_beyond_a_cut_pace_rest_longer_than_at_the_cap() -> None:
    assert Pace(cap=4, allowed=3.0).rest_seconds() == MAX_REST_SECONDS / 2
    assert Pace(cap=4, allowed=4.0).rest_seconds() == MIN_REST_SECONDS


def test_a_refusing_provider_is_driven_just_under_the_rate_it_accepted() -> None:
    # 16 lanes, calls of 0.2 s; the provider accepted 50 calls in the window (50/s) and
    # refused 150: it fits 50 × 0.2 = 10 lanes, and the lanes are cut to 90% of that.
    pace = Pace.open(16).after_report(0, 0, at(0))
    cut = pace.after_report(200, 150, at(1.0), busy_seconds=50 * 0.2)

    assert cut.allowed == pytest.approx(10 * HEADROOM)
    assert [cut.admits(slot) for slot in (7, 8, 9)] == [True, True, False]
