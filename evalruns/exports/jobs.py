"""What the export orchestration carries: the job, its progress, and why it failed.

Plain models with no storage behind them, so the orchestrator imports nothing heavy.
"""

from __future__ import annotations

import re

from pydantic import Field

from evalruns.domain.base import ApiModel

MAX_REASON_CHARS = 300
# What Durable puts before an activity's own message: "Activity function 'x' failed: Type: ".
_DURABLE_PREFIX = re.compile(r"^(?:Activity function '[^']*' failed:\s*)?(?:[A-Za-z_][\w.]*: )?")


class ExportJob(ApiModel):
    """An export in progress: what it writes, and how far it has come."""

    run_id: str
    export_id: str
    blob_name: str
    filename: str
    dimensions: list[str]
    writer: str = Field(description="whose blocks these are (evalruns.storage.exports)")
    blocks: int = 0
    rows: int = 0
    bytes: int = 0
    after: tuple[str, str | None] | None = Field(
        default=None, description="where the next segment reads on (a Table continuation)"
    )
    page_rows: int | None = Field(default=None, description="the size of the next page read")
    done: bool = False


class ExportProgress(ApiModel):
    """The export orchestration's custom status."""

    rows: int = 0
    error: str | None = None


def failure_reason(error: Exception) -> str:
    """A reason a person can read: the first line of what went wrong (Durable adds stack
    traces to activity failures; storage errors add request ids on later lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = _DURABLE_PREFIX.sub("", lines[0]) if lines else ""
    return f"the export failed: {first or type(error).__name__}"[:MAX_REASON_CHARS]
