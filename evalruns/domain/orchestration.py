"""What orchestrators and activities pass each other: small summaries, never transcripts.

Everything here is pure and deterministic, so orchestrators can use it while replaying.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from evalruns.domain.base import ApiModel
from evalruns.domain.ledger import ClaimRequest, LaneKind
from evalruns.domain.runs import ModelProgress, Progress, RunStatus
from evalruns.domain.scheduler import WorkItem, is_final


class RunInput(ApiModel):
    run_id: str


class PlanResult(ApiModel):
    jobs: int = Field(description="jobs to execute (carried-over ones excluded)")
    carried: dict[str, ModelProgress] = Field(
        default_factory=dict, description="outcomes carried over from a parent run"
    )


class LaneStart(ApiModel):
    lane_id: str
    kind: LaneKind


class RunState(ApiModel):
    """The run orchestrator's input, carried across continue-as-new generations."""

    run_id: str
    planned: bool = False


class TickInput(ApiModel):
    """Look at the run: record progress, open lanes for free slots, make the moves its work
    calls for; and, when `target` is set, move it there if its status allows."""

    run_id: str
    target: RunStatus | None = None
    error: str | None = None


class TickResult(ApiModel):
    run_id: str
    status: RunStatus
    control_seq: int
    progress: Progress
    start: list[LaneStart] = Field(
        default_factory=list, description="lanes opened that never claimed: started if absent"
    )
    lanes: list[str] = Field(default_factory=list, description="lanes running")
    max_attempts: int = 1
    endgame: bool = Field(default=False, description="no fresh work left: look again soon")


class WorkInput(ApiModel):
    """One attempt at each of a few work items: the probe of a job, or the summaries of a few
    transcripts (one after the other)."""

    run_id: str
    items: list[WorkItem] = Field(min_length=1)
    max_attempts: int = Field(default=1, description="an item's last attempt records failures")

    def final(self, item: WorkItem) -> bool:
        """No retry follows this attempt: record any failure."""
        return is_final(item.attempt, self.max_attempts)


class ClaimInput(ApiModel):
    run_id: str
    request: ClaimRequest


class CustomStatus(Progress):
    """The run orchestration's custom status: live progress and the lanes running (which a
    cancel terminates, as terminate does not cascade)."""

    lanes: list[str] = Field(default_factory=list)

    @classmethod
    def read(cls, raw: Any) -> CustomStatus | None:
        """The custom status an orchestration reported, None when it has none (yet)."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls.model_validate(raw)
        except ValidationError:
            return None


def custom_status(progress: Progress, lanes: list[str]) -> dict[str, Any]:
    """What the run orchestrator sets as its custom status."""
    return CustomStatus(**progress.model_dump(), lanes=lanes).to_json_dict()


def final_status(progress: Progress) -> RunStatus:
    """COMPLETED unless every job failed."""
    if progress.total and progress.failed == progress.total:
        return RunStatus.FAILED
    return RunStatus.COMPLETED


def merge_progress(progress: Progress, done: dict[str, ModelProgress]) -> Progress:
    """`progress` with the work `done` per model added (a copy)."""
    by_model = {model: entry.model_copy() for model, entry in progress.by_model.items()}
    for model, delta in done.items():
        by_model.setdefault(model, ModelProgress()).add(delta)
    return Progress.from_models(progress.total, by_model)
