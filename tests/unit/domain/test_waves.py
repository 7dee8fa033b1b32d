"""Wave composition: lanes, per-provider caps, deferred jobs first, and the budget."""

from __future__ import annotations

from collections import Counter

import pytest

from evalruns.domain.waves import Lane, affordable_jobs, lane_of, next_wave, work_left


def lanes(*sizes_and_caps: tuple[int, int], batch_size: int = 4) -> list[Lane]:
    result, first = [], 0
    for index, (size, cap) in enumerate(sizes_and_caps):
        result.append(Lane.sized(f"p{index}", first, first + size - 1, batch_size, cap))
        first += size
    return result


def drain(plan: list[Lane], parallel: int, affordable: int | None = None) -> list[list[list[int]]]:
    """Every wave until no work is left (no budget: each wave dispatches something)."""
    lane_next, deferred, waves = [lane.first for lane in plan], [], []
    while work_left(plan, lane_next, deferred):
        wave = next_wave(plan, lane_next, deferred, parallel, affordable)
        assert wave.batches, "a wave without a budget always dispatches"
        waves.append(wave.batches)
        lane_next, deferred = wave.lane_next, wave.deferred
    return waves


def test_lane_batches_never_exceed_the_cap() -> None:
    assert Lane.sized("p", 0, 99, batch_size=16, cap=8).batch_size == 8
    lane = Lane.sized("p", 0, 99, batch_size=4, cap=10)
    assert (lane.batch_size, lane.parallel) == (4, 2)
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


def test_deferred_jobs_go_first_and_keep_what_does_not_fit() -> None:
    plan = lanes((20, 8), batch_size=4)
    wave = next_wave(plan, [8], [[1, 2], [5, 6, 7]], parallel_batches=1, affordable=None)
    assert wave.batches == [[1, 2]]
    assert wave.deferred == [[5, 6, 7]]
    assert wave.lane_next == [8]


def test_the_budget_limits_the_jobs_of_a_wave() -> None:
    plan = lanes((20, 64), batch_size=4)
    wave = next_wave(plan, [0], [[17]], parallel_batches=8, affordable=6)
    assert wave.jobs == 6
    assert wave.batches == [[17], [0, 1, 2, 3], [4]]
    assert wave.lane_next == [5]
    assert next_wave(plan, [0], [], 8, affordable=0).batches == []


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
