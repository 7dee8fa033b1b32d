"""The CSV export format of API.md, produced row by row so any run streams in bounded memory."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from pydantic import Field
from typing_extensions import TypedDict

from evalruns.domain.base import ApiModel
from evalruns.domain.decisions import PENDING
from evalruns.domain.transcripts import TranscriptError, TranscriptStatus

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
# Rows are encoded and handed on in chunks of about this many characters. The rows are
# joined and encoded to hand a chunk on, so a chunk costs a few times its size in memory;
# 256 Ki keeps a 10 GB export within the 50,000 blocks of a blob.
CHUNK_BYTES = 256 * 1024

_PROVIDER_PREFIX = re.compile(r"^[a-z0-9-]+:")
_DATE_SUFFIX = re.compile(r"-\d{8}$")


@lru_cache(maxsize=1024)
def model_display_name(model_id: str) -> str:
    """The model id without a `provider:` prefix and without a trailing `-YYYYMMDD`."""
    return _DATE_SUFFIX.sub("", _PROVIDER_PREFIX.sub("", model_id))


def neutralise(cell: str) -> str:
    """Prefix a quote so a spreadsheet shows the text instead of running it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def header(dimension_names: Sequence[str]) -> list[str]:
    columns = [*LEADING_COLUMNS, *sorted(dimension_names), *MIDDLE_COLUMNS, *TRAILING_COLUMNS]
    return [neutralise(column) for column in columns]


class CsvRecord(Protocol):
    """What a row is made of: a whole `Transcript` or an `ExportedTranscript`."""

    id: str
    scenario_number: int
    model_id: str
    model_version: str
    sample: int
    status: TranscriptStatus
    decision_code: str
    decision_text: str | None
    dimensions: dict[str, int]
    error: TranscriptError | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_ms: int
    created_at: datetime

    @property
    def response_text(self) -> str: ...


class TurnText(TypedDict):
    """A turn as the export reads it: a dict, not a model (a model per turn costs as much as
    the rest of the row)."""

    role: str
    content: str


class ExportedTranscript(ApiModel):
    """The fields of a stored transcript document that the CSV shows, typed as in
    `Transcript` (so a row is the same either way): validating only these, straight from the
    document's JSON, costs a fraction of loading the whole transcript."""

    id: str
    scenario_number: int
    model_id: str
    model_version: str
    sample: int
    status: TranscriptStatus
    decision_code: str
    decision_text: str | None = None
    dimensions: dict[str, int]
    turns: list[TurnText] = Field(default_factory=list)
    error: TranscriptError | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: int = 0
    created_at: datetime

    @property
    def response_text(self) -> str:
        turns = self.turns
        return "\n\n---\n\n".join(t["content"] for t in turns if t["role"] == "assistant")


def row(transcript: CsvRecord, dimension_columns: Sequence[str]) -> list[str]:
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
        timestamp(transcript.created_at),
    ]
    # neutralise(), inlined: this runs for every cell of every row.
    return ["'" + text if text.startswith(FORMULA_PREFIXES) else text for text in map(str, cells)]


def csv_line(cells: Sequence[str]) -> str:
    """One CSV record: RFC 4180 quoting and a CRLF end, the bytes `csv.writer` writes with
    QUOTE_MINIMAL and lineterminator "\r\n" (a cell is quoted when it holds a quote, a comma,
    CR or LF; quotes are doubled), several times faster on long cells. The stdlib writer also
    quotes a record made of one empty cell; every record here has more than one."""
    quoted = [
        '"' + cell.replace('"', '""') + '"'
        if '"' in cell or "," in cell or "\n" in cell or "\r" in cell
        else cell
        for cell in cells
    ]
    return ",".join(quoted) + "\r\n"


def timestamp(moment: datetime) -> str:
    """`moment.strftime("%Y-%m-%dT%H:%M:%SZ")` as glibc writes it (the year unpadded), at a
    fifth of its cost: it was the dearest cell of a row."""
    return (
        f"{moment.year}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


@dataclass
class CsvStats:
    rows: int = 0
    bytes: int = 0


class CsvEncoder:
    """Rows to UTF-8 with a BOM, RFC 4180 quoting and CRLF line ends, handed on in chunks of
    about `chunk_chars` characters that end on row boundaries."""

    def __init__(
        self,
        dimension_names: Sequence[str],
        chunk_chars: int,
        stats: CsvStats | None = None,
        *,
        header_row: bool = True,
    ) -> None:
        self.stats = stats if stats is not None else CsvStats()
        self._chunk_chars = chunk_chars
        # Records are collected as strings and joined once per chunk.
        self._parts: list[str] = []
        self._chars = 0
        self._dimension_columns = sorted(dimension_names)
        if header_row:
            self._collect(BOM)
            self._collect(csv_line(header(self._dimension_columns)))

    def _collect(self, text: str) -> None:
        self._parts.append(text)
        self._chars += len(text)

    def add(self, record: CsvRecord) -> bytes | None:
        """Add one row; a chunk when the rows collected reach the chunk size."""
        self._collect(csv_line(row(record, self._dimension_columns)))
        self.stats.rows += 1
        return self.flush() if self._chars >= self._chunk_chars else None

    def flush(self) -> bytes | None:
        """What is collected as a chunk, or None when nothing is."""
        if not self._parts:
            return None
        chunk = "".join(self._parts).encode("utf-8")
        self._parts.clear()
        self._chars = 0
        self.stats.bytes += len(chunk)
        return chunk


def encode_csv(
    transcripts: Iterable[CsvRecord], dimension_names: Sequence[str], stats: CsvStats
) -> Iterator[bytes]:
    """The whole CSV, header first, in chunks of ~CHUNK_BYTES."""
    encoder = CsvEncoder(dimension_names, CHUNK_BYTES, stats)
    for transcript in transcripts:
        chunk = encoder.add(transcript)
        if chunk is not None:
            yield chunk
    last = encoder.flush()
    if last is not None:
        yield last
