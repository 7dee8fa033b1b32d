"""Which jobs the next wave dispatches: per-provider lanes, caps and the budget.

Pure and deterministic: the run orchestrator calls it while replaying.

Jobs are planned provider by provider, so each provider's jobs form one contiguous range of
ordinals, its lane. A wave takes batches from every lane with work, at most `parallel` batches
of `batch_size` jobs from a lane (batch size × parallel ≤ the provider's concurrency cap), so a
provider never has more calls in flight than its cap and a slow one cannot take every activity
slot. Jobs a pause deferred go first. A budget limits the wave to the jobs it can still afford
at their worst-case cost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from evalruns.domain.base import ApiModel


class Lane(ApiModel):
    provider: str
    first: int
    last: int
    batch_size: int
    parallel: int

    @classmethod
    def sized(cls, provider: str, first: int, last: int, batch_size: int, cap: int) -> Lane:
        """A lane whose batches in flight never exceed the provider's cap."""
        size = max(1, min(batch_size, cap))
        return cls(
            provider=provider, first=first, last=last, batch_size=size, parallel=max(1, cap // size)
        )


@dataclass
class Wave:
    batches: list[list[int]] = field(default_factory=list)
    lane_next: list[int] = field(default_factory=list)
    deferred: list[list[int]] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(len(batch) for batch in self.batches)


def affordable_jobs(spent: float, budget: float | None, worst_case_job: float) -> int | None:
    """How many more jobs the budget allows at their worst-case cost (None: no budget)."""
    if budget is None:
        return None
    if worst_case_job <= 0:
        return None if spent < budget else 0
    return max(0, int((budget - spent) / worst_case_job + 1e-9))


def next_wave(
    lanes: list[Lane],
    lane_next: list[int],
    deferred: list[list[int]],
    parallel_batches: int,
    affordable: int | None,
) -> Wave:
    wave = Wave(lane_next=list(lane_next), deferred=[])
    per_lane: Counter[int] = Counter()
    budget = affordable

    def take(lane: int, ordinals: list[int]) -> list[int]:
        nonlocal budget
        if budget is not None:
            ordinals = ordinals[:budget]
            budget -= len(ordinals)
        if ordinals:
            wave.batches.append(ordinals)
            per_lane[lane] += 1
        return ordinals

    for ordinals in deferred:
        owner = lane_of(lanes, ordinals[0])
        if len(wave.batches) < parallel_batches and per_lane[owner] < lanes[owner].parallel:
            taken = take(owner, ordinals)
            rest = ordinals[len(taken) :]
        else:
            rest = ordinals
        if rest:
            wave.deferred.append(rest)

    progressing = True
    while progressing and len(wave.batches) < parallel_batches and budget != 0:
        progressing = False
        for index, lane in enumerate(lanes):
            start = wave.lane_next[index]
            if start > lane.last or per_lane[index] >= lane.parallel:
                continue
            if len(wave.batches) >= parallel_batches or budget == 0:
                break
            batch = list(range(start, min(lane.last + 1, start + lane.batch_size)))
            wave.lane_next[index] = start + len(take(index, batch))
            progressing = True
    return wave


def work_left(lanes: list[Lane], lane_next: list[int], deferred: list[list[int]]) -> bool:
    return bool(deferred) or any(n <= lane.last for n, lane in zip(lane_next, lanes, strict=True))


def lane_of(lanes: list[Lane], ordinal: int) -> int:
    for index, lane in enumerate(lanes):
        if lane.first <= ordinal <= lane.last:
            return index
    raise ValueError(f"job {ordinal} is in no lane")
