"""Wave composition: lanes, per-provider caps, waiting jobs (deferred or retrying), the budget."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from evalruns.domain.waves import (
    JobGroup,
    Lane,
    affordable_jobs,
    consecutive_runs,
    lane_of,
    next_due,
    next_wave,
    work_left,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def lanes(*sizes_and_caps: tuple[int, int], batch_size: int = 4) -> list[Lane]:
    result, first = [], 0
    for index, (size, cap) in enumerate(sizes_and_caps):
        result.append(Lane.sized(f"p{index}", first, first + size - 1, batch_size, cap))
        first += size
    return result


def group(*ordinals: int, attempt: int = 1, due: datetime | None = None) -> JobGroup:
    return JobGroup(ordinals=list(ordinals), attempts=[attempt] * len(ordinals), due=due)


def drain(plan: list[Lane], parallel: int, affordable: int | None = None) -> list[list[list[int]]]:
    """Every wave until no work is left (no budget: each wave dispatches something)."""
    lane_next, waiting, waves = [lane.first for lane in plan], list[JobGroup](), []
    while work_left(plan, lane_next, waiting):
        wave = next_wave(plan, lane_next, waiting, parallel, affordable, NOW)
        assert wave.batches, "a wave without a budget always dispatches"
        waves.append([batch.ordinals for batch in wave.batches])
        lane_next, waiting = wave.lane_next, wave.waiting
    return waves


def test_lane_batches_never_exceed_the_cap() -> None:
    assert Lane.sized("p", 0, 99, batch_size=16, cap=8).batch_size == 8
    lane = Lane.sized("p", 0, 99, batch_size=4, cap=10)
    assert (lane.batch_size, lane.parallel, lane.room) == (4, 2, 8)
    assert Lane.sized("p", 0, 9, batch_size=4, cap=0).parallel == 1


def test_waves_cover_every_ordinal_exactly_once() -> None:
    plan = lanes((37, 8), (5, 64), (20, 4))
    ordinals = [o for wave in drain(plan, parallel=6) for batch in wave for o in batch]
    assert sorted(ordinals) == list(range(62))
    assert len(ordinals) == 62


def test_no_wave_puts_more_than_a_providers_cap_in_flight() -> None:
    plan = lanes((100, 8), (100, 64), batch_size=4)
    for wave in drain(plan, parallel=50):
        in_flight = Counter(lane_of(plan, batch[0]) for batch in wave for _ in batch)
        assert in_flight[0] <= 8 and in_flight[1] <= 64
        # Every lane with work gets a share: a capped provider never crowds out another.
        assert set(in_flight) == {0, 1} or sum(in_flight.values()) < 72


def test_batches_stay_inside_one_lane() -> None:
    plan = lanes((6, 4), (6, 4), batch_size=4)
    for wave in drain(plan, parallel=10):
        for batch in wave:
            assert len({lane_of(plan, o) for o in batch}) == 1


def test_parallel_batches_bounds_a_wave() -> None:
    plan = lanes((100, 100), batch_size=4)
    assert all(len(wave) <= 3 for wave in drain(plan, parallel=3))


def test_due_jobs_go_first_with_their_attempts_and_keep_what_does_not_fit() -> None:
    plan = lanes((20, 8), batch_size=4)
    waiting = [group(1, 2), group(5, 6, 7, attempt=3)]
    wave = next_wave(plan, [8], waiting, parallel_batches=1, affordable=None, now=NOW)
    assert [(b.ordinals, b.attempts) for b in wave.batches] == [([1, 2, 5, 6], [1, 1, 3, 3])]
    assert wave.waiting == [group(7, attempt=3)]
    assert wave.lane_next == [8]


def test_a_batch_tops_up_due_jobs_with_fresh_ones() -> None:
    plan = lanes((20, 8), batch_size=4)
    wave = next_wave(plan, [8], [group(1, attempt=2)], parallel_batches=1, affordable=None, now=NOW)
    assert [(b.ordinals, b.attempts) for b in wave.batches] == [([1, 8, 9, 10], [2, 1, 1, 1])]
    assert wave.waiting == [] and wave.lane_next == [11]


def test_jobs_waiting_for_a_retry_hold_their_lanes_room_until_due() -> None:
    plan = lanes((40, 8), (40, 8), batch_size=4)  # 8 in flight or waiting per provider
    later = NOW + timedelta(seconds=30)
    waiting = [group(0, 1, 2, 3, 4, 5, attempt=2, due=later)]
    wave = next_wave(plan, [8, 40], waiting, parallel_batches=10, affordable=None, now=NOW)
    assert [b.ordinals for b in wave.batches] == [[8, 9], [40, 41, 42, 43], [44, 45, 46, 47]]
    assert wave.waiting == waiting  # not due: nothing of it dispatched, nothing lost
    assert next_due(wave.waiting) == later
    # A provider asking every job to wait gets no new call until the first is due ...
    full = [group(*range(8), attempt=2, due=later)]
    wave = next_wave(plan[:1], [8], full, parallel_batches=10, affordable=None, now=NOW)
    assert wave.batches == [] and work_left(plan[:1], [8], full)
    # ... and then those jobs go first, with their next attempt.
    wave = next_wave(plan[:1], [8], full, parallel_batches=10, affordable=None, now=later)
    assert [b.ordinals for b in wave.batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all(b.attempts == [2] * 4 for b in wave.batches)


def test_waiting_never_exceeds_the_room_so_state_stays_bounded() -> None:
    """Even if every call is asked to wait, at most a lane's room of jobs waits."""
    plan = lanes((1000, 16), batch_size=4)
    lane_next, waiting, now = [0], list[JobGroup](), NOW
    for step in range(50):
        wave = next_wave(plan, lane_next, waiting, 8, None, now)
        lane_next, waiting = wave.lane_next, wave.waiting
        for batch in wave.batches:  # every call rejected with a 10 s wait
            attempts = [attempt + 1 for attempt in batch.attempts]
            due = now + timedelta(seconds=10)
            waiting.append(JobGroup(ordinals=batch.ordinals, attempts=attempts, due=due))
        assert sum(len(g.ordinals) for g in waiting) <= plan[0].room
        now += timedelta(seconds=step % 3 * 5)
    assert lane_next[0] < 1000  # a throttled provider is not flooded with fresh jobs


def test_the_budget_limits_the_jobs_of_a_wave() -> None:
    plan = lanes((20, 64), batch_size=4)
    wave = next_wave(plan, [0], [group(17)], parallel_batches=8, affordable=6, now=NOW)
    assert wave.jobs == 6
    assert [b.ordinals for b in wave.batches] == [[17, 0, 1, 2], [3, 4]]
    assert wave.lane_next == [5]
    assert next_wave(plan, [0], [], 8, affordable=0, now=NOW).batches == []


@pytest.mark.parametrize(
    ("spent", "budget", "worst", "jobs"),
    [
        (0, None, 1.0, None),
        (0, 10, 1.0, 10),
        (9.5, 10, 1.0, 0),
        (0, 1, 0.3, 3),
        (2, 1, 0.1, 0),
        (0, 5, 0.0, None),
        (5, 5, 0.0, 0),
    ],
)
def test_affordable_jobs(
    spent: float, budget: float | None, worst: float, jobs: int | None
) -> None:
    assert affordable_jobs(spent, budget, worst) == jobs


def test_consecutive_runs_split_a_batch_into_ranges_to_read() -> None:
    assert consecutive_runs([1203, 3, 1200, 1201, 1202, 4, 9]) == [(3, 4), (9, 9), (1200, 1203)]
    assert consecutive_runs([5]) == [(5, 5)]
    assert consecutive_runs([]) == []
