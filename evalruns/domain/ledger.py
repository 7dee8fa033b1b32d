"""A run's ledger: the one source lanes claim work from and report what they did to.

One document per run (stored with an ETag, so claims from many lanes never both win). It holds,
per provider, a cursor over the jobs to run and the jobs handed back (a pause caught them, or
their lane stopped), the provider's pace; the queue of transcripts waiting for a summary; the
progress the lanes reported; and, per lane, its last claim. A claim carries the lane's sequence
number: a redelivered claim finds its answer here and changes nothing, so claims and the
reports they carry count once however often Durable delivers them.

Pure: the storage layer reads and writes the document, the functions here decide.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field

from evalruns.domain.base import ApiModel
from evalruns.domain.runs import ModelProgress, RunStatus
from evalruns.domain.scheduler import MAX_CLAIM, MIN_REST_SECONDS, Pace, WorkItem, claim_size

LaneKind = Literal["probe", "summary"]
StopReason = Literal["paused", "ended", "budget"]
# Transcripts waiting for a summary per summary lane the run opens.
SUMMARY_SHARE = 2


class Report(ApiModel):
    """What a lane did since its previous claim."""

    by_model: dict[str, ModelProgress] = Field(default_factory=dict)
    succeeded: list[int] = Field(default_factory=list, description="jobs to summarise")
    summarised: int = 0
    summary_failed: int = 0
    finished: int = Field(default=0, description="items that will not be tried again")
    calls: int = 0
    limited: int = 0
    busy_seconds: float = Field(default=0.0, description="time the accepted calls took")

    @property
    def is_empty(self) -> bool:
        return self == Report()


class ClaimRequest(ApiModel):
    lane_id: str
    seq: int = Field(description="the lane's claim number, 1-based: redeliveries repeat it")
    at: datetime = Field(description="the lane's (orchestration) time of the claim")
    want: int = Field(default=1, ge=0, description="0: only report")
    report: Report = Field(default_factory=Report)
    release: bool = Field(default=False, description="the lane stops: take back `returned`")
    returned: list[WorkItem] = Field(default_factory=list)


class ClaimResult(ApiModel):
    items: list[WorkItem] = Field(default_factory=list)
    exhausted: bool = Field(default=False, description="no more work will come to this lane")
    rest_seconds: float = Field(default=0.0, description="ask again after this long")
    idle: bool = Field(default=False, description="nothing yet: ask again after a while")
    stop: StopReason | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing was handed out and nothing ends: the claim changed nothing."""
        return not self.items and not self.exhausted and self.stop is None


class Group(ApiModel):
    """One provider's jobs: `count` to run, handed out from `next` (execution order)."""

    count: int
    next: int = 0
    returned: list[WorkItem] = Field(default_factory=list)
    pace: Pace


class LaneMark(ApiModel):
    kind: LaneKind
    group: str = Field(description="the provider (probe lanes)")
    slot: int
    seq: int = 0
    holding: int = Field(default=0, description="claimed items not finished (budget)")
    last: ClaimResult | None = None
    finished: bool = False


class Gate(ApiModel):
    """What the run record says when a lane claims."""

    status: RunStatus
    budget_usd: float | None = None


class Ledger(ApiModel):
    groups: dict[str, Group] = Field(default_factory=dict)
    summary_cap: int = 1
    summaries: bool = Field(default=True, description="successful jobs get a summary")
    queue: list[tuple[int, int]] = Field(
        default_factory=list, description="ranges of jobs to summarise, in order"
    )
    summary_returned: list[WorkItem] = Field(default_factory=list)
    progress: dict[str, ModelProgress] = Field(default_factory=dict)
    summarised: int = 0
    summary_failed: int = 0
    worst_case_job_usd: float = 0.0
    lanes: dict[str, LaneMark] = Field(default_factory=dict)
    round: int = 0

    # -- views ---------------------------------------------------------------------------------

    def fresh_left(self, group: str) -> int:
        entry = self.groups[group]
        return entry.count - entry.next

    def active(self, kind: LaneKind, group: str | None = None) -> list[LaneMark]:
        return [
            lane
            for lane in self.lanes.values()
            if not lane.finished and lane.kind == kind and (group is None or lane.group == group)
        ]

    @property
    def probes_done(self) -> bool:
        return not self.active("probe") and all(
            entry.next >= entry.count and not entry.returned for entry in self.groups.values()
        )

    @property
    def summaries_done(self) -> bool:
        return (
            self.probes_done
            and not self.active("summary")
            and not self.queue
            and not self.summary_returned
        )

    def queued(self) -> int:
        """Transcripts waiting for a summary."""
        return sum(last - first + 1 for first, last in self.queue) + len(self.summary_returned)

    def spent_usd(self) -> float:
        return sum(entry.cost_usd for entry in self.progress.values())

    def reserved_usd(self) -> float:
        holding = sum(lane.holding for lane in self.lanes.values() if lane.kind == "probe")
        return holding * self.worst_case_job_usd

    # -- claims --------------------------------------------------------------------------------

    def claim(
        self,
        request: ClaimRequest,
        gate: Gate,
        now: datetime,
        ordinal_of: Callable[[str, int], int],
    ) -> ClaimResult:
        """Apply the lane's report and hand it work (changes this ledger in place).

        `ordinal_of(group, index)` maps a provider's execution index to the job's ordinal.
        A claim with nothing to report that gets nothing (`changes_nothing`) need not be
        stored: asked again, it is simply decided again.
        """
        lane = self.lanes.get(request.lane_id)
        answered = self.answered(request)
        if answered is not None or lane is None:
            return answered or ClaimResult(exhausted=True)
        self._apply(lane, request.report, now)
        lane.seq = request.seq
        if request.release:
            self._give_back(lane, request.returned)
            lane.finished = True
            lane.holding = 0
            result = ClaimResult(exhausted=True)
        elif gate.status.is_terminal:
            result = ClaimResult(stop="ended")
        elif gate.status not in (RunStatus.RUNNING, RunStatus.SUMMARIZING):
            result = ClaimResult(stop="paused")
        elif lane.kind == "probe":
            result = self._claim_jobs(lane, request.want, gate, now, ordinal_of)
        else:
            result = self._claim_summaries(lane, request.want, now)
        lane.last = result
        return result

    @staticmethod
    def changes_nothing(request: ClaimRequest, result: ClaimResult) -> bool:
        """Nothing to store: no report, nothing handed out, not the lane's first claim (which
        tells the run that the lane is running)."""
        return (
            request.seq > 1 and not request.release and request.report.is_empty and result.is_empty
        )

    def answered(self, request: ClaimRequest) -> ClaimResult | None:
        """The answer already given to this claim (a redelivery), None for a new one."""
        lane = self.lanes.get(request.lane_id)
        if lane is None:
            # A finished lane's redelivered release, after its mark was cleared.
            return ClaimResult(exhausted=True)
        if request.seq <= lane.seq and lane.last is not None:
            return lane.last
        return None

    def _apply(self, lane: LaneMark, report: Report, now: datetime) -> None:
        for model, done in report.by_model.items():
            self.progress.setdefault(model, ModelProgress()).add(done)
        self.summarised += report.summarised
        self.summary_failed += report.summary_failed
        lane.holding = max(0, lane.holding - report.finished)
        if report.succeeded and self.summaries:
            self.enqueue(report.succeeded)
        if lane.kind == "probe" and report.calls:
            group = self.groups[lane.group]
            group.pace = group.pace.after_report(
                report.calls, report.limited, now, report.busy_seconds
            )

    def _give_back(self, lane: LaneMark, items: list[WorkItem]) -> None:
        if lane.kind == "probe":
            self.groups[lane.group].returned.extend(items)
        else:
            self.summary_returned.extend(items)

    def _claim_jobs(
        self,
        lane: LaneMark,
        want: int,
        gate: Gate,
        now: datetime,
        ordinal_of: Callable[[str, int], int],
    ) -> ClaimResult:
        group = self.groups[lane.group]
        if self.fresh_left(lane.group) == 0 and not group.returned:
            return ClaimResult(exhausted=True)
        group.pace = group.pace.after_report(0, 0, now)  # a quiet window lets lanes back in
        if not group.pace.admits(lane.slot):
            return ClaimResult(rest_seconds=group.pace.rest_seconds())
        if want == 0:
            return ClaimResult()
        lanes = max(1, len(self.active("probe", lane.group)))
        take = min(want, claim_size(self.fresh_left(lane.group) + len(group.returned), lanes))
        affordable = self._affordable(gate)
        if affordable is not None and take > affordable:
            take = affordable
            if take == 0:
                return ClaimResult(stop="budget")
        due = [item for item in group.returned if item.is_due(now)]
        items = due[:take]
        group.returned = [item for item in group.returned if item not in items]
        fresh = min(take - len(items), self.fresh_left(lane.group))
        items += [
            WorkItem(ordinal=ordinal_of(lane.group, index))
            for index in range(group.next, group.next + fresh)
        ]
        group.next += fresh
        lane.holding += len(items)
        exhausted = self.fresh_left(lane.group) == 0 and not group.returned
        if not items and not exhausted:
            # Only returned items that are not due yet: come back when the first is.
            first = min(item.due for item in group.returned if item.due is not None)
            return ClaimResult(rest_seconds=max(MIN_REST_SECONDS, (first - now).total_seconds()))
        return ClaimResult(items=items, exhausted=exhausted)

    def _affordable(self, gate: Gate) -> int | None:
        """Jobs the budget still covers at their worst case (None: no budget)."""
        if gate.budget_usd is None:
            return None
        left = gate.budget_usd - self.spent_usd() - self.reserved_usd()
        if self.worst_case_job_usd <= 0:
            return None if left > 0 else 0
        return max(0, int(left / self.worst_case_job_usd + 1e-9))

    def _claim_summaries(self, lane: LaneMark, want: int, now: datetime) -> ClaimResult:
        if want == 0:
            return ClaimResult()
        # While jobs are probed, a lane takes what it asked for (a few); once they are all
        # done, the rest is shared among the lanes, so the last summaries run side by side.
        lanes = max(1, len(self.active("summary")))
        take = min(want, MAX_CLAIM)
        if self.probes_done:
            take = min(take, max(1, -(-self.queued() // lanes)))
        due = [item for item in self.summary_returned if item.is_due(now)]
        items = due[:take]
        self.summary_returned = [item for item in self.summary_returned if item not in items]
        items += [WorkItem(ordinal=ordinal) for ordinal in self.dequeue(take - len(items))]
        if items:
            return ClaimResult(items=items)
        if self.summary_returned:
            first = min(item.due for item in self.summary_returned if item.due is not None)
            return ClaimResult(rest_seconds=max(MIN_REST_SECONDS, (first - now).total_seconds()))
        if self.probes_done:
            return ClaimResult(exhausted=True)
        return ClaimResult(idle=True)

    # -- the summary queue ----------------------------------------------------------------------

    def enqueue(self, ordinals: Iterable[int]) -> None:
        """Add jobs to the queue, kept as sorted ranges that merge as gaps fill."""
        for ordinal in ordinals:
            at = bisect.bisect_left(self.queue, (ordinal, ordinal))
            before = self.queue[at - 1] if at > 0 else None
            after = self.queue[at] if at < len(self.queue) else None
            if (before and before[1] >= ordinal) or (after and after[0] == ordinal):
                continue  # already queued
            joins_before = before is not None and before[1] == ordinal - 1
            joins_after = after is not None and after[0] == ordinal + 1
            if joins_before and joins_after:
                assert before is not None and after is not None
                self.queue[at - 1 : at + 1] = [(before[0], after[1])]
            elif joins_before:
                assert before is not None
                self.queue[at - 1] = (before[0], ordinal)
            elif joins_after:
                assert after is not None
                self.queue[at] = (ordinal, after[1])
            else:
                self.queue.insert(at, (ordinal, ordinal))

    def dequeue(self, count: int) -> list[int]:
        taken: list[int] = []
        while self.queue and len(taken) < count:
            first, last = self.queue[0]
            end = min(last, first + count - len(taken) - 1)
            taken.extend(range(first, end + 1))
            if end == last:
                self.queue.pop(0)
            else:
                self.queue[0] = (end + 1, last)
        return taken

    # -- lanes ----------------------------------------------------------------------------------

    def open_lanes(self, run_id: str, status: RunStatus) -> dict[str, LaneMark]:
        """Register lanes for every free slot that has work, for a run in `status`; their ids
        are `<run>:<round>:<group or 'summary'>:<slot>`. Returns the new lanes' marks."""
        if status not in (RunStatus.RUNNING, RunStatus.SUMMARIZING):
            return {}
        self.round += 1
        opened: dict[str, LaneMark] = {}
        if status == RunStatus.RUNNING:
            for name, group in self.groups.items():
                work = group.count - group.next + len(group.returned)
                taken = {lane.slot for lane in self.active("probe", name)}
                free = [slot for slot in range(group.pace.cap) if slot not in taken]
                for slot in free[:work]:
                    lane_id = f"{run_id}:{self.round}:{name}:{slot}"
                    opened[lane_id] = LaneMark(kind="probe", group=name, slot=slot)
        if self.summaries and not self.summaries_done:
            # As many summary lanes as the queue keeps busy (one while it is empty): an idle
            # lane soon finishes, and the next tick opens lanes again as the queue grows.
            active = self.active("summary")
            wanted = min(self.summary_cap, max(1, len(active), -(-self.queued() // SUMMARY_SHARE)))
            taken = {lane.slot for lane in active}
            free = [slot for slot in range(self.summary_cap) if slot not in taken]
            for slot in free[: wanted - len(active)]:
                lane_id = f"{run_id}:{self.round}:summary:{slot}"
                opened[lane_id] = LaneMark(kind="summary", group="", slot=slot)
        if not opened:
            self.round -= 1
        self.lanes = {
            lane_id: lane for lane_id, lane in self.lanes.items() if not lane.finished
        } | opened
        return opened

    def active_lane_ids(self) -> list[str]:
        return [lane_id for lane_id, lane in self.lanes.items() if not lane.finished]
