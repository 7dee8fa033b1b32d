"""Transcripts: one recorded conversation per job (scenario × model × sample)."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import Field

from evalruns.domain.base import ApiModel
from evalruns.domain.runs import RunModel
from evalruns.domain.statuses import TranscriptStatus as TranscriptStatus

SAMPLE_WIDTH = 3
# Model ids become part of table keys and URLs; the catalog keeps them to these characters.
MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# '!' sorts before every character of a model id, so keys order by model, scenario, sample.
KEY_SEPARATOR = "!"


def job_key(model_id: str, scenario_id: str, sample: int) -> str:
    """The deterministic key of a job, also its transcript's id."""
    if not MODEL_ID_PATTERN.fullmatch(model_id):
        raise ValueError(f"model id {model_id!r} cannot be part of a key")
    return KEY_SEPARATOR.join((model_id, scenario_id, f"{sample:0{SAMPLE_WIDTH}d}"))


class Job(ApiModel):
    """One provider conversation to run; persisted by the plan, read by the probe."""

    run_id: str
    ordinal: int
    key: str
    scenario_id: str
    scenario_number: int
    scenario_name: str
    dimensions: dict[str, int]
    preamble: str
    prompt: str
    model: RunModel
    sample: int
    temperature: float
    max_tokens: int


class Turn(ApiModel):
    role: str
    content: str
    tokens: int | None = None


class TranscriptError(ApiModel):
    code: str
    message: str


class TranscriptSummary(ApiModel):
    """The list view of a transcript."""

    id: str
    scenario_id: str
    scenario_number: int
    scenario_name: str
    model_id: str
    model_version: str
    sample: int
    status: TranscriptStatus
    decision_code: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: int = 0
    created_at: datetime


class Transcript(TranscriptSummary):
    run_id: str
    dimensions: dict[str, int]
    provider: str
    requested_model: str = Field(default="", description="the model reference the run asked for")
    provider_model: str | None = Field(default=None, description="the model the provider named")
    finish_reason: str | None = None
    turns: list[Turn] = Field(default_factory=list)
    decision_text: str | None = None
    summary_model: str | None = Field(
        default=None,
        description="the summariser (`model@version`) that wrote, or failed to write, "
        "decision_text",
    )
    error: TranscriptError | None = None
    attempts: int = 1
    request_hash: str = Field(default="", description="hash of the request parameters")
    updated_at: datetime
    last_accessed_at: datetime | None = Field(
        default=None, description="when the transcript was last read (at most once a minute)"
    )

    @property
    def response_text(self) -> str:
        """The model's turns joined as the CSV's Target Response column shows them."""
        return "\n\n---\n\n".join(turn.content for turn in self.turns if turn.role == "assistant")
