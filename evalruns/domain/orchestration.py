"""What orchestrators and activities pass each other: small summaries, never transcripts.

Everything here is pure and deterministic, so orchestrators can use it while replaying.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import Field

from evalruns.domain.base import ApiModel
from evalruns.domain.runs import ModelProgress, Progress, RunStatus
from evalruns.domain.transcripts import Job
from evalruns.domain.waves import JobGroup, Lane

# Retry backoff for retryable provider errors without a Retry-After of their own.
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 120.0
# A provider's own Retry-After is honoured up to this (retrying earlier only earns another 429).
RETRY_AFTER_MAX_SECONDS = 3600.0
# Waves of batches (or summary pages) per orchestrator generation, before continue-as-new
# bounds its history.
WAVES_PER_GENERATION = 8
SUMMARY_PAGES_PER_GENERATION = 16
SUMMARY_WAVES_PER_GENERATION = 4


class RunInput(ApiModel):
    run_id: str


class PlanResult(ApiModel):
    totals_by_model: dict[str, int] = Field(description="every job of the run, carried included")
    carried: dict[str, ModelProgress] = Field(
        default_factory=dict, description="outcomes carried over from a parent run"
    )
    lanes: list[Lane] = Field(default_factory=list, description="each provider's ordinals")
    parallel_batches: int
    max_attempts: int
    worst_case_job_usd: float = Field(
        default=0.0, description="the most one job can cost: its prompt and maxTokens of answer"
    )
    summary_lane: Lane | None = Field(
        default=None,
        description="the jobs' summaries: pages and parallelism under the "
        "summariser provider's cap",
    )


class SummaryRange(ApiModel):
    """A page of jobs to summarise (ordinals `first..last`), its attempt and, for a retry,
    when it is due."""

    first: int
    last: int
    attempt: int = 1
    due: datetime | None = None


class RunState(ApiModel):
    """The run orchestrator's input, carried across continue-as-new generations."""

    run_id: str
    plan: PlanResult | None = None
    lane_next: list[int] = Field(default_factory=list, description="next ordinal per lane")
    waiting: list[JobGroup] = Field(
        default_factory=list,
        description="jobs to dispatch again: stopped by a pause before their call, or "
        "waiting for a retry (at most each lane's room, so bounded by the providers' caps)",
    )
    dispatches: int = Field(default=0, description="batches dispatched so far (instance ids)")
    progress: Progress = Field(default_factory=Progress)
    summarising: bool = False
    summary_next: int = Field(default=0, description="first job not yet given a summary page")
    summary_retries: list[SummaryRange] = Field(default_factory=list)
    summary_cursor: str | None = Field(
        default=None, description="the sweep over carried-over transcripts (re-runs)"
    )
    sweeping: bool = False


class BatchInput(ApiModel):
    run_id: str
    batch: int
    ordinals: list[int]
    attempts: list[int] = Field(default_factory=list, description="per job; empty: all first")
    max_attempts: int

    def attempt_of(self) -> dict[int, int]:
        return dict(zip(self.ordinals, self.attempts or [1] * len(self.ordinals), strict=True))


class BatchJobsInput(ApiModel):
    run_id: str
    ordinals: list[int]


class BatchResult(ApiModel):
    by_model: dict[str, ModelProgress] = Field(default_factory=dict)
    deferred: list[int] = Field(default_factory=list, description="not started: run paused")
    retry: list[int] = Field(
        default_factory=list, description="to try again later (retryable provider errors)"
    )
    retry_in: float = Field(default=0.0, description="seconds the retries must wait")


class ProbeInput(ApiModel):
    job: Job
    attempt: int = 1
    final: bool = Field(default=True, description="no retry follows: record any failure")


class ProbeOutcome(ApiModel):
    ordinal: int
    outcome: Literal["succeeded", "failed", "retry", "deferred", "stopped"]
    model_id: str
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    retry_after: float | None = None


class SummaryPage(ApiModel):
    """What summarising one page of a run's transcripts did."""

    cursor: str | None = Field(description="this page's cursor, to summarise it again")
    next_cursor: str | None = Field(description="the next page's cursor; None: the run is done")
    summarised: int = Field(default=0, description="transcripts given a code and a text")
    failed: int = Field(default=0, description="transcripts whose summary failed (code `error`)")
    pending: int = Field(default=0, description="left pending by a retryable error")
    retry_after: float | None = Field(
        default=None, description="the longest delay a provider asked for before a retry"
    )
    stopped: bool = Field(default=False, description="the run ended (cancelled): nothing done")


class SummaryPageInput(ApiModel):
    """Jobs `first..last` to summarise, or (without them) the page of transcripts after
    `cursor`, for transcripts that are not the run's jobs (carried over by a re-run)."""

    run_id: str
    first: int | None = None
    last: int | None = None
    cursor: str | None = None
    attempt: int = 1
    final: bool = True


class SyncInput(ApiModel):
    """Persist progress and, when the current status allows it, move to `target`."""

    run_id: str
    progress: Progress | None = None
    target: RunStatus | None = None
    error: str | None = None
    reason: str | None = Field(default=None, description="why, for a move to PAUSED")


class SyncResult(ApiModel):
    status: RunStatus
    control_seq: int
    budget_usd: float | None = None


def add_outcomes(totals: dict[str, ModelProgress], outcomes: list[ProbeOutcome]) -> None:
    """Count finished jobs into per-model totals (retries are not finished)."""
    for outcome in outcomes:
        totals.setdefault(outcome.model_id, ModelProgress()).add(
            ModelProgress(
                completed=outcome.outcome == "succeeded",
                failed=outcome.outcome == "failed",
                cost_usd=outcome.cost_usd,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
            )
        )


def merge_progress(progress: Progress, done: dict[str, ModelProgress]) -> Progress:
    """`progress` with the work `done` per model added (a copy)."""
    by_model = {model: entry.model_copy() for model, entry in progress.by_model.items()}
    for model, delta in done.items():
        by_model.setdefault(model, ModelProgress()).add(delta)
    return Progress.from_models(progress.total, by_model)


def retry_delay(run_id: str, ordinal: int, attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the provider's wish, else exponential backoff.

    Jitter (up to +25%) is derived from the job, so replays compute the same delay.
    """
    digest = hashlib.sha256(f"{run_id}:{ordinal}:{attempt}".encode()).digest()
    jitter = 1 + (digest[0] / 255) * 0.25
    if retry_after is not None and retry_after > 0:
        return min(RETRY_AFTER_MAX_SECONDS, retry_after * jitter)
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1) * jitter)


def final_status(progress: Progress) -> RunStatus:
    """COMPLETED unless every job failed."""
    if progress.total and progress.failed == progress.total:
        return RunStatus.FAILED
    return RunStatus.COMPLETED
