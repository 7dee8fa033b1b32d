"""Which jobs the next wave dispatches: per-provider lanes, caps, waiting jobs and the budget.

Pure and deterministic: the run orchestrator calls it while replaying.

Jobs are planned provider by provider, so each provider's jobs form one contiguous range of
ordinals, its lane. A wave takes batches from every lane with work, at most `parallel` batches
of `batch_size` jobs from a lane, so a provider never has more calls in flight than its cap
and a slow one cannot take every activity slot. Jobs waiting for a retry the provider asked to
be delayed hold their lane's room until they are due (a throttled provider gets no new calls
meanwhile) but no activity. Due jobs go before fresh ones. A budget limits the wave to the jobs
it can still afford at their worst-case cost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

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

    @property
    def room(self) -> int:
        """Jobs of this lane that may be in flight or waiting at once."""
        return self.batch_size * self.parallel


class JobGroup(ApiModel):
    """Jobs with their next attempt: a batch to dispatch, or jobs waiting to be dispatched
    again (a pause stopped them before their call: due at once; a provider asked them to
    retry later: due at `due`)."""

    ordinals: list[int]
    attempts: list[int]
    due: datetime | None = None

    def is_due(self, now: datetime) -> bool:
        return self.due is None or self.due <= now


@dataclass
class Wave:
    batches: list[JobGroup] = field(default_factory=list)
    lane_next: list[int] = field(default_factory=list)
    waiting: list[JobGroup] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(len(batch.ordinals) for batch in self.batches)


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
    waiting: list[JobGroup],
    parallel_batches: int,
    affordable: int | None,
    now: datetime,
) -> Wave:
    wave = Wave(lane_next=list(lane_next))
    room = [lane.room for lane in lanes]
    ready: list[list[tuple[int, int]]] = [[] for _ in lanes]
    later = []
    for group in waiting:
        if group.is_due(now):
            for ordinal, attempt in zip(group.ordinals, group.attempts, strict=True):
                ready[lane_of(lanes, ordinal)].append((ordinal, attempt))
        else:
            later.append(group)
            for ordinal in group.ordinals:
                room[lane_of(lanes, ordinal)] -= 1
    per_lane: Counter[int] = Counter()
    budget = affordable

    progressing = True
    while progressing and len(wave.batches) < parallel_batches and budget != 0:
        progressing = False
        for index, lane in enumerate(lanes):
            if len(wave.batches) >= parallel_batches or budget == 0:
                break
            size = min(lane.batch_size, room[index], lane.batch_size if budget is None else budget)
            if per_lane[index] >= lane.parallel or size <= 0:
                continue
            jobs, ready[index] = ready[index][:size], ready[index][size:]
            start = wave.lane_next[index]
            fresh = max(0, min(size - len(jobs), lane.last + 1 - start))
            jobs += [(ordinal, 1) for ordinal in range(start, start + fresh)]
            wave.lane_next[index] = start + fresh
            if not jobs:
                continue
            wave.batches.append(
                JobGroup(ordinals=[o for o, _ in jobs], attempts=[a for _, a in jobs])
            )
            per_lane[index] += 1
            room[index] -= len(jobs)
            if budget is not None:
                budget -= len(jobs)
            progressing = True
    wave.waiting = [
        JobGroup(ordinals=[o for o, _ in jobs], attempts=[a for _, a in jobs])
        for jobs in ready
        if jobs
    ] + later
    return wave


def work_left(lanes: list[Lane], lane_next: list[int], waiting: list[JobGroup]) -> bool:
    return bool(waiting) or any(n <= lane.last for n, lane in zip(lane_next, lanes, strict=True))


def next_due(waiting: list[JobGroup]) -> datetime | None:
    """When the earliest job waiting for a retry becomes due (None: none waits for one)."""
    return min((group.due for group in waiting if group.due is not None), default=None)


def consecutive_runs(ordinals: list[int]) -> list[tuple[int, int]]:
    """The distinct ordinals as inclusive ranges of consecutive numbers, in order."""
    runs: list[tuple[int, int]] = []
    for ordinal in sorted(set(ordinals)):
        if runs and runs[-1][1] == ordinal - 1:
            runs[-1] = (runs[-1][0], ordinal)
        else:
            runs.append((ordinal, ordinal))
    return runs


def lane_of(lanes: list[Lane], ordinal: int) -> int:
    for index, lane in enumerate(lanes):
        if lane.first <= ordinal <= lane.last:
            return index
    raise ValueError(f"job {ordinal} is in no lane")
