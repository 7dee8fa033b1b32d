"""Exporting a run's transcripts as CSV to Blob and handing out a read-only link.

Each run has one export per stage and day (`final-YYYY-MM-DD` once the run has finished,
`live-YYYY-MM-DD` while it runs), written under a deterministic blob name: a finished run's
export is written once and reused; a live run's is rewritten on request, so it shows what
exists so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from evalruns.domain.base import ApiModel
from evalruns.errors import NotFound
from evalruns.exports.jobs import ExportJob
from evalruns.exports.segments import BYTES_METADATA, ROWS_METADATA, new_writer, run_segment
from evalruns.services.container import Services
from evalruns.storage.runs import StoredRun
from evalruns.storage.sas import read_link

FINAL = "final"
LIVE = "live"
_EXPORT_ID = re.compile(r"^(final|live)-(\d{4}-\d{2}-\d{2})$")


class ExportLink(ApiModel):
    url: str
    expires_at: datetime
    filename: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class ExportTarget:
    """Where one export of a run is written."""

    run_id: str
    export_id: str
    filename: str
    blob_name: str

    @property
    def final(self) -> bool:
        return self.export_id.startswith(FINAL)


def export_filename(run_id: str, day: date) -> str:
    return f"summary_{run_id[:8]}_{day:%Y-%m-%d}.csv"


def target_of(run_id: str, export_id: str) -> ExportTarget:
    """The export named `export_id` (`<final|live>-YYYY-MM-DD`); NotFound for any other name."""
    match = _EXPORT_ID.fullmatch(export_id)
    try:
        day = date.fromisoformat(match.group(2)) if match else None
    except ValueError:
        day = None
    if match is None or day is None:
        raise NotFound(f"run {run_id!r} has no export {export_id!r}")
    filename = export_filename(run_id, day)
    return ExportTarget(run_id, export_id, filename, f"{run_id}/{match.group(1)}/{filename}")


def target_for(run: StoredRun, now: datetime) -> ExportTarget:
    """The export a request for `run` at `now` reads or writes."""
    stage = FINAL if run.status.is_terminal else LIVE
    return target_of(run.id, f"{stage}-{now:%Y-%m-%d}")


def new_job(run: StoredRun, target: ExportTarget) -> ExportJob:
    return ExportJob(
        run_id=run.id,
        export_id=target.export_id,
        blob_name=target.blob_name,
        filename=target.filename,
        dimensions=[dimension.name for dimension in run.definition.dimensions],
        writer=new_writer(),
    )


def written(services: Services, target: ExportTarget) -> tuple[int, int] | None:
    """Rows and bytes of the export's committed file, or None when there is none."""
    metadata = services.exports.metadata(target.blob_name)
    if metadata is None or ROWS_METADATA not in metadata:
        return None
    return int(metadata[ROWS_METADATA]), int(metadata[BYTES_METADATA])


def link_to(
    services: Services, target: ExportTarget, rows: int, size: int, now: datetime
) -> ExportLink:
    """A fresh read-only link to the export's file."""
    link = read_link(
        services.storage.blobs,
        services.exports.name,
        target.blob_name,
        target.filename,
        now,
        services.sas_expiry,
    )
    return ExportLink(
        url=link.url, expires_at=link.expires_at, filename=target.filename, rows=rows, bytes=size
    )


def reusable(services: Services, target: ExportTarget, now: datetime) -> ExportLink | None:
    """A finished run's export already written, or None."""
    found = written(services, target) if target.final else None
    return None if found is None else link_to(services, target, *found, now)


def export_run(services: Services, run_id: str, now: datetime) -> ExportLink:
    """Export the run here and now, to the end (bounded memory), and sign a link to it."""
    run = services.runs.get(run_id)
    target = target_for(run, now)
    existing = reusable(services, target, now)
    if existing is not None:
        return existing
    job = run_segment(services, new_job(run, target), None)
    return link_to(services, target, job.rows, job.bytes, now)
