"""Exporting a run's transcripts as CSV to Blob and handing out a read-only link."""

from __future__ import annotations

from datetime import datetime

from evalruns.domain.base import ApiModel
from evalruns.exports.csv_format import CsvStats, encode_csv
from evalruns.services.container import Services
from evalruns.storage.sas import read_link

ROWS_METADATA = "rows"
BYTES_METADATA = "bytes"


class ExportLink(ApiModel):
    url: str
    expires_at: datetime
    filename: str
    rows: int
    bytes: int


def export_filename(run_id: str, now: datetime) -> str:
    return f"summary_{run_id[:8]}_{now:%Y-%m-%d}.csv"


def export_run(services: Services, run_id: str, now: datetime) -> ExportLink:
    """Stream the run's transcripts to a CSV blob (bounded memory) and sign a link to it.

    A finished run's export is written once and reused; a live run's export is rewritten on
    each request, so it shows what exists so far. Blob names are deterministic.
    """
    run = services.runs.get(run_id)
    filename = export_filename(run_id, now)
    stage = "final" if run.status.is_terminal else "live"
    blob_name = f"{run_id}/{stage}/{filename}"
    existing = services.exports.metadata(blob_name) if stage == "final" else None
    if existing is not None:
        rows, size = int(existing[ROWS_METADATA]), int(existing[BYTES_METADATA])
    else:
        dimension_names = [dimension.name for dimension in run.definition.dimensions]
        stats = CsvStats()
        chunks = encode_csv(services.transcripts.iterate(run_id), dimension_names, stats)
        size = services.exports.write(
            blob_name,
            chunks,
            filename,
            lambda size: {ROWS_METADATA: str(stats.rows), BYTES_METADATA: str(size)},
        )
        rows = stats.rows
    link = read_link(
        services.storage.blobs,
        services.exports.name,
        blob_name,
        filename,
        now,
        services.sas_expiry,
    )
    return ExportLink(
        url=link.url, expires_at=link.expires_at, filename=filename, rows=rows, bytes=size
    )
