"""A lane: one slot of a provider's cap (or of the summariser's), with one call in flight.

A lane claims a few items from the run's ledger, works through them one activity at a time
(a probe lane one job per activity; a summary lane a few transcripts per activity, one after
the other), and claims again when it has nothing ready, carrying its report of what it did. A
retry waits in the lane until it is due while the lane goes on with other work; with nothing
else to do it sleeps on a durable timer. A pause caught by a call, or a claim refused, ends
the lane: it hands back what it holds and the run starts lanes again when it may.

`LaneState.next_action` decides; the lane orchestrator only carries the action out. Pure and
deterministic, for replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field

from evalruns.domain.base import ApiModel
from evalruns.domain.ledger import ClaimRequest, ClaimResult, LaneKind, Report
from evalruns.domain.runs import ModelProgress
from evalruns.domain.scheduler import MAX_CLAIM, Outcome, WorkItem, next_attempt

# A lane holding this many retries claims no more work until the first is due.
MAX_WAITING = 2 * MAX_CLAIM
# Summaries one activity writes, one after the other (a summary costs no storage read when
# its transcript was probed in the same process, so the activity itself is most of its cost):
# as many as take about SUMMARY_CALL_SECONDS, at most SUMMARY_BATCH, so a slow summariser
# still ends its last summaries side by side.
SUMMARY_BATCH = 4
SUMMARY_CALL_SECONDS = 0.5
# After claims that found nothing yet, a lane asks again after these waits; after the last it
# finishes (the run opens lanes again when there is work for them).
IDLE_WAITS = (0.25, 0.5, 0.5)
# A probe lane tells the ledger of jobs that succeeded at least this often, so their
# summaries start soon however many jobs its claim held.
REPORT_SECONDS = 1.0


@dataclass(frozen=True)
class Call:
    items: tuple[WorkItem, ...]


@dataclass(frozen=True)
class Claim:
    request: ClaimRequest


@dataclass(frozen=True)
class Sleep:
    until: datetime


@dataclass(frozen=True)
class Finish:
    pass


Action = Call | Claim | Sleep | Finish


class LaneState(ApiModel):
    """The lane orchestrator's input, carried across its continue-as-new generations."""

    run_id: str
    lane_id: str
    kind: LaneKind
    max_attempts: int
    seq: int = Field(default=0, description="claims made")
    held: list[WorkItem] = Field(default_factory=list, description="claimed, not started")
    waiting: list[WorkItem] = Field(default_factory=list, description="retries, until due")
    report: Report = Field(default_factory=Report, description="since the last claim")
    reported_at: datetime | None = Field(default=None, description="when the last claim was")
    exhausted: bool = Field(default=False, description="the ledger has no more for this lane")
    rest_until: datetime | None = None
    report_now: bool = Field(default=False, description="tell the ledger before the next call")
    stopping: bool = Field(default=False, description="hand everything back and finish")
    finished: bool = False
    idle_claims: int = Field(default=0, description="claims in a row that found nothing yet")
    limited_in_a_row: int = Field(default=0, description="calls in a row the provider refused")
    item_seconds: float = Field(
        default=SUMMARY_CALL_SECONDS, description="how long one item took, lately"
    )

    def next_action(self, now: datetime) -> Action:
        if self.finished:
            return Finish()
        if self.stopping:
            return self._claim(now, release=True)
        if self.report_now:
            return self._claim(now, want=0)
        if self.rest_until is not None and now < self.rest_until:
            return Sleep(self.rest_until)
        ready = [item for item in self.waiting if item.is_due(now)] + self.held
        if ready:
            if self._report_due(now):
                return self._claim(now, want=0)
            return Call(tuple(ready[: self.batch]))
        idle = self.idle_claims > len(IDLE_WAITS)
        if not self.exhausted and not idle and len(self.waiting) < MAX_WAITING:
            return self._claim(now, want=MAX_CLAIM if self.kind == "probe" else SUMMARY_BATCH)
        if self.waiting:
            if not self.report.is_empty:
                return self._claim(now, want=0)  # tell the ledger before a long sleep
            return Sleep(min(item.due for item in self.waiting if item.due is not None))
        return self._claim(now, release=True)

    def _report_due(self, now: datetime) -> bool:
        """Jobs succeeded since a while and the ledger has not heard of them yet."""
        if not self.report.succeeded or self.reported_at is None:
            return False
        return (now - self.reported_at).total_seconds() >= REPORT_SECONDS

    @property
    def batch(self) -> int:
        """Items one activity takes."""
        if self.kind == "probe":
            return 1
        return max(1, min(SUMMARY_BATCH, int(SUMMARY_CALL_SECONDS / max(self.item_seconds, 1e-3))))

    def _claim(self, now: datetime, want: int = 0, release: bool = False) -> Claim:
        returned = [*self.held, *self.waiting] if release else []
        return Claim(
            ClaimRequest(
                lane_id=self.lane_id,
                seq=self.seq + 1,
                at=now,
                want=0 if release else want,
                report=self.report,
                release=release,
                returned=returned,
            )
        )

    def claimed(self, request: ClaimRequest, result: ClaimResult, now: datetime) -> None:
        """Take in the ledger's answer to `request`."""
        self.seq = request.seq
        self.report = Report()
        self.report_now = False
        self.reported_at = now
        if request.release:
            self.held, self.waiting, self.finished = [], [], True
            return
        if result.stop is not None:
            self.stopping = True
            return
        self.held.extend(result.items)
        self.exhausted = self.exhausted or result.exhausted
        rest = result.rest_seconds
        if result.idle:
            rest = max(rest, IDLE_WAITS[min(self.idle_claims, len(IDLE_WAITS) - 1)])
            self.idle_claims += 1
        elif result.items:
            self.idle_claims = 0
        if rest > 0:
            until = now + timedelta(seconds=rest)
            self.rest_until = max(self.rest_until or until, until)

    def called(self, call: Call, outcomes: list[Outcome], now: datetime, took: float = 0.0) -> None:
        """Take in what the call did to each of its items (`took`: seconds since it began)."""
        if took > 0:
            self.item_seconds = 0.5 * self.item_seconds + 0.5 * took / len(call.items)
        for item, outcome in zip(call.items, outcomes, strict=True):
            if item in self.waiting:
                self.waiting.remove(item)
            elif item in self.held:
                self.held.remove(item)
            if outcome.called:
                self.report.calls += 1
                self.report.limited += outcome.rate_limited
                if not outcome.rate_limited:
                    self.report.busy_seconds += outcome.seconds
                self._back_off(outcome, now)
            if outcome.kind == "retry":
                self.waiting.append(next_attempt(self.run_id, item, outcome, now))
            elif outcome.kind in ("deferred", "stopped"):
                self.held.insert(0, item)
                self.stopping = True
            else:
                self._count(outcome)

    def _back_off(self, outcome: Outcome, now: datetime) -> None:
        """A provider that refuses this lane twice in a row is not asked by it again before
        its Retry-After (a refusal comes back at once: without this a lane would spin through
        its jobs collecting refusals); a refusal now and then changes nothing."""
        if not outcome.rate_limited:
            self.limited_in_a_row = 0
            return
        self.limited_in_a_row += 1
        if self.limited_in_a_row >= 2:
            after = (outcome.retry.after if outcome.retry else None) or 1.0
            until = now + timedelta(seconds=after)
            self.rest_until = max(self.rest_until or until, until)
            self.report_now = True  # the ledger's pace hears of it before the lane rests

    def _count(self, outcome: Outcome) -> None:
        report = self.report
        report.finished += 1
        if self.kind == "summary":
            report.summarised += outcome.kind == "done"
            report.summary_failed += outcome.kind == "failed"
            return
        done = outcome.kind == "done"
        report.by_model.setdefault(outcome.model_id, ModelProgress()).add(
            ModelProgress(
                completed=done,
                failed=not done,
                cost_usd=outcome.cost_usd,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
            )
        )
        if done:
            report.succeeded.append(outcome.ordinal)
