"""Runs: the request to start one, its recorded configuration, status machine and progress."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, StrictBool, field_validator
from pydantic.json_schema import SkipJsonSchema

from evalruns.domain.base import ApiModel, JsonFloat, JsonInt, json_number
from evalruns.domain.statuses import ACTIVE as ACTIVE
from evalruns.domain.statuses import TERMINAL as TERMINAL
from evalruns.domain.statuses import RunStatus as RunStatus
from evalruns.errors import Conflict

MAX_SAMPLES_PER_SCENARIO = 100
# A budget: constraints inside the optional type, where the JSON schema shows them.
Usd = Annotated[float, Field(gt=0), BeforeValidator(json_number)]
MAX_OUTPUT_TOKENS = 65_536
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TEMPERATURE = 0.7

PAUSED_BY_USER = "user"
PAUSED_FOR_BUDGET = "budget"


class Actor(StrEnum):
    """Who moves a run: a user's command, the orchestration that executes it, or the
    reconciler, when the orchestration ended outside the API (terminated, failed, purged)."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    ORCHESTRATION = "orchestration"
    RECONCILE = "reconcile"

    @property
    def is_user(self) -> bool:
        return self in (Actor.PAUSE, Actor.RESUME, Actor.CANCEL)


# Every status move there is, and who may make it (DESIGN.md section 4). The orchestration
# never leaves PAUSED (only a resume does) and never cancels; it pauses only for the budget.
MOVES: frozenset[tuple[RunStatus, RunStatus, Actor]] = frozenset(
    {
        (RunStatus.PENDING, RunStatus.RUNNING, Actor.ORCHESTRATION),
        (RunStatus.PENDING, RunStatus.PAUSED, Actor.PAUSE),
        (RunStatus.RUNNING, RunStatus.PAUSED, Actor.PAUSE),
        (RunStatus.RUNNING, RunStatus.PAUSED, Actor.ORCHESTRATION),
        (RunStatus.PAUSED, RunStatus.RUNNING, Actor.RESUME),
        (RunStatus.RUNNING, RunStatus.SUMMARIZING, Actor.ORCHESTRATION),
        (RunStatus.SUMMARIZING, RunStatus.COMPLETED, Actor.ORCHESTRATION),
        *((status, RunStatus.CANCELLED, Actor.CANCEL) for status in ACTIVE),
        *((status, RunStatus.FAILED, Actor.ORCHESTRATION) for status in ACTIVE),
        *((status, RunStatus.CANCELLED, Actor.RECONCILE) for status in ACTIVE),
        *((status, RunStatus.FAILED, Actor.RECONCILE) for status in ACTIVE),
    }
)


def may_move(current: RunStatus, target: RunStatus, actor: Actor) -> bool:
    return (current, target, actor) in MOVES


def command_target(actor: Actor, current: RunStatus) -> RunStatus:
    """The status a user's command moves the run to; Conflict if `current` does not allow it."""
    for source, target, who in MOVES:
        if who is actor and source == current:
            return target
    allowed = ", ".join(sorted({source.value for source, _, who in MOVES if who is actor}))
    raise Conflict(
        f"cannot {actor.value} a run that is {current.value}; "
        f"{actor.value} is allowed from {allowed}",
        current_status=current.value,
    )


class RunPatch(ApiModel):
    """The body of `PATCH /api/runs/{id}`: a field left out is kept. `budgetUsd: null` removes
    the budget; a name cannot be removed (every run has one), so `name: null` is refused."""

    budget_usd: Usd | None = None
    name: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=200)

    @field_validator("name", mode="before")
    @classmethod
    def _name_given(cls, name: object) -> object:
        if name is None:
            raise ValueError("a run's name cannot be null: leave `name` out to keep it")
        return name


class RerunRequest(ApiModel):
    """The body of `POST /api/runs/{id}/rerun`."""

    models: list[str] | None = Field(
        default=None, min_length=1, max_length=50, json_schema_extra={"uniqueItems": True}
    )
    only_failed: StrictBool = False
    name: str | None = Field(default=None, max_length=200)


class RunRequest(ApiModel):
    """The body of `POST /api/runs`."""

    definition_id: str = Field(min_length=1, max_length=100)
    models: list[str] = Field(min_length=1, max_length=50, json_schema_extra={"uniqueItems": True})
    sample_percentage: JsonFloat = Field(default=100, ge=1, le=100)
    sample_seed: Annotated[int, Field(ge=0, le=2**31 - 1), BeforeValidator(json_number)] | None = (
        None
    )
    samples_per_scenario: JsonInt = Field(default=1, ge=1, le=MAX_SAMPLES_PER_SCENARIO)
    temperature: JsonFloat = Field(default=DEFAULT_TEMPERATURE, ge=0, le=2)
    max_tokens: JsonInt = Field(default=DEFAULT_MAX_TOKENS, ge=1, le=MAX_OUTPUT_TOKENS)
    name: str | None = Field(default=None, max_length=200)
    budget_usd: Usd | None = Field(
        default=None, description="pause the run rather than spend more than this"
    )

    @field_validator("models")
    @classmethod
    def _models_listed_once(cls, models: list[str]) -> list[str]:
        seen: set[str] = set()
        for model in models:
            if model in seen:
                raise ValueError(f"model '{model}' is listed twice")
            seen.add(model)
        return models


class RunModel(ApiModel):
    """A selected model with its version resolved when the run was created."""

    id: str
    provider: str
    version: str
    requested: str = Field(default="", description="the reference as the user gave it")
    cost_input_per_million: float
    cost_output_per_million: float


class RunConfig(ApiModel):
    models: list[RunModel]
    sample_percentage: float
    sample_seed: int
    samples_per_scenario: int
    temperature: float
    max_tokens: int
    scenario_count: int = Field(description="scenarios selected by sampling")

    @property
    def job_count(self) -> int:
        return self.scenario_count * self.samples_per_scenario * len(self.models)

    @property
    def jobs_by_model(self) -> dict[str, int]:
        """Every model gets the same jobs: each sampled scenario, each sample."""
        return {model.id: self.scenario_count * self.samples_per_scenario for model in self.models}


class ModelProgress(ApiModel):
    total: int = 0
    completed: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, done: ModelProgress) -> None:
        """Count work done into this entry (its planned `total` stays)."""
        self.completed += done.completed
        self.failed += done.failed
        self.cost_usd = round(self.cost_usd + done.cost_usd, 8)
        self.input_tokens += done.input_tokens
        self.output_tokens += done.output_tokens


class Progress(ApiModel):
    """Jobs done per model; `completed` counts successes, `failed` counts failures."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    percent: float = 0.0
    cost_usd: float = 0.0
    by_model: dict[str, ModelProgress] = Field(default_factory=dict)

    @classmethod
    def planned(cls, totals: dict[str, int]) -> Progress:
        return cls(
            total=sum(totals.values()),
            by_model={model: ModelProgress(total=count) for model, count in totals.items()},
        )

    @classmethod
    def from_models(cls, total: int, by_model: dict[str, ModelProgress]) -> Progress:
        completed = sum(entry.completed for entry in by_model.values())
        failed = sum(entry.failed for entry in by_model.values())
        done = completed + failed
        return cls(
            total=total,
            completed=completed,
            failed=failed,
            percent=round(100 * done / total, 2) if total else 100.0,
            cost_usd=round(sum(entry.cost_usd for entry in by_model.values()), 8),
            by_model=by_model,
        )

    @property
    def done(self) -> int:
        return self.completed + self.failed


class Run(ApiModel):
    id: str
    name: str
    definition_id: str
    definition_name: str = ""
    status: RunStatus
    config: RunConfig
    progress: Progress
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_accessed_at: datetime | None = None
    parent_run_id: str | None = None
    child_run_ids: list[str] = Field(default_factory=list)
    only_failed: bool = Field(
        default=False, description="a re-run of the parent's failed jobs (the rest carried over)"
    )
    cost_usd: float = 0.0
    error: str | None = None
    settling: bool = Field(
        default=False,
        description="ended while calls were in flight (cancelled, or its orchestration ended "
        "outside the API): progress is recounted from the transcripts as those calls finish",
    )
    control_seq: int = Field(
        default=0, description="pause/resume/cancel commands accepted so far (event names)"
    )
    budget_usd: float | None = None
    pause_reason: str | None = Field(default=None, description="`user` or `budget` while PAUSED")


class RunStarted(ApiModel):
    """The answer to starting a run or a re-run: the run, and the Durable extension's
    management URLs of its orchestration."""

    run: Run
    status_query_get_uri: str
    send_event_post_uri: str
    terminate_post_uri: str
