"""Seeded sampling: floor(n × p / 100) scenarios, at least one, reproducible from the seed."""

from __future__ import annotations

import pytest

from evalruns.domain.sampling import MAX_SEED, new_seed, sample_indices, sample_size

SEEDS = (0, 1, 42, 2024, MAX_SEED)


@pytest.mark.parametrize(
    ("total", "percentage", "expected"),
    [
        (125, 100, 125),
        (125, 10, 12),
        (125, 50, 62),
        (125, 1, 1),
        (7, 50, 3),
        (3, 1, 1),
        (1, 1, 1),
        (10, 99, 9),
        (100, 29, 29),
        (1000, 12.5, 125),
        (10, 33.3, 3),
        (10, 25.5, 2),
        (200, 0.5, 1),
        # 375 × 18.4 / 100 is 69 exactly, but 68.99999999999999 in floating point.
        (375, 18.4, 69),
        (375, 32.8, 123),
    ],
)
def test_sample_size_is_floor_of_n_times_p_with_a_minimum_of_one(
    total: int, percentage: float, expected: int
) -> None:
    assert sample_size(total, percentage) == expected


@pytest.mark.parametrize(
    ("total", "percentage"),
    [(125, 10), (125, 1), (125, 50), (7, 50), (3, 1), (1000, 12.5), (375, 18.4), (10, 33.3)],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_selection_is_sorted_unique_in_range_and_of_the_right_size(
    total: int, percentage: float, seed: int
) -> None:
    selection = sample_indices(total, percentage, seed)

    assert len(selection) == sample_size(total, percentage)
    assert selection == sorted(set(selection))
    assert all(0 <= index < total for index in selection)


@pytest.mark.parametrize("seed", SEEDS)
def test_same_seed_gives_the_same_selection(seed: int) -> None:
    assert sample_indices(1000, 10, seed) == sample_indices(1000, 10, seed)


def test_recorded_random_seed_reproduces_the_selection() -> None:
    seed = new_seed()

    assert sample_indices(5000, 3.5, seed) == sample_indices(5000, 3.5, seed)


@pytest.mark.parametrize(
    ("total", "percentage", "seed", "expected"),
    [
        (125, 10, 42, [9, 16, 21, 47, 60, 67, 70, 80, 96, 98, 99, 101]),
        (1000, 1, 2024, [94, 116, 246, 284, 351, 525, 663, 771, 797, 800]),
    ],
)
def test_a_recorded_seed_keeps_its_selection_across_versions(
    total: int, percentage: float, seed: int, expected: list[int]
) -> None:
    # Runs record their seed so a re-run samples the same scenarios: a change of algorithm
    # that would select others for a recorded seed must fail here.
    assert sample_indices(total, percentage, seed) == expected


def test_different_seeds_give_different_selections() -> None:
    selections = {tuple(sample_indices(1000, 50, seed)) for seed in SEEDS}

    assert len(selections) == len(SEEDS)


def test_selection_is_spread_rather_than_a_prefix() -> None:
    selection = sample_indices(1000, 10, 7)

    assert selection != list(range(100))
    assert max(selection) > 500


def test_one_percent_of_125_keeps_one_scenario() -> None:
    (only,) = sample_indices(125, 1, 3)

    assert 0 <= only < 125


@pytest.mark.parametrize("seed", SEEDS)
def test_one_hundred_percent_keeps_everything_in_order(seed: int) -> None:
    assert sample_indices(125, 100, seed) == list(range(125))


def test_float_percentages_are_accepted() -> None:
    selection = sample_indices(1000, 12.5, 11)

    assert len(selection) == 125


def test_single_scenario_is_always_kept() -> None:
    assert sample_indices(1, 1, 5) == [0]


def test_nothing_to_sample_gives_nothing() -> None:
    assert sample_indices(0, 50, 1) == []


def test_new_seed_fits_the_recorded_range() -> None:
    seeds = [new_seed() for _ in range(50)]

    assert all(0 <= seed < MAX_SEED for seed in seeds)
    assert len(set(seeds)) > 1
