"""A lane's decisions, driven with synthetic claim answers and call outcomes: what it claims,
calls, sleeps on and reports, and how it hands its work back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evalruns.domain.lanes import (
    IDLE_WAITS,
    MAX_WAITING,
    REPORT_SECONDS,
    SUMMARY_BATCH,
    Action,
    Call,
    Claim,
    Finish,
    LaneState,
    Sleep,
)
from evalruns.domain.ledger import ClaimRequest, ClaimResult, LaneKind, Report
from evalruns.domain.orchestration import WorkInput
from evalruns.domain.runs import ModelProgress
from evalruns.domain.scheduler import MAX_CLAIM, Outcome, Retry, WorkItem, retry_delay

RUN = "run-1"
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

# --- factories -------------------------------------------------------------------------------


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_lane(kind: LaneKind = "probe", max_attempts: int = 3) -> LaneState:
    return LaneState(run_id=RUN, lane_id=f"{RUN}:1:mock:0", kind=kind, max_attempts=max_attempts)


def items(*ordinals: int) -> list[WorkItem]:
    return [WorkItem(ordinal=ordinal) for ordinal in ordinals]


def expect_claim(action: Action) -> ClaimRequest:
    assert isinstance(action, Claim), action
    return action.request


def expect_call(action: Action) -> Call:
    assert isinstance(action, Call), action
    return action


def answer(lane: LaneState, result: ClaimResult, now: datetime = T0) -> ClaimRequest:
    """The lane claims (its next action must be a claim) and takes in `result`."""
    asked = expect_claim(lane.next_action(now))
    lane.claimed(asked, result, now)
    return asked


def call(lane: LaneState, outcome: Outcome, now: datetime = T0) -> Call:
    """The lane calls its next item (its next action must be a call) with `outcome`."""
    action = expect_call(lane.next_action(now))
    assert [item.ordinal for item in action.items] == [outcome.ordinal]
    lane.called(action, [outcome], now)
    return action


def done(ordinal: int, model: str = "m", cost: float = 0.0, tokens: int = 0) -> Outcome:
    return Outcome(
        ordinal=ordinal,
        kind="done",
        model_id=model,
        cost_usd=cost,
        input_tokens=tokens,
        output_tokens=2 * tokens,
        called=True,
    )


def failed(ordinal: int, model: str = "m") -> Outcome:
    return Outcome(ordinal=ordinal, kind="failed", model_id=model, called=True)


def retry(ordinal: int, after: float | None = None, limited: bool = False) -> Outcome:
    return Outcome(
        ordinal=ordinal,
        kind="retry",
        model_id="m",
        called=True,
        rate_limited=limited,
        retry=Retry(rate_limited=limited, after=after),
    )


# --- claiming and calling --------------------------------------------------------------------


def test_a_fresh_lane_claims_a_full_batch() -> None:
    lane = new_lane()

    asked = expect_claim(lane.next_action(T0))

    assert asked == ClaimRequest(
        lane_id=f"{RUN}:1:mock:0", seq=1, at=T0, want=MAX_CLAIM, report=Report()
    )
    assert not asked.release


def test_claimed_items_are_called_one_at_a_time_in_order() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(4, 2, 9)))

    calls = [
        call(lane, done(ordinal), at(n / 10)).items[0].ordinal
        for n, ordinal in enumerate([4, 2, 9])
    ]
    following = expect_claim(lane.next_action(at(0.3)))

    assert calls == [4, 2, 9]
    assert following.seq == 2
    assert following.want == MAX_CLAIM
    assert following.at == at(0.3)


def test_the_last_allowed_attempt_is_called_final() -> None:
    lane = new_lane(max_attempts=2)
    answer(lane, ClaimResult(items=[WorkItem(ordinal=1), WorkItem(ordinal=2, attempt=2)]))

    first = call(lane, done(1))
    second = call(lane, done(2))

    final = [WorkInput(run_id=RUN, items=list(c.items), max_attempts=2) for c in (first, second)]
    assert [work.final(work.items[0]) for work in final] == [False, True]


def test_a_retry_waits_in_the_lane_while_it_goes_on_with_the_next_item() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3)))

    call(lane, retry(1, after=10.0))
    following = lane.next_action(T0)

    delay = retry_delay(RUN, 1, 1, 10.0)
    assert lane.waiting == [WorkItem(ordinal=1, attempt=2, due=T0 + timedelta(seconds=delay))]
    assert following == Call((WorkItem(ordinal=2),))
    assert lane.held == items(2, 3)


def test_a_due_retry_is_called_before_fresh_items() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3)))
    call(lane, retry(1, after=5.0))
    due = lane.waiting[0].due
    assert due is not None

    before = lane.next_action(due - timedelta(milliseconds=1))
    after = lane.next_action(due)

    assert before == Call((WorkItem(ordinal=2),))
    assert after == Call((lane.waiting[0],))
    assert expect_call(after).items[0].attempt == 2


def test_the_retry_of_a_retry_is_final_at_the_last_attempt() -> None:
    lane = new_lane(max_attempts=2)
    answer(lane, ClaimResult(items=items(1), exhausted=True))
    call(lane, retry(1))
    due = lane.waiting[0].due
    assert due is not None

    assert lane.next_action(due) == Call((WorkItem(ordinal=1, attempt=2, due=due),))


def test_with_only_retries_left_and_no_more_work_the_lane_sleeps_until_the_first_is_due() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2), exhausted=True))
    call(lane, retry(1, after=60.0))
    call(lane, retry(2, after=5.0))
    first_due = min(item.due for item in lane.waiting if item.due is not None)

    # What it did is reported before the sleep (a Retry-After may be long), then it sleeps.
    report = expect_claim(lane.next_action(at(1)))
    assert report.want == 0 and report.report.calls == 2
    answer(lane, ClaimResult(), at(1))
    action = lane.next_action(at(1))

    assert action == Sleep(first_due)
    assert first_due == lane.waiting[1].due
    assert lane.next_action(first_due) == Call((lane.waiting[1],))


def test_with_retries_waiting_and_more_work_the_lane_claims() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1)))
    call(lane, retry(1, after=60.0))

    asked = expect_claim(lane.next_action(at(1)))

    assert asked.want == MAX_CLAIM
    assert asked.returned == []


def test_a_lane_holding_max_waiting_retries_stops_claiming() -> None:
    lane = new_lane()
    lane.seq = 1
    lane.waiting = [WorkItem(ordinal=n, attempt=2, due=at(100 + n)) for n in range(MAX_WAITING)]

    assert lane.next_action(T0) == Sleep(at(100))
    lane.waiting.pop()
    assert expect_claim(lane.next_action(T0)).want == MAX_CLAIM


def test_a_lane_never_claims_with_max_waiting_retries_however_many_it_was_given() -> None:
    lane = new_lane(max_attempts=10)
    for batch in range(4):
        answer(lane, ClaimResult(items=items(*range(batch * 16, batch * 16 + 16))), at(batch))
        while lane.held:
            ordinal = lane.held[0].ordinal
            call(lane, retry(ordinal, after=600.0), at(batch))
        if len(lane.waiting) >= MAX_WAITING:
            break

    assert len(lane.waiting) == MAX_WAITING
    assert expect_claim(lane.next_action(at(10))).want == 0  # a report, not a claim for more
    answer(lane, ClaimResult(), at(10))
    assert isinstance(lane.next_action(at(10)), Sleep)


def test_an_exhausted_lane_with_nothing_left_releases_and_finishes() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1), exhausted=True))
    call(lane, done(1))

    release = answer(lane, ClaimResult(exhausted=True), at(1))

    assert release.release
    assert release.want == 0
    assert release.returned == []
    assert release.report.finished == 1
    assert lane.finished
    assert lane.next_action(at(2)) == Finish()


# --- rate limits -----------------------------------------------------------------------------


def test_one_refusal_changes_nothing_but_the_report() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2)))
    call(lane, retry(1, after=1.0, limited=True))

    assert not lane.report_now
    assert lane.next_action(at(0.1)) == Call((WorkItem(ordinal=2),))
    assert (lane.report.calls, lane.report.limited) == (1, 1)


def test_two_refusals_in_a_row_report_then_rest_until_the_retry_after() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3)))
    call(lane, retry(1, after=1.0, limited=True))
    call(lane, retry(2, after=1.0, limited=True))

    report = answer(lane, ClaimResult(), at(0.1))

    assert report.want == 0
    assert not report.release
    assert (report.report.calls, report.report.limited) == (2, 2)
    assert lane.next_action(at(0.2)) == Sleep(at(1))
    assert lane.next_action(at(1)) == Call((WorkItem(ordinal=3),))


def test_a_rest_answer_makes_the_lane_sleep_before_anything_else() -> None:
    lane = new_lane()

    answer(lane, ClaimResult(items=items(1), rest_seconds=2.5), at(0.5))

    assert lane.next_action(at(1)) == Sleep(at(3))
    assert lane.next_action(at(3)) == Call((WorkItem(ordinal=1),))


# --- stopping --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["deferred", "stopped"])
def test_a_paused_or_ended_run_makes_the_lane_hand_back_everything(kind: str) -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3, 4)))
    call(lane, retry(1, after=60.0))
    call(lane, done(2))
    waiting = lane.waiting[0]

    call(lane, Outcome.model_validate({"ordinal": 3, "kind": kind}))
    release = expect_claim(lane.next_action(at(1)))

    assert release.release
    assert release.want == 0
    assert release.returned == [WorkItem(ordinal=3), WorkItem(ordinal=4), waiting]
    assert release.report.succeeded == [2]
    assert release.report.calls == 2
    lane.claimed(release, ClaimResult(exhausted=True), at(1))
    assert (lane.held, lane.waiting, lane.finished) == ([], [], True)
    assert lane.next_action(at(2)) == Finish()


def test_a_waiting_retry_caught_by_a_pause_is_handed_back_with_its_attempt() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1), exhausted=True))
    call(lane, retry(1, after=5.0))
    item = lane.waiting[0]
    assert item.due is not None

    lane.called(Call((item,)), [Outcome(ordinal=1, kind="deferred")], item.due)
    release = expect_claim(lane.next_action(item.due))

    assert release.returned == [item]
    assert release.report.calls == 1


@pytest.mark.parametrize("stop", ["paused", "ended", "budget"])
def test_a_refused_claim_makes_the_lane_hand_back_everything(stop: str) -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3)))
    call(lane, retry(1, after=60.0, limited=True))
    call(lane, retry(2, after=60.0, limited=True))
    waiting = list(lane.waiting)

    answer(lane, ClaimResult.model_validate({"stop": stop}), at(1))
    release = expect_claim(lane.next_action(at(2)))

    assert release.release
    assert release.returned == [*items(3), *waiting]
    assert release.report == Report()


# --- idle claims -----------------------------------------------------------------------------


def test_idle_answers_back_off_then_the_lane_finishes() -> None:
    lane = new_lane("summary")
    now = T0
    waits = []
    for _ in range(len(IDLE_WAITS) + 1):
        answer(lane, ClaimResult(idle=True), now)
        action = lane.next_action(now)
        assert isinstance(action, Sleep)
        waits.append((action.until - now).total_seconds())
        now = action.until

    assert waits == [*IDLE_WAITS, IDLE_WAITS[-1]]
    # Still nothing: the lane hands back nothing and finishes (the run opens lanes again).
    release = expect_claim(lane.next_action(now))
    assert release.release and release.returned == []


def test_work_resets_the_idle_backoff() -> None:
    lane = new_lane("summary")
    answer(lane, ClaimResult(idle=True), T0)
    answer(lane, ClaimResult(idle=True), at(1))
    answer(lane, ClaimResult(items=items(5)), at(2))
    call(lane, done(5), at(2))

    answer(lane, ClaimResult(idle=True), at(3))

    assert lane.next_action(at(3)) == Sleep(at(3.25))


# --- reports ---------------------------------------------------------------------------------


def test_a_report_holds_only_what_happened_since_the_last_claim() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3, 4, 5)))
    call(lane, done(1, "a", cost=0.25, tokens=10))
    call(lane, failed(2, "a"))
    call(lane, done(3, "b", cost=0.5, tokens=7))
    call(lane, retry(4, after=60.0, limited=True))
    answer(lane, ClaimResult(), at(REPORT_SECONDS))  # the successes' report
    call(lane, done(5, "a", cost=0.125, tokens=1), at(REPORT_SECONDS))

    report = expect_claim(lane.next_action(at(REPORT_SECONDS))).report

    assert report.by_model == {
        "a": ModelProgress(completed=1, cost_usd=0.125, input_tokens=1, output_tokens=2),
    }
    assert report.succeeded == [5]
    assert (report.finished, report.calls, report.limited) == (1, 1, 0)


def test_a_report_counts_everything_since_the_last_claim() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3, 4)))
    call(lane, done(1, "a", cost=0.25, tokens=10))
    call(lane, failed(2, "a"))
    call(lane, done(3, "b", cost=0.5, tokens=7))
    call(lane, retry(4, after=60.0))

    report = expect_claim(lane.next_action(T0)).report

    assert report.by_model == {
        "a": ModelProgress(completed=1, failed=1, cost_usd=0.25, input_tokens=10, output_tokens=20),
        "b": ModelProgress(completed=1, cost_usd=0.5, input_tokens=7, output_tokens=14),
    }
    assert report.succeeded == [1, 3]
    assert (report.finished, report.calls, report.limited) == (3, 4, 0)
    assert (report.summarised, report.summary_failed) == (0, 0)


def test_a_summary_lane_reports_summaries_written_and_failed() -> None:
    lane = new_lane("summary")
    lane.item_seconds = 0.05
    answer(lane, ClaimResult(items=items(7, 8, 9)))
    batch = expect_call(lane.next_action(T0))
    lane.called(
        batch,
        [
            Outcome(ordinal=7, kind="done", called=True),
            Outcome(ordinal=8, kind="failed", called=True),
            Outcome(ordinal=9, kind="done"),
        ],
        T0,
    )

    report = expect_claim(lane.next_action(T0)).report

    assert (report.summarised, report.summary_failed, report.finished) == (2, 1, 3)
    assert (report.calls, report.limited) == (2, 0)
    assert report.by_model == {}
    assert report.succeeded == []


def test_a_claimed_answer_starts_a_new_report() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2)))
    call(lane, done(1))
    call(lane, retry(2, limited=True))
    first = answer(lane, ClaimResult(), at(1))

    assert first.report.finished == 1
    assert lane.report == Report()
    assert not lane.report_now
    assert lane.seq == 2


def test_claims_number_on_from_the_last_one() -> None:
    lane = new_lane("summary")

    seqs = [answer(lane, ClaimResult(idle=True), at(10 * n)).seq for n in range(4)]

    assert seqs == [1, 2, 3, 4]


def test_a_summary_lane_writes_a_few_summaries_per_call_one_after_the_other() -> None:
    lane = new_lane(kind="summary")
    lane.item_seconds = 0.05  # fast summaries: as many per call as allowed
    asked = answer(lane, ClaimResult(items=items(1, 2, 3, 4, 5, 6)))
    assert asked.want == SUMMARY_BATCH

    first = expect_call(lane.next_action(T0))
    lane.called(first, [done(item.ordinal) for item in first.items], T0)
    second = expect_call(lane.next_action(T0))

    assert [item.ordinal for item in first.items] == [1, 2, 3, 4]
    assert [item.ordinal for item in second.items] == [5, 6]
    assert lane.report.summarised == 4 and lane.report.finished == 4


def test_a_probe_lane_calls_one_job_at_a_time() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3)))

    assert expect_call(lane.next_action(T0)).items == (WorkItem(ordinal=1),)


def test_a_slow_summariser_gets_one_summary_per_call_a_fast_one_a_few() -> None:
    lane = new_lane(kind="summary")
    answer(lane, ClaimResult(items=items(1, 2, 3, 4, 5, 6, 7, 8)))

    first = expect_call(lane.next_action(T0))  # nothing measured yet: one at a time
    lane.called(first, [done(1)], at(0.1), took=0.1)
    second = expect_call(lane.next_action(at(0.1)))  # 0.3 s a summary, on average: still one
    lane.called(second, [done(2)], at(0.15), took=0.05)
    third = expect_call(lane.next_action(at(0.15)))

    assert [len(call.items) for call in (first, second, third)] == [1, 1, 2]
    lane.called(third, [done(3), done(4)], at(0.2), took=0.05)
    assert len(expect_call(lane.next_action(at(0.2))).items) == 4


def test_a_probe_lane_reports_its_successes_within_a_second() -> None:
    lane = new_lane()
    answer(lane, ClaimResult(items=items(1, 2, 3, 4)))
    call(lane, done(1), at(0.2))
    call(lane, done(2), at(0.9))

    report = expect_claim(lane.next_action(at(1.1)))  # a report before the next call
    assert (report.want, report.report.succeeded) == (0, [1, 2])
    lane.claimed(report, ClaimResult(), at(1.1))
    assert expect_call(lane.next_action(at(1.1))).items == (WorkItem(ordinal=3),)
    call(lane, done(3), at(1.5))
    assert isinstance(lane.next_action(at(1.6)), Call)  # reported 0.5 s ago: not yet
