"""The run's ledger: lanes it opens, the work it hands out, the reports it counts once, the
budget it reserves, the summary queue and the pace it keeps per provider."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from evalruns.domain.ledger import (
    ClaimRequest,
    ClaimResult,
    Gate,
    Group,
    LaneMark,
    Ledger,
    Report,
    StopReason,
)
from evalruns.domain.runs import ModelProgress, RunStatus
from evalruns.domain.scheduler import (
    DECREASE,
    MAX_CLAIM,
    MAX_REST_SECONDS,
    MIN_REST_SECONDS,
    Pace,
    WorkItem,
)

RUN = "run-1"
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
# Each provider's execution index maps to an ordinal of its own range.
OFFSETS = {"alpha": 0, "beta": 1000}

# --- factories -------------------------------------------------------------------------------


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ordinal_of(group: str, index: int) -> int:
    return OFFSETS[group] + index


def make_ledger(
    counts: dict[str, int] | None = None,
    cap: int = 2,
    summary_cap: int = 1,
    summaries: bool = True,
    worst_case_job_usd: float = 0.0,
) -> Ledger:
    counts = {"alpha": 100} if counts is None else counts
    return Ledger(
        groups={name: Group(count=count, pace=Pace.open(cap)) for name, count in counts.items()},
        summary_cap=summary_cap,
        summaries=summaries,
        worst_case_job_usd=worst_case_job_usd,
    )


def lane(group: str, slot: int = 0, round_: int = 1) -> str:
    return f"{RUN}:{round_}:{group}:{slot}"


def request(
    lane_id: str,
    seq: int,
    *,
    want: int = MAX_CLAIM,
    report: Report | None = None,
    release: bool = False,
    returned: Iterable[WorkItem] = (),
    now: datetime = T0,
) -> ClaimRequest:
    return ClaimRequest(
        lane_id=lane_id,
        seq=seq,
        at=now,
        want=want,
        report=report or Report(),
        release=release,
        returned=list(returned),
    )


def claim(
    ledger: Ledger,
    lane_id: str,
    seq: int,
    *,
    want: int = MAX_CLAIM,
    report: Report | None = None,
    release: bool = False,
    returned: Iterable[WorkItem] = (),
    status: RunStatus = RunStatus.RUNNING,
    budget: float | None = None,
    now: datetime = T0,
) -> ClaimResult:
    asked = request(
        lane_id, seq, want=want, report=report, release=release, returned=returned, now=now
    )
    return ledger.claim(asked, Gate(status=status, budget_usd=budget), now, ordinal_of)


def ordinals(result: ClaimResult) -> list[int]:
    return [item.ordinal for item in result.items]


def done(model: str, completed: int = 0, failed: int = 0, cost: float = 0.0) -> Report:
    return Report(
        by_model={model: ModelProgress(completed=completed, failed=failed, cost_usd=cost)},
        finished=completed + failed,
    )


# --- opening lanes ---------------------------------------------------------------------------


def test_lanes_open_for_every_slot_of_every_provider_with_ids_by_round_group_and_slot() -> None:
    ledger = make_ledger({"alpha": 10, "beta": 10}, summary_cap=2)
    ledger.groups["alpha"].pace = Pace.open(3)

    opened = ledger.open_lanes(RUN, RunStatus.RUNNING)

    assert set(opened) == {
        "run-1:1:alpha:0",
        "run-1:1:alpha:1",
        "run-1:1:alpha:2",
        "run-1:1:beta:0",
        "run-1:1:beta:1",
        "run-1:1:summary:0",  # one summary lane until transcripts wait for more
    }
    assert opened["run-1:1:beta:1"] == LaneMark(kind="probe", group="beta", slot=1)
    assert opened["run-1:1:summary:0"] == LaneMark(kind="summary", group="", slot=0)
    assert ledger.lanes == opened
    assert ledger.round == 1


def test_a_provider_gets_no_more_lanes_than_it_has_jobs_and_none_without_jobs() -> None:
    ledger = make_ledger({"alpha": 2, "beta": 0}, cap=4, summary_cap=1)

    opened = ledger.open_lanes(RUN, RunStatus.RUNNING)

    assert sorted(opened) == [lane("alpha", 0), lane("alpha", 1), "run-1:1:summary:0"]


def test_opening_again_fills_only_slots_whose_lane_finished() -> None:
    ledger = make_ledger({"alpha": 10}, cap=2, summary_cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    assert ledger.open_lanes(RUN, RunStatus.RUNNING) == {}
    assert ledger.round == 1

    claim(ledger, lane("alpha", 0), 1, release=True)
    opened = ledger.open_lanes(RUN, RunStatus.RUNNING)

    assert list(opened) == [lane("alpha", 0, round_=2)]
    assert ledger.round == 2
    # The finished lane's mark is cleared; the others stay.
    assert set(ledger.lanes) == {lane("alpha", 1), lane("alpha", 0, 2), "run-1:1:summary:0"}


@pytest.mark.parametrize(
    ("jobs", "summary_cap", "queued", "expected"),
    [
        (1, 8, 0, 1),  # nothing queued yet: one summary lane
        (3, 8, 0, 1),  # however many probe lanes
        (1, 8, 3, 2),  # three transcripts waiting: one lane for two
        (1, 8, 9, 5),
        (1, 2, 9, 2),  # the summariser's cap
    ],
)
def test_summary_lanes_follow_the_queue_up_to_the_cap(
    jobs: int, summary_cap: int, queued: int, expected: int
) -> None:
    ledger = make_ledger({"alpha": jobs}, cap=4, summary_cap=summary_cap)
    ledger.enqueue(range(50, 50 + queued))

    opened = ledger.open_lanes(RUN, RunStatus.RUNNING)

    summary = [lane_id for lane_id, mark in opened.items() if mark.kind == "summary"]
    assert len([mark for mark in opened.values() if mark.kind == "probe"]) == jobs
    assert sorted(summary) == [f"run-1:1:summary:{slot}" for slot in range(expected)]


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.PENDING,
        RunStatus.PAUSED,
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
    ],
)
def test_no_lanes_open_unless_the_run_is_running_or_summarizing(status: RunStatus) -> None:
    ledger = make_ledger({"alpha": 10}, summary_cap=2)
    ledger.enqueue([1, 2, 3])

    assert ledger.open_lanes(RUN, status) == {}
    assert ledger.lanes == {}
    assert ledger.round == 0


def test_a_summarizing_run_opens_only_summary_lanes() -> None:
    ledger = make_ledger({"alpha": 10}, summary_cap=2)
    ledger.enqueue([1, 2, 3])

    opened = ledger.open_lanes(RUN, RunStatus.SUMMARIZING)

    assert sorted(opened) == ["run-1:1:summary:0", "run-1:1:summary:1"]


def test_no_summary_lanes_for_a_run_without_summaries() -> None:
    ledger = make_ledger({"alpha": 10}, summary_cap=2, summaries=False)

    opened = ledger.open_lanes(RUN, RunStatus.RUNNING)

    assert sorted(opened) == [lane("alpha", 0), lane("alpha", 1)]


def test_no_lanes_once_the_summaries_are_done() -> None:
    ledger = make_ledger({"alpha": 3}, summary_cap=2)
    ledger.groups["alpha"].next = 3

    assert ledger.open_lanes(RUN, RunStatus.SUMMARIZING) == {}
    assert ledger.round == 0


# --- claiming jobs ---------------------------------------------------------------------------


def test_a_probe_claim_hands_out_fresh_ordinals_of_its_provider() -> None:
    ledger = make_ledger({"alpha": 100, "beta": 100}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    alpha = claim(ledger, lane("alpha"), 1)
    beta = claim(ledger, lane("beta"), 1, want=3)

    assert ordinals(alpha) == list(range(16))
    assert ordinals(beta) == [1000, 1001, 1002]
    assert all(item.attempt == 1 and item.due is None for item in alpha.items)
    assert not alpha.exhausted
    assert (ledger.groups["alpha"].next, ledger.groups["beta"].next) == (16, 3)
    assert ledger.lanes[lane("alpha")].holding == 16
    assert ledger.lanes[lane("alpha")].seq == 1


def test_the_next_claim_continues_after_the_cursor_with_smaller_claims() -> None:
    ledger = make_ledger({"alpha": 20}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    first = claim(ledger, lane("alpha"), 1)
    second = claim(ledger, lane("alpha"), 2)

    assert ordinals(first) == list(range(10))  # 20 left for 1 lane: 20 // 2
    assert ordinals(second) == list(range(10, 15))  # 10 left: 10 // 2


def test_a_claim_says_exhausted_when_its_provider_runs_dry() -> None:
    ledger = make_ledger({"alpha": 3}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    results = [claim(ledger, lane("alpha"), seq) for seq in range(1, 5)]

    assert [ordinals(result) for result in results] == [[0], [1], [2], []]
    assert [result.exhausted for result in results] == [False, False, True, True]
    assert ledger.groups["alpha"].next == 3


def test_an_unknown_lane_is_told_it_is_done_and_changes_nothing() -> None:
    ledger = make_ledger({"alpha": 10})
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    before = ledger.model_copy(deep=True)

    result = claim(ledger, lane("alpha", 0, round_=7), 1, report=done("m", completed=3))

    assert result == ClaimResult(exhausted=True)
    assert ledger == before


# --- redelivered claims ----------------------------------------------------------------------


def test_a_redelivered_claim_gets_the_same_answer_and_counts_its_report_once() -> None:
    ledger = make_ledger({"alpha": 100}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    claim(ledger, lane("alpha"), 1, want=4)
    report = done("m", completed=2, cost=0.5).model_copy(update={"succeeded": [0, 1]})
    second = request(lane("alpha"), 2, want=4, report=report)

    first = ledger.claim(second, Gate(status=RunStatus.RUNNING), T0, ordinal_of)
    stored = Ledger.model_validate_json(ledger.model_dump_json())
    again = stored.claim(second, Gate(status=RunStatus.RUNNING), at(1), ordinal_of)

    assert ordinals(first) == [4, 5, 6, 7]
    assert again == first
    assert stored.answered(second) == first
    assert stored.progress == {"m": ModelProgress(completed=2, cost_usd=0.5)}
    assert stored.queue == [(0, 1)]
    assert stored.groups["alpha"].next == 8
    assert stored.lanes[lane("alpha")].holding == 6
    assert stored.answered(request(lane("alpha"), 3)) is None


def test_a_redelivered_release_after_its_lane_was_cleared_changes_nothing() -> None:
    ledger = make_ledger({"alpha": 100}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    claim(ledger, lane("alpha"), 1, want=2)
    returned = [WorkItem(ordinal=0), WorkItem(ordinal=1)]
    release = request(lane("alpha"), 2, release=True, returned=returned)
    gate = Gate(status=RunStatus.RUNNING)
    ledger.claim(release, gate, T0, ordinal_of)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    again = ledger.claim(release, gate, T0, ordinal_of)

    assert again.exhausted
    assert ledger.groups["alpha"].returned == returned


@pytest.mark.parametrize(
    ("report", "result", "release", "expected"),
    [
        (Report(), ClaimResult(), False, True),
        (Report(), ClaimResult(rest_seconds=2.5), False, True),
        (Report(), ClaimResult(idle=True), False, True),
        (Report(calls=1), ClaimResult(), False, False),
        (Report(succeeded=[3]), ClaimResult(), False, False),
        (Report(), ClaimResult(items=[WorkItem(ordinal=1)]), False, False),
        (Report(), ClaimResult(exhausted=True), False, False),
        (Report(), ClaimResult(stop="paused"), False, False),
        (Report(), ClaimResult(), True, False),
    ],
)
def test_only_an_empty_report_with_an_empty_answer_changes_nothing(
    report: Report, result: ClaimResult, release: bool, expected: bool
) -> None:
    asked = request(lane("alpha"), 2, report=report, release=release)

    assert Ledger.changes_nothing(asked, result) is expected


def test_a_lanes_first_claim_is_always_stored_so_the_run_knows_it_runs() -> None:
    first = request(lane("alpha"), 1)

    assert not Ledger.changes_nothing(first, ClaimResult(idle=True))


# --- releases and returned work --------------------------------------------------------------


def test_a_release_takes_back_what_the_lane_held_and_finishes_it() -> None:
    ledger = make_ledger({"alpha": 100}, cap=2)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    claim(ledger, lane("alpha", 0), 1, want=4)
    later = WorkItem(ordinal=3, attempt=2, due=at(30))
    returned = [WorkItem(ordinal=2), later]

    result = claim(
        ledger, lane("alpha", 0), 2, report=done("m", completed=2), release=True, returned=returned
    )

    mark = ledger.lanes[lane("alpha", 0)]
    assert result.exhausted
    assert (mark.finished, mark.holding) == (True, 0)
    assert ledger.groups["alpha"].returned == returned
    assert ledger.progress["m"].completed == 2
    assert [mark.slot for mark in ledger.active("probe")] == [1]

    # Another lane gets the returned item that is due first, then fresh jobs.
    again = claim(ledger, lane("alpha", 1), 1, want=4, now=at(1))

    assert ordinals(again) == [2, 4, 5, 6]
    assert ledger.groups["alpha"].returned == [later]
    assert ledger.groups["alpha"].next == 7


def test_returned_work_not_yet_due_makes_the_lane_rest_until_it_is() -> None:
    later = WorkItem(ordinal=3, attempt=2, due=at(30))
    ledger = Ledger(groups={"alpha": Group(count=5, next=5, returned=[later], pace=Pace.open(2))})
    assert list(ledger.open_lanes(RUN, RunStatus.RUNNING)) == [lane("alpha"), "run-1:1:summary:0"]

    early = claim(ledger, lane("alpha"), 1)
    almost = claim(ledger, lane("alpha"), 2, now=at(29.9))
    due = claim(ledger, lane("alpha"), 3, now=at(30))

    assert early == ClaimResult(rest_seconds=30.0)
    assert almost == ClaimResult(rest_seconds=MIN_REST_SECONDS)
    assert due.items == [later]
    assert due.exhausted
    assert ledger.groups["alpha"].returned == []


def test_a_summary_lane_returns_its_transcripts_to_the_summary_pool() -> None:
    ledger = make_ledger({"alpha": 1})
    ledger.enqueue([7, 8])
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    summary = "run-1:1:summary:0"
    claim(ledger, summary, 1)

    claim(ledger, summary, 2, release=True, returned=[WorkItem(ordinal=8)])

    assert ledger.summary_returned == [WorkItem(ordinal=8)]
    assert ledger.groups["alpha"].returned == []
    assert ledger.queued() == 1


# --- the run's status ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "stop"),
    [
        (RunStatus.PAUSED, "paused"),
        (RunStatus.PENDING, "paused"),
        (RunStatus.COMPLETED, "ended"),
        (RunStatus.FAILED, "ended"),
        (RunStatus.CANCELLED, "ended"),
    ],
)
def test_a_claim_on_a_run_that_is_not_running_stops_the_lane_but_counts_its_report(
    status: RunStatus, stop: StopReason
) -> None:
    ledger = make_ledger({"alpha": 100}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    claim(ledger, lane("alpha"), 1, want=2)

    result = claim(ledger, lane("alpha"), 2, report=done("m", completed=2), status=status)

    assert result == ClaimResult(stop=stop)
    assert ledger.groups["alpha"].next == 2
    assert ledger.progress["m"].completed == 2


def test_a_paused_run_still_takes_back_what_a_lane_releases() -> None:
    ledger = make_ledger({"alpha": 100}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    held = claim(ledger, lane("alpha"), 1, want=3).items

    result = claim(ledger, lane("alpha"), 2, release=True, returned=held, status=RunStatus.PAUSED)

    assert result.exhausted
    assert ledger.groups["alpha"].returned == held
    assert ledger.lanes[lane("alpha")].finished


def test_a_summary_lane_claims_while_the_run_is_summarizing() -> None:
    ledger = make_ledger({"alpha": 0})
    ledger.enqueue([4, 5])
    ledger.open_lanes(RUN, RunStatus.SUMMARIZING)

    result = claim(ledger, "run-1:1:summary:0", 1, status=RunStatus.SUMMARIZING)

    assert ordinals(result) == [4, 5]


# --- budget ----------------------------------------------------------------------------------


def test_a_claim_gets_no_more_jobs_than_the_budget_covers_at_their_worst() -> None:
    ledger = make_ledger({"alpha": 100}, cap=2, worst_case_job_usd=0.3)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    first = claim(ledger, lane("alpha", 0), 1, budget=1.0)
    second = claim(ledger, lane("alpha", 1), 1, budget=1.0)

    assert ordinals(first) == [0, 1, 2]
    assert ledger.reserved_usd() == pytest.approx(0.9)
    assert second == ClaimResult(stop="budget")
    assert ledger.groups["alpha"].next == 3


def test_finished_jobs_release_their_reservation_and_count_what_they_cost() -> None:
    ledger = make_ledger({"alpha": 100}, cap=2, worst_case_job_usd=0.3)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    claim(ledger, lane("alpha", 0), 1, budget=1.0)

    # Two of three jobs finished for 0.1 each: 1.0 - 0.2 spent - 0.3 reserved covers one more.
    result = claim(ledger, lane("alpha", 0), 2, report=done("m", 2, cost=0.2), budget=1.0)

    assert ledger.spent_usd() == pytest.approx(0.2)
    assert ordinals(result) == [3]
    assert ledger.lanes[lane("alpha", 0)].holding == 2
    assert ledger.reserved_usd() == pytest.approx(0.6)


def test_a_release_frees_the_lanes_reservation() -> None:
    ledger = make_ledger({"alpha": 100}, cap=2, worst_case_job_usd=0.3)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    held = claim(ledger, lane("alpha", 0), 1, budget=1.0).items

    claim(ledger, lane("alpha", 0), 2, release=True, returned=held, budget=1.0)
    result = claim(ledger, lane("alpha", 1), 1, budget=1.0)

    assert ordinals(result) == [0, 1, 2]


def test_only_probe_lanes_reserve_budget() -> None:
    ledger = make_ledger(worst_case_job_usd=0.5)
    ledger.lanes = {
        "p": LaneMark(kind="probe", group="alpha", slot=0, holding=3),
        "s": LaneMark(kind="summary", group="", slot=0, holding=5),
    }

    assert ledger.reserved_usd() == pytest.approx(1.5)


def test_without_a_worst_case_the_budget_stops_claims_only_once_spent() -> None:
    ledger = make_ledger({"alpha": 100}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    before = claim(ledger, lane("alpha"), 1, budget=1.0)
    after = claim(ledger, lane("alpha"), 2, report=done("m", 16, cost=1.0), budget=1.0)

    assert len(before.items) == 16
    assert after == ClaimResult(stop="budget")


def test_no_budget_no_limit() -> None:
    ledger = make_ledger({"alpha": 100}, cap=1, worst_case_job_usd=1000.0)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    assert len(claim(ledger, lane("alpha"), 1).items) == 16


def test_a_lane_with_no_jobs_left_is_told_exhausted_even_when_the_budget_is_spent() -> None:
    ledger = make_ledger({"alpha": 2}, cap=1, worst_case_job_usd=0.5)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    claim(ledger, lane("alpha"), 1, budget=1.0)
    claim(ledger, lane("alpha"), 2, budget=1.0)
    assert ledger.groups["alpha"].next == 2

    # Both jobs done for 0.3 each: 0.4 left, less than one worst case, and nothing left to run.
    result = claim(ledger, lane("alpha"), 3, report=done("m", 2, cost=0.6), budget=1.0)

    assert result.stop is None
    assert result.exhausted


# --- reports ---------------------------------------------------------------------------------


def test_reports_add_progress_per_model() -> None:
    ledger = make_ledger({"alpha": 100}, cap=2)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    first = Report(
        by_model={
            "a": ModelProgress(completed=2, cost_usd=0.25, input_tokens=10, output_tokens=20),
            "b": ModelProgress(failed=1),
        }
    )
    second = Report(
        by_model={"a": ModelProgress(completed=1, failed=1, cost_usd=0.5, input_tokens=5)}
    )

    claim(ledger, lane("alpha", 0), 1, report=first)
    claim(ledger, lane("alpha", 1), 1, report=second)

    assert ledger.progress == {
        "a": ModelProgress(completed=3, failed=1, cost_usd=0.75, input_tokens=15, output_tokens=20),
        "b": ModelProgress(failed=1),
    }
    assert ledger.spent_usd() == pytest.approx(0.75)


def test_succeeded_jobs_are_queued_for_summaries() -> None:
    ledger = make_ledger({"alpha": 100})
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    claim(ledger, lane("alpha"), 1, report=Report(succeeded=[5, 3, 4, 9]))

    assert ledger.queue == [(3, 5), (9, 9)]
    assert ledger.queued() == 4


def test_a_run_without_summaries_queues_nothing() -> None:
    ledger = make_ledger({"alpha": 100}, summaries=False)
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    claim(ledger, lane("alpha"), 1, report=Report(succeeded=[5, 3]))

    assert ledger.queue == []


def test_summary_reports_count_summaries_written_and_failed() -> None:
    ledger = make_ledger({"alpha": 100})
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    claim(ledger, "run-1:1:summary:0", 1, report=Report(summarised=3, summary_failed=1))
    claim(ledger, "run-1:1:summary:0", 2, report=Report(summarised=2))

    assert (ledger.summarised, ledger.summary_failed) == (5, 1)
    assert ledger.progress == {}


# --- claiming summaries ----------------------------------------------------------------------


def test_summary_claims_take_the_lowest_queued_jobs_greedily() -> None:
    ledger = make_ledger({"alpha": 100})
    ledger.enqueue(range(40))
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    summary = "run-1:1:summary:0"

    first = claim(ledger, summary, 1, want=5)
    second = claim(ledger, summary, 2, want=100)

    assert ordinals(first) == [0, 1, 2, 3, 4]
    assert ordinals(second) == list(range(5, 5 + MAX_CLAIM))
    assert ledger.queue == [(21, 39)]
    assert not second.exhausted


def test_a_summary_lane_idles_while_probes_run_and_nothing_is_queued() -> None:
    ledger = make_ledger({"alpha": 100})
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    result = claim(ledger, "run-1:1:summary:0", 1)

    assert result == ClaimResult(idle=True)


def test_a_summary_lane_is_done_once_probes_are_done_and_nothing_is_queued() -> None:
    ledger = make_ledger({"alpha": 1}, cap=1)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    summary = "run-1:1:summary:0"
    claim(ledger, lane("alpha"), 1)
    claim(ledger, lane("alpha"), 2, report=Report(succeeded=[0], finished=1))

    still_probing = claim(ledger, summary, 1)
    claim(ledger, lane("alpha"), 3, release=True)
    last = claim(ledger, summary, 2)
    after = claim(ledger, summary, 3)

    assert ordinals(still_probing) == [0]
    assert not still_probing.exhausted
    assert ordinals(last) == []
    assert last.exhausted
    assert after.exhausted


def test_returned_summaries_that_are_due_go_first() -> None:
    ledger = make_ledger({"alpha": 0})
    waiting = WorkItem(ordinal=8, attempt=2, due=at(60))
    ledger.summary_returned = [WorkItem(ordinal=7, attempt=2, due=T0), waiting]
    ledger.enqueue([1, 2])
    ledger.open_lanes(RUN, RunStatus.SUMMARIZING)
    summary = "run-1:1:summary:0"

    result = claim(ledger, summary, 1, status=RunStatus.SUMMARIZING)
    then = claim(ledger, summary, 2, status=RunStatus.SUMMARIZING)

    assert [(item.ordinal, item.attempt) for item in result.items] == [(7, 2), (1, 1), (2, 1)]
    assert ledger.summary_returned == [waiting]
    # The returned summary is not due yet: the lane comes back when it is, and is not done.
    assert then.rest_seconds == 60.0
    assert not then.exhausted and not then.items


def test_a_summary_report_only_claim_takes_nothing() -> None:
    ledger = make_ledger({"alpha": 100})
    ledger.enqueue([1, 2, 3])
    ledger.open_lanes(RUN, RunStatus.RUNNING)

    result = claim(ledger, "run-1:1:summary:0", 1, want=0)

    assert result == ClaimResult()
    assert ledger.queue == [(1, 3)]


# --- the summary queue -----------------------------------------------------------------------


def test_the_queue_keeps_sorted_ranges() -> None:
    ledger = Ledger()

    ledger.enqueue([5, 3, 4, 9, 1])

    assert ledger.queue == [(1, 1), (3, 5), (9, 9)]


def test_the_queue_ignores_duplicates() -> None:
    ledger = Ledger()
    ledger.enqueue([5, 3, 4, 9, 1])

    ledger.enqueue([3, 4, 5, 1, 9, 9])

    assert ledger.queue == [(1, 1), (3, 5), (9, 9)]
    assert ledger.queued() == 5


def test_ranges_merge_as_their_gaps_fill() -> None:
    ledger = Ledger()
    ledger.enqueue([5, 3, 4, 9, 1])

    ledger.enqueue([2])
    assert ledger.queue == [(1, 5), (9, 9)]
    ledger.enqueue([7])
    assert ledger.queue == [(1, 5), (7, 7), (9, 9)]
    ledger.enqueue([6, 8])
    assert ledger.queue == [(1, 9)]
    ledger.enqueue([0, 10])
    assert ledger.queue == [(0, 10)]


@pytest.mark.parametrize("seed", range(20))
def test_the_queue_holds_exactly_the_jobs_enqueued_in_any_order(seed: int) -> None:
    rng = random.Random(seed)
    jobs = [rng.randrange(60) for _ in range(80)]
    ledger = Ledger()

    for start in range(0, len(jobs), 7):
        ledger.enqueue(jobs[start : start + 7])

    assert ledger.queue == sorted(ledger.queue)
    assert all(
        first <= last and last + 1 < after
        for (first, last), (after, _) in zip(ledger.queue, ledger.queue[1:], strict=False)
    )
    assert ledger.dequeue(1000) == sorted(set(jobs))


def test_dequeue_takes_the_lowest_first() -> None:
    ledger = Ledger()
    ledger.enqueue([1, 2, 5, 6, 7, 8, 9])

    assert ledger.dequeue(0) == []
    assert ledger.dequeue(3) == [1, 2, 5]
    assert ledger.queue == [(6, 9)]
    assert ledger.dequeue(2) == [6, 7]
    assert ledger.queue == [(8, 9)]
    assert ledger.dequeue(100) == [8, 9]
    assert ledger.queue == []
    assert ledger.dequeue(5) == []


# --- done ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fresh", [False, True])
@pytest.mark.parametrize("returned", [False, True])
@pytest.mark.parametrize("active", [False, True])
def test_probes_are_done_with_no_job_left_returned_or_in_a_lane(
    fresh: bool, returned: bool, active: bool
) -> None:
    ledger = Ledger(
        groups={
            "alpha": Group(count=4, next=4, pace=Pace.open(1)),
            "beta": Group(
                count=4,
                next=3 if fresh else 4,
                returned=[WorkItem(ordinal=1001)] if returned else [],
                pace=Pace.open(1),
            ),
        },
        lanes={
            "finished": LaneMark(kind="probe", group="beta", slot=0, finished=True),
            "summary": LaneMark(kind="summary", group="", slot=0),
        },
    )
    if active:
        ledger.lanes["probe"] = LaneMark(kind="probe", group="alpha", slot=0)

    assert ledger.probes_done is not (fresh or returned or active)


@pytest.mark.parametrize("probing", [False, True])
@pytest.mark.parametrize("summarising", [False, True])
@pytest.mark.parametrize("queued", [False, True])
@pytest.mark.parametrize("returned", [False, True])
def test_summaries_are_done_after_the_probes_with_nothing_queued_returned_or_in_a_lane(
    probing: bool, summarising: bool, queued: bool, returned: bool
) -> None:
    ledger = Ledger(groups={"alpha": Group(count=4, next=3 if probing else 4, pace=Pace.open(1))})
    if summarising:
        ledger.lanes["summary"] = LaneMark(kind="summary", group="", slot=0)
    if queued:
        ledger.enqueue([2])
    if returned:
        ledger.summary_returned = [WorkItem(ordinal=1)]

    assert ledger.summaries_done is not (probing or summarising or queued or returned)


# --- pacing ----------------------------------------------------------------------------------


def test_a_lane_beyond_the_providers_pace_rests_and_gets_nothing() -> None:
    ledger = make_ledger({"alpha": 100}, cap=4)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    ledger.groups["alpha"].pace = Pace(cap=4, allowed=2.0)

    beyond = claim(ledger, lane("alpha", 2), 1)
    within = claim(ledger, lane("alpha", 1), 1, want=2)

    assert beyond == ClaimResult(rest_seconds=MAX_REST_SECONDS / 2)
    assert ledger.lanes[lane("alpha", 2)].holding == 0
    assert ordinals(within) == [0, 1]


def test_lane_reports_set_the_providers_pace() -> None:
    ledger = make_ledger({"alpha": 100}, cap=4)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    refused = Report(calls=4, limited=4)

    claim(ledger, lane("alpha", 0), 1, want=0, report=refused, now=T0)
    claim(ledger, lane("alpha", 1), 1, want=0, report=refused, now=at(1))
    result = claim(ledger, lane("alpha", 3), 1, now=at(1.5))

    assert ledger.groups["alpha"].pace.allowed == 4 * DECREASE
    assert result.rest_seconds > 0
    assert result.items == []


def test_summary_reports_leave_the_providers_pace_alone() -> None:
    ledger = make_ledger({"alpha": 100}, cap=4)
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    refused = Report(calls=4, limited=4)

    claim(ledger, "run-1:1:summary:0", 1, want=0, report=refused, now=T0)
    claim(ledger, "run-1:1:summary:0", 2, want=0, report=refused, now=at(1))

    assert ledger.groups["alpha"].pace == Pace.open(4)


@pytest.mark.parametrize(("taken", "exhausted"), [(50, False), (100, True)])
def test_a_report_only_claim_hands_out_nothing(taken: int, exhausted: bool) -> None:
    ledger = make_ledger({"alpha": 100}, cap=1)
    ledger.groups["alpha"].next = taken
    ledger.lanes = {lane("alpha"): LaneMark(kind="probe", group="alpha", slot=0)}

    result = claim(ledger, lane("alpha"), 1, want=0, report=Report(calls=1, limited=1))

    assert result == ClaimResult(exhausted=exhausted)
    assert ledger.groups["alpha"].next == taken
    assert ledger.lanes[lane("alpha")].holding == 0


def test_a_lane_beyond_the_pace_is_told_exhausted_once_its_provider_runs_dry() -> None:
    ledger = Ledger(groups={"alpha": Group(count=2, pace=Pace(cap=2, allowed=1.0))})
    ledger.open_lanes(RUN, RunStatus.RUNNING)
    claim(ledger, lane("alpha", 0), 1, want=2)
    claim(ledger, lane("alpha", 0), 2, want=2, report=done("m", 1))
    claim(ledger, lane("alpha", 0), 3, release=True, report=done("m", 1))
    assert ledger.groups["alpha"].next == 2

    results = [claim(ledger, lane("alpha", 1), seq, now=at(10 * seq)) for seq in range(1, 50)]

    assert any(result.exhausted for result in results)
