"""The CSV export format of API.md, produced row by row so any run streams in bounded memory."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from evalruns.domain.decisions import PENDING
from evalruns.domain.transcripts import Transcript

BOM = "\ufeff"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PENDING_TEXT = "Summary not yet generated"
LEADING_COLUMNS = ("Scenario", "AI Model Name")
MIDDLE_COLUMNS = ("Decision Code", "Decision Text", "Transcript ID", "Target Response")
TRAILING_COLUMNS = (
    "Model Version",
    "Sample",
    "Status",
    "Error",
    "Input Tokens",
    "Output Tokens",
    "Cost USD",
    "Duration ms",
    "Created At",
)
# Rows are encoded and handed on in chunks of about this many characters. The text buffer
# holds up to 4 bytes per character and is copied to encode it, so a chunk costs several
# times its size in memory; 256 Ki keeps a 10 GB export within the 50,000 blocks of a blob.
CHUNK_BYTES = 256 * 1024

_PROVIDER_PREFIX = re.compile(r"^[a-z0-9-]+:")
_DATE_SUFFIX = re.compile(r"-\d{8}$")


def model_display_name(model_id: str) -> str:
    """The model id without a `provider:` prefix and without a trailing `-YYYYMMDD`."""
    return _DATE_SUFFIX.sub("", _PROVIDER_PREFIX.sub("", model_id))


def neutralise(cell: str) -> str:
    """Prefix a quote so a spreadsheet shows the text instead of running it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def header(dimension_names: Sequence[str]) -> list[str]:
    columns = [*LEADING_COLUMNS, *sorted(dimension_names), *MIDDLE_COLUMNS, *TRAILING_COLUMNS]
    return [neutralise(column) for column in columns]


def row(transcript: Transcript, dimension_columns: Sequence[str]) -> list[str]:
    """One transcript's cells; `dimension_columns` are the dimension names already in column
    (sorted) order, so an export sorts them once rather than once per row."""
    code = transcript.decision_code or PENDING
    text = transcript.decision_text or (PENDING_TEXT if code == PENDING else "")
    error = f"{transcript.error.code}: {transcript.error.message}" if transcript.error else ""
    cells: list[object] = [
        f"{transcript.scenario_number:03d}",
        model_display_name(transcript.model_id),
        *(transcript.dimensions.get(name, "") for name in dimension_columns),
        code,
        text,
        transcript.id,
        transcript.response_text,
        transcript.model_version,
        transcript.sample,
        transcript.status.value,
        error,
        transcript.input_tokens,
        transcript.output_tokens,
        f"{transcript.cost_usd:.6f}",
        transcript.duration_ms,
        transcript.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    return [neutralise(str(cell)) for cell in cells]


@dataclass
class CsvStats:
    rows: int = 0
    bytes: int = 0


def encode_csv(
    transcripts: Iterable[Transcript], dimension_names: Sequence[str], stats: CsvStats
) -> Iterator[bytes]:
    """UTF-8 with a BOM, RFC 4180 quoting and CRLF line ends, in chunks of ~CHUNK_BYTES."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    dimension_columns = sorted(dimension_names)
    buffer.write(BOM)
    writer.writerow(header(dimension_columns))
    for transcript in transcripts:
        writer.writerow(row(transcript, dimension_columns))
        stats.rows += 1
        if buffer.tell() >= CHUNK_BYTES:
            yield _drain(buffer, stats)
    if buffer.tell():
        yield _drain(buffer, stats)


def _drain(buffer: io.StringIO, stats: CsvStats) -> bytes:
    chunk = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    stats.bytes += len(chunk)
    return chunk
