"""The CSV export format of API.md: columns, encoding, quoting, neutralisation, chunking."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from evalruns.domain.transcripts import Transcript, TranscriptError, TranscriptStatus, Turn
from evalruns.exports import csv_format
from evalruns.exports.csv_format import (
    BOM,
    PENDING_TEXT,
    CsvStats,
    csv_line,
    encode_csv,
    header,
    model_display_name,
    neutralise,
    row,
    timestamp,
)

DIMENSIONS = ("Traffic", "Reliance", "BusinessView")
WHEN = datetime(2025, 6, 1, 9, 5, 7, 123456, tzinfo=UTC)
EXPECTED_HEADER = [
    "Scenario",
    "AI Model Name",
    "BusinessView",
    "Reliance",
    "Traffic",
    "Decision Code",
    "Decision Text",
    "Transcript ID",
    "Target Response",
    "Model Version",
    "Sample",
    "Status",
    "Error",
    "Input Tokens",
    "Output Tokens",
    "Cost USD",
    "Duration ms",
    "Created At",
]

# --- factories -------------------------------------------------------------------------------


def transcript(response: str | None = "Rating: 4\nBecause.", **overrides: Any) -> Transcript:
    turns = [Turn(role="user", content="The prompt")]
    if response is not None:
        turns.append(Turn(role="assistant", content=response))
    fields: dict[str, Any] = {
        "id": "mock-small!s000003!001",
        "run_id": "run-1",
        "scenario_id": "s000003",
        "scenario_number": 3,
        "scenario_name": "Reliance=barely, Traffic=very light, BusinessView=opposed",
        "model_id": "mock-small",
        "model_version": "mock-small-v1",
        "provider": "mock",
        "sample": 1,
        "status": TranscriptStatus.SUCCEEDED,
        "decision_code": "4",
        "decision_text": "Fund the library",
        "dimensions": {"Reliance": 1, "Traffic": 2, "BusinessView": 3},
        "turns": turns,
        "input_tokens": 120,
        "output_tokens": 45,
        "cost_usd": 0.00123456,
        "duration_ms": 830,
        "created_at": WHEN,
        "updated_at": WHEN,
        **overrides,
    }
    return Transcript.model_validate(fields)


def encode(
    transcripts: Iterable[Transcript], dimensions: Iterable[str] = DIMENSIONS
) -> tuple[list[bytes], CsvStats]:
    stats = CsvStats()
    chunks = list(encode_csv(transcripts, list(dimensions), stats))
    return chunks, stats


def parse(data: bytes) -> list[list[str]]:
    """Decode a whole export the way a careful consumer would."""
    assert data.startswith(BOM.encode("utf-8"))
    text = data.decode("utf-8")[len(BOM) :]
    return list(csv.reader(io.StringIO(text, newline=""), strict=True))


def export_rows(*transcripts: Transcript) -> list[dict[str, str]]:
    """Encode transcripts and read them back as dicts keyed by the header."""
    chunks, _ = encode(transcripts)
    head, *rows = parse(b"".join(chunks))
    return [dict(zip(head, cells, strict=True)) for cells in rows]


def only_row(record: Transcript) -> dict[str, str]:
    (parsed,) = export_rows(record)
    return parsed


# --- header ----------------------------------------------------------------------------------


def test_header_column_order_is_exactly_the_contract() -> None:
    assert header(list(DIMENSIONS)) == EXPECTED_HEADER


def test_header_without_dimensions() -> None:
    assert header([]) == [column for column in EXPECTED_HEADER if column not in DIMENSIONS]


def test_encoded_header_is_the_first_line() -> None:
    chunks, _ = encode([])

    assert parse(b"".join(chunks)) == [EXPECTED_HEADER]


def test_dimension_cells_hold_scores_in_header_order() -> None:
    parsed = only_row(transcript())

    assert (parsed["BusinessView"], parsed["Reliance"], parsed["Traffic"]) == ("3", "1", "2")


def test_dimension_missing_from_a_transcript_is_empty() -> None:
    parsed = only_row(transcript(dimensions={"Reliance": 5}))

    assert (parsed["BusinessView"], parsed["Reliance"], parsed["Traffic"]) == ("", "5", "")


# --- a full row ------------------------------------------------------------------------------


def test_row_values_for_a_successful_transcript() -> None:
    parsed = only_row(transcript())

    assert parsed == {
        "Scenario": "003",
        "AI Model Name": "mock-small",
        "BusinessView": "3",
        "Reliance": "1",
        "Traffic": "2",
        "Decision Code": "4",
        "Decision Text": "Fund the library",
        "Transcript ID": "mock-small!s000003!001",
        "Target Response": "Rating: 4\nBecause.",
        "Model Version": "mock-small-v1",
        "Sample": "1",
        "Status": "SUCCEEDED",
        "Error": "",
        "Input Tokens": "120",
        "Output Tokens": "45",
        "Cost USD": "0.001235",
        "Duration ms": "830",
        "Created At": "2025-06-01T09:05:07Z",
    }


def test_row_has_one_cell_per_header_column() -> None:
    assert len(row(transcript(), list(DIMENSIONS))) == len(EXPECTED_HEADER)


@pytest.mark.parametrize(
    ("number", "cell"), [(1, "001"), (7, "007"), (42, "042"), (125, "125"), (1000, "1000")]
)
def test_scenario_number_has_three_digits(number: int, cell: str) -> None:
    assert only_row(transcript(scenario_number=number))["Scenario"] == cell


def test_target_response_joins_assistant_turns() -> None:
    record = transcript(
        None,
        turns=[
            Turn(role="user", content="Q1"),
            Turn(role="assistant", content="A1"),
            Turn(role="user", content="Q2"),
            Turn(role="assistant", content="A2"),
        ],
    )

    assert only_row(record)["Target Response"] == "A1\n\n---\n\nA2"


# --- decision code ---------------------------------------------------------------------------


@pytest.mark.parametrize("decision_text", [None, ""])
def test_missing_decision_code_is_pending(decision_text: str | None) -> None:
    parsed = only_row(transcript(decision_code="", decision_text=decision_text))

    assert parsed["Decision Code"] == "pending"
    assert parsed["Decision Text"] == PENDING_TEXT == "Summary not yet generated"


def test_decided_transcript_without_decision_text_has_an_empty_text() -> None:
    parsed = only_row(transcript(decision_code="other", decision_text=None))

    assert (parsed["Decision Code"], parsed["Decision Text"]) == ("other", "")


def test_failed_transcript_shows_its_error() -> None:
    record = transcript(
        None,
        status=TranscriptStatus.FAILED,
        decision_code="error",
        decision_text=None,
        error=TranscriptError(code="rate_limited", message="too many requests, retry later"),
        output_tokens=0,
    )

    parsed = only_row(record)

    assert parsed["Status"] == "FAILED"
    assert parsed["Decision Code"] == "error"
    assert parsed["Error"] == "rate_limited: too many requests, retry later"
    assert parsed["Target Response"] == ""


# --- model names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("anthropic:claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("gpt-4o", "gpt-4o"),
        ("mock-small-20250601", "mock-small"),
        ("mock-small", "mock-small"),
        ("openai:gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("model-2025060", "model-2025060"),
        ("model-20250601-preview", "model-20250601-preview"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
    ],
)
def test_model_display_name(model_id: str, name: str) -> None:
    assert model_display_name(model_id) == name


def test_ai_model_name_column_uses_the_display_name() -> None:
    parsed = only_row(transcript(model_id="mock-small-20250601"))

    assert parsed["AI Model Name"] == "mock-small"


# --- quoting and line ends -------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        "plain",
        "a, b, c",
        'He said "no".',
        '"quoted at both ends"',
        "line one\nline two",
        "line one\r\nline two\r\n",
        'all of them: ",\n\r\n"',
        "unicode: é ü 漢字 🙂",
        "",
    ],
)
def test_rfc4180_quoting_round_trips(response: str) -> None:
    parsed = only_row(transcript(response))

    assert parsed["Target Response"] == response


def test_quotes_are_doubled_inside_a_quoted_field() -> None:
    chunks, _ = encode([transcript('He said "no", twice')])

    assert b'"He said ""no"", twice"' in b"".join(chunks)


def test_lines_end_with_crlf() -> None:
    chunks, _ = encode([transcript("one line"), transcript("another")])
    data = b"".join(chunks)

    assert data.endswith(b"\r\n")
    assert data.count(b"\r\n") == 3
    assert data.count(b"\n") == 3
    assert data.count(b"\r") == 3


def test_newlines_inside_a_field_are_kept_as_written() -> None:
    chunks, _ = encode([transcript("a\nb")])

    assert b'"Rating' not in b"".join(chunks)
    assert b'"a\nb"' in b"".join(chunks)


# --- formula neutralisation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+1", "'+1"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("1-2", "1-2"),
        ("'already", "'already"),
        ("", ""),
        (" =SUM(A1)", " =SUM(A1)"),
    ],
)
def test_neutralise(cell: str, safe: str) -> None:
    assert neutralise(cell) == safe


@pytest.mark.parametrize(
    "response",
    ["=SUM(A1:A9)", '=HYPERLINK("http://x","y")', "+49 30 1234", "-3 degrees", "@cmd", "\tTab"],
)
def test_model_response_that_looks_like_a_formula_is_neutralised(response: str) -> None:
    parsed = only_row(transcript(response))

    assert parsed["Target Response"] == "'" + response


def test_other_text_cells_are_neutralised_too() -> None:
    record = transcript(
        decision_text="=1+1",
        model_version="-v2",
        status=TranscriptStatus.FAILED,
        error=TranscriptError(code="=bad", message="x"),
    )

    parsed = only_row(record)

    assert parsed["Decision Text"] == "'=1+1"
    assert parsed["Model Version"] == "'-v2"
    assert parsed["Error"] == "'=bad: x"


def test_formula_only_counts_at_the_start_of_a_cell() -> None:
    parsed = only_row(transcript("Total:\n=SUM(A1:A2)"))

    assert parsed["Target Response"] == "Total:\n=SUM(A1:A2)"


def test_dimension_header_that_looks_like_a_formula_is_neutralised() -> None:
    chunks, _ = encode([transcript(dimensions={"=Risk": 2})], dimensions=["=Risk"])

    head, values = parse(b"".join(chunks))

    assert head[2] == "'=Risk"
    assert values[2] == "2"


# --- encoding, stats and chunks --------------------------------------------------------------


def test_bom_starts_the_first_chunk() -> None:
    chunks, _ = encode([transcript()])

    assert chunks[0].startswith(b"\xef\xbb\xbf")
    assert chunks[0][3:].startswith(b"Scenario,AI Model Name,")


def test_output_is_utf8() -> None:
    chunks, _ = encode([transcript("café 🙂")])

    assert "café 🙂".encode() in b"".join(chunks)


def test_empty_export_is_bom_and_header_only() -> None:
    chunks, stats = encode([])

    assert len(chunks) == 1
    assert stats.rows == 0
    assert stats.bytes == len(chunks[0])
    assert chunks[0] == (BOM + ",".join(EXPECTED_HEADER) + "\r\n").encode("utf-8")


def test_stats_count_rows_and_bytes() -> None:
    records = [transcript(f"answer {n}", scenario_number=n) for n in range(1, 8)]

    chunks, stats = encode(records)

    assert stats.rows == 7
    assert stats.bytes == len(b"".join(chunks))
    assert len(parse(b"".join(chunks))) == 8


def many_transcripts(count: int, response_size: int = 200) -> Iterator[Transcript]:
    for n in range(1, count + 1):
        text = f'answer {n}, with "quotes" and é\n' + "x" * response_size
        yield transcript(text, scenario_number=n, id=f"mock-small!s{n:06d}!001")


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(csv_format, "CHUNK_BYTES", 2048)
    return 2048


def test_many_rows_give_several_chunks_that_form_one_valid_csv(small_chunks: int) -> None:
    chunks, stats = encode(many_transcripts(100))
    data = b"".join(chunks)

    parsed = parse(data)

    assert len(chunks) > 5
    assert stats.rows == 100
    assert stats.bytes == len(data)
    assert len(parsed) == 101
    assert [cells[7] for cells in parsed[1:]] == [f"mock-small!s{n:06d}!001" for n in range(1, 101)]
    assert parsed[1][8].startswith('answer 1, with "quotes" and é\n')


def test_bom_appears_in_the_first_chunk_only(small_chunks: int) -> None:
    chunks, _ = encode(many_transcripts(50))

    assert chunks[0].startswith(BOM.encode())
    assert all(BOM.encode() not in chunk for chunk in chunks[1:])
    assert b"".join(chunks).count(BOM.encode()) == 1


def test_chunks_end_on_row_boundaries_and_decode_alone(small_chunks: int) -> None:
    chunks, _ = encode(many_transcripts(50))

    for chunk in chunks:
        text = chunk.decode("utf-8")
        assert text.endswith("\r\n")
        assert len(list(csv.reader(io.StringIO(text.lstrip(BOM), newline="")))) >= 1
    # Every chunk but the last reached the chunk size before it was handed on.
    assert all(len(chunk) >= small_chunks for chunk in chunks[:-1])


def test_encoding_streams_rather_than_reading_everything_first(small_chunks: int) -> None:
    consumed = 0

    def counting() -> Iterator[Transcript]:
        nonlocal consumed
        for record in many_transcripts(200):
            consumed += 1
            yield record

    chunks = encode_csv(counting(), list(DIMENSIONS), CsvStats())
    next(chunks)

    assert consumed < 200


def test_default_chunk_size_splits_a_large_export() -> None:
    count = 2200  # about 2.3 MB with 1 KB responses
    chunks, stats = encode(many_transcripts(count, response_size=1000))

    assert len(chunks) >= 2
    assert all(len(chunk) >= csv_format.CHUNK_BYTES for chunk in chunks[:-1])
    assert stats.rows == count
    assert len(parse(b"".join(chunks))) == count + 1


# --- the record writer ------------------------------------------------------------------------


def test_csv_line_writes_exactly_what_the_stdlib_writer_writes() -> None:
    """`csv_line` stands in for csv.writer(QUOTE_MINIMAL, lineterminator="\\r\\n") on the hot
    path: the same bytes for every kind of cell, random ones included."""
    alphabet = [
        '"',
        ",",
        "\r",
        "\n",
        "\t",
        " ",
        "'",
        "=",
        "+",
        "-",
        "@",
        "a",
        "Z",
        "é",
        "😀",
        "\x00",
    ]
    rng = random.Random(11)
    records = [
        ["plain", "", "with, comma", 'a "quote"', "line\nbreak", "cr\ronly", "crlf\r\n", '"'],
        ["", ""],
        ["=1+1", "'quoted'", "\t tab", " lead", "trail ", "😀"],
    ] + [
        ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(17)]
        for _ in range(3000)
    ]
    expected = io.StringIO()
    writer = csv.writer(expected, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    for record in records:
        writer.writerow(record)

    assert "".join(csv_line(record) for record in records) == expected.getvalue()


def test_timestamp_is_what_strftime_writes() -> None:
    moments = [WHEN, datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(999, 1, 2)]
    rng = random.Random(3)
    moments += [datetime.fromtimestamp(rng.uniform(0, 4e9), UTC) for _ in range(500)]

    for moment in moments:
        assert timestamp(moment) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
