"""A run's transcripts spread over small partitions that order as their row keys do."""

from __future__ import annotations

import random
from collections import Counter

from evalruns.domain.expansion import scenario_id
from evalruns.domain.transcripts import job_key
from evalruns.storage.transcripts import partition_of

RUN = "0f" * 16
MODELS = ("a", "a-b", "a.b", "a0", "b", "mock-small")


def keys() -> list[str]:
    return [
        job_key(model, scenario_id(number), sample)
        for model in MODELS
        for number in (1, 2, 9, 10, 11, 99, 100, 101, 12345)
        for sample in (1, 2, 100)
    ]


def test_partitions_order_as_their_row_keys() -> None:
    shuffled = keys()
    random.Random(5).shuffle(shuffled)

    by_table_order = sorted(shuffled, key=lambda key: (partition_of(RUN, key), key))

    assert by_table_order == sorted(shuffled)


def test_a_partition_holds_at_most_ten_scenarios_of_one_model() -> None:
    everything = [
        job_key(model, scenario_id(number), sample)
        for model in MODELS
        for number in range(1, 251)
        for sample in range(1, 3)
    ]

    scenarios = Counter(partition_of(RUN, key) for key in everything if key.endswith("!001"))

    assert max(scenarios.values()) == 10
    assert len(scenarios) == len(MODELS) * 26  # scenarios 1-9, 10-19, ..., 250


def test_every_partition_of_a_run_sorts_inside_its_range_and_no_other_runs() -> None:
    partitions = {partition_of(RUN, key) for key in keys()}
    longer_run = RUN + "0"  # a run id that extends this one must fall outside

    assert all(RUN + "!" <= p < RUN + '"' for p in partitions)
    assert not any(RUN + "!" <= partition_of(longer_run, key) < RUN + '"' for key in keys())
