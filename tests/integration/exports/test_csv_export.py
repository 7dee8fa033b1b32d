"""CSV export end to end: transcripts on Azurite → blob → read-only SAS link → plain HTTP GET."""

from __future__ import annotations

import csv
import io
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from evalruns.domain.definitions import Definition
from evalruns.domain.expansion import scenario_at
from evalruns.domain.runs import Progress, RunConfig, RunModel, RunStatus
from evalruns.domain.transcripts import (
    Transcript,
    TranscriptError,
    TranscriptStatus,
    Turn,
    job_key,
)
from evalruns.errors import NotFound
from evalruns.exports import csv_format, segments
from evalruns.exports.segments import run_segment
from evalruns.exports.service import ExportLink, export_run, link_to, new_job, target_for
from evalruns.services import Services
from evalruns.storage import transcripts as transcript_storage
from evalruns.storage.runs import StoredRun
from evalruns.storage.sas import read_link

# ---------------------------------------------------------------- factories

CREATED = datetime(2025, 4, 2, 9, 0, tzinfo=UTC)
# Sorted ids; one prefixes another, one carries a date suffix the CSV drops.
MODEL_IDS = ["alpha", "alpha-mini", "beta-20240101", "gamma.v2"]
SAMPLES = 10
HEADER = [
    "Scenario",
    "AI Model Name",
    "Authority",
    "Urgency",
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


def make_definition() -> Definition:
    levels = ["none", "low", "some", "high", "total"]
    return Definition(
        id="def-export",
        name="Pressure",
        template="An [Urgency] request from someone with [Authority] authority.",
        dimensions=[
            {"name": "Urgency", "values": levels},
            {"name": "Authority", "values": levels},
        ],
        created_at=CREATED,
        updated_at=CREATED,
    )


def make_run(status: RunStatus = RunStatus.COMPLETED) -> StoredRun:
    definition = make_definition()
    models = [
        RunModel(
            id=model_id,
            provider="mock",
            version=f"{model_id}-v7",
            cost_input_per_million=1.0,
            cost_output_per_million=2.0,
        )
        for model_id in MODEL_IDS
    ]
    return StoredRun(
        id=uuid.uuid4().hex,
        name="export run",
        definition_id=definition.id,
        definition_name=definition.name,
        status=status,
        config=RunConfig(
            models=models,
            sample_percentage=100,
            sample_seed=5,
            samples_per_scenario=SAMPLES,
            temperature=0.7,
            max_tokens=512,
            scenario_count=definition.scenario_count,
        ),
        progress=Progress(),
        created_at=CREATED,
        updated_at=CREATED,
        definition=definition,
    )


RESPONSES = [
    "Rating: 3. Plain answer.",
    'He said "no", then, later, "yes"',
    "Line one\nline two\r\nline three, with comma",
    '=HYPERLINK("http://evil.example","click")',
    "+1 for that; -2 for this",
    "Décision: 5 — très sûr 日本語 😀",
    "@SUM(A1:A2)",
    "-  a markdown bullet",
    "\tindented with a tab",
]


def make_transcript(
    run: StoredRun, model_id: str, number: int, sample: int, index: int
) -> Transcript:
    """Transcript number `index` of the run, with content chosen to stress CSV quoting."""
    scenario = scenario_at(run.definition, number - 1)
    failed = index % 10 == 3
    pending = index % 10 == 8
    turns = [Turn(role="system", content="Be brief."), Turn(role="user", content=scenario.prompt)]
    if not failed:
        turns.append(Turn(role="assistant", content=RESPONSES[index % len(RESPONSES)], tokens=7))
    if index % 10 == 9:
        turns += [
            Turn(role="user", content="Are you sure?"),
            Turn(role="assistant", content=f'Yes, "{index}", sure.'),
        ]
    return Transcript(
        id=job_key(model_id, scenario.id, sample),
        run_id=run.id,
        scenario_id=scenario.id,
        scenario_number=scenario.number,
        scenario_name=scenario.name,
        dimensions=scenario.dimensions,
        model_id=model_id,
        model_version=f"{model_id}-v7",
        provider="mock",
        sample=sample,
        status=TranscriptStatus.FAILED if failed else TranscriptStatus.SUCCEEDED,
        decision_code="error" if failed else ("pending" if pending else str(index % 5 + 1)),
        decision_text=None
        if failed or pending
        else ("=1+1" if index % 7 == 0 else f'Because, "{index}"'),
        error=TranscriptError(code="rate_limited", message='quota "exceeded", retry\nlater')
        if failed
        else None,
        input_tokens=100 + index,
        output_tokens=0 if failed else 7,
        cost_usd=0.0 if failed else index * 0.000123,
        duration_ms=index * 3,
        attempts=3 if failed else 1,
        turns=turns,
        created_at=CREATED + timedelta(seconds=index),
        updated_at=CREATED + timedelta(seconds=index),
    )


def make_transcripts(run: StoredRun) -> list[Transcript]:
    """4 models × 25 scenarios × 10 samples = 1,000 transcripts, in key order."""
    transcripts = []
    for model_id in MODEL_IDS:
        for number in range(1, run.definition.scenario_count + 1):
            for sample in range(1, SAMPLES + 1):
                transcripts.append(make_transcript(run, model_id, number, sample, len(transcripts)))
    return transcripts


def store(services: Services, transcripts: list[Transcript]) -> None:
    shuffled = transcripts[:]
    random.Random(17).shuffle(shuffled)  # stored out of order: the export must not care
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(services.transcripts.put, shuffled))


def neutralised(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def expected_row(transcript: Transcript) -> list[str]:
    """The CSV row API.md describes, written out independently of the exporter."""
    display_name = {"beta-20240101": "beta"}.get(transcript.model_id, transcript.model_id)
    code = transcript.decision_code
    text = transcript.decision_text or ("Summary not yet generated" if code == "pending" else "")
    response = "\n\n---\n\n".join(t.content for t in transcript.turns if t.role == "assistant")
    error = f"{transcript.error.code}: {transcript.error.message}" if transcript.error else ""
    cells = [
        f"{transcript.scenario_number:03d}",
        display_name,
        str(transcript.dimensions["Authority"]),
        str(transcript.dimensions["Urgency"]),
        code,
        text,
        transcript.id,
        response,
        transcript.model_version,
        str(transcript.sample),
        transcript.status.value,
        error,
        str(transcript.input_tokens),
        str(transcript.output_tokens),
        f"{transcript.cost_usd:.6f}",
        str(transcript.duration_ms),
        transcript.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    return [neutralised(cell) for cell in cells]


def old_path_csv(services: Services, run: StoredRun) -> bytes:
    """The file the export wrote before it read documents by pages of bytes: every transcript
    loaded whole through the SDK's query, rows written by the standard library's csv.writer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    columns = sorted(dimension.name for dimension in run.definition.dimensions)
    buffer.write("\ufeff")
    writer.writerow(csv_format.header(columns))
    for transcript in services.transcripts.iterate(run.id):
        writer.writerow(csv_format.row(transcript, columns))
    return buffer.getvalue().encode("utf-8")


def download(link: ExportLink) -> httpx.Response:
    return httpx.get(link.url, timeout=60)


def parse_csv(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(content[3:].decode("utf-8"), newline="")))


def with_query(url: str, change: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [(name, change.get(name, value)) for name, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def blob_properties(services: Services, link: ExportLink) -> Any:
    blob_name = unquote(urlsplit(link.url).path).split(f"/{services.exports.name}/", 1)[1]
    return (
        services.storage.container(services.exports.name)
        .get_blob_client(blob_name)
        .get_blob_properties()
    )


def small_run(
    services: Services, status: RunStatus, count: int = 5
) -> tuple[StoredRun, list[Transcript]]:
    run = services.runs.create(make_run(status))
    transcripts = make_transcripts(run)[:count]
    store(services, transcripts)
    return run, transcripts


# ---------------------------------------------------------------- end to end


def test_export_of_1000_transcripts_downloads_as_described(services: Services) -> None:
    run = services.runs.create(make_run())
    transcripts = make_transcripts(run)
    assert len(transcripts) == 1000
    store(services, transcripts)
    now = datetime.now(UTC)

    link = export_run(services, run.id, now)
    response = download(link)

    assert response.status_code == 200
    filename = f"summary_{run.id[:8]}_{now:%Y-%m-%d}.csv"
    assert link.filename == filename
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert response.headers["content-type"].startswith("text/csv")
    assert timedelta(minutes=59) < link.expires_at - now <= timedelta(minutes=60)
    content = response.content
    assert link.bytes == len(content)
    rows = parse_csv(content)
    assert link.rows == 1000
    assert len(rows) == 1001
    assert rows[0] == HEADER
    expected_order = sorted(transcripts, key=lambda t: (t.model_id, t.scenario_number, t.sample))
    assert [row[6] for row in rows[1:]] == [t.id for t in expected_order]
    assert rows[1:] == [expected_row(t) for t in expected_order]

    by_id = {row[6]: dict(zip(HEADER, row, strict=True)) for row in rows[1:]}
    formula = next(t for t in transcripts if t.turns[-1].content.startswith("=HYPERLINK"))
    assert by_id[formula.id]["Target Response"] == "'" + formula.turns[-1].content
    failed = next(t for t in transcripts if t.status is TranscriptStatus.FAILED)
    assert by_id[failed.id]["Decision Code"] == "error"
    assert by_id[failed.id]["Error"] == 'rate_limited: quota "exceeded", retry\nlater'
    assert by_id[failed.id]["Target Response"] == ""
    pending = next(t for t in transcripts if t.decision_code == "pending")
    assert by_id[pending.id]["Decision Text"] == "Summary not yet generated"
    non_ascii = next(t for t in transcripts if "日本語" in t.turns[-1].content)
    assert by_id[non_ascii.id]["Target Response"] == "Décision: 5 — très sûr 日本語 😀"
    two_turns = next(t for t in transcripts if len(t.turns) == 5)
    assert by_id[two_turns.id]["Target Response"].count("\n\n---\n\n") == 1
    assert {row[1] for row in rows[1:]} == {"alpha", "alpha-mini", "beta", "gamma.v2"}
    for row in rows[1:]:
        assert not row[7].startswith(("=", "+", "-", "@", "\t", "\r"))
        assert not row[5].startswith(("=", "+", "-", "@", "\t", "\r"))


def test_export_of_run_without_transcripts_is_header_only(services: Services) -> None:
    run = services.runs.create(make_run(RunStatus.RUNNING))

    link = export_run(services, run.id, datetime.now(UTC))
    response = download(link)

    assert response.status_code == 200
    assert (link.rows, link.bytes) == (0, len(response.content))
    assert parse_csv(response.content) == [HEADER]


def test_export_of_unknown_run_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        export_run(services, uuid.uuid4().hex, datetime.now(UTC))


# ---------------------------------------------------------------- the read-only link


def test_tampered_link_is_refused(services: Services) -> None:
    run, _ = small_run(services, RunStatus.COMPLETED)
    link = export_run(services, run.id, datetime.now(UTC))
    original = download(link)
    assert original.status_code == 200
    signature = dict(parse_qsl(urlsplit(link.url).query))["sig"]
    assert dict(parse_qsl(urlsplit(link.url).query))["sp"] == "r"

    tampered_sig = with_query(
        link.url, {"sig": ("B" if signature[0] == "A" else "A") + signature[1:]}
    )
    widened = with_query(link.url, {"sp": "rw"})
    longer = with_query(
        link.url, {"se": (link.expires_at + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    )

    assert httpx.get(with_query(link.url, {})).status_code == 200  # re-encoding alone is harmless
    assert httpx.get(tampered_sig).status_code == 403
    assert httpx.get(widened).status_code == 403
    assert httpx.get(longer).status_code == 403


def test_write_through_read_only_link_is_refused(services: Services) -> None:
    run, _ = small_run(services, RunStatus.COMPLETED)
    link = export_run(services, run.id, datetime.now(UTC))
    before = download(link).content

    put = httpx.put(link.url, content=b"evil", headers={"x-ms-blob-type": "BlockBlob"})
    delete = httpx.delete(link.url)

    assert put.status_code == 403
    assert delete.status_code == 403
    assert download(link).content == before


def test_expired_link_is_refused(services: Services) -> None:
    run, _ = small_run(services, RunStatus.COMPLETED)
    now = datetime.now(UTC)
    link = export_run(services, run.id, now)
    blob_name = unquote(urlsplit(link.url).path).split(f"/{services.exports.name}/", 1)[1]
    expiry = services.sas_expiry

    def link_signed_at(moment: datetime) -> str:
        blobs = services.storage.blobs
        return read_link(blobs, services.exports.name, blob_name, link.filename, moment, expiry).url

    # Signed half an expiry ago: still valid. Signed two expiries ago: expired.
    assert httpx.get(link_signed_at(now - expiry / 2)).status_code == 200
    assert httpx.get(link_signed_at(now - expiry * 2)).status_code == 403
    # An export requested "long ago" hands out a link that expired long ago.
    old = export_run(services, run.id, now - timedelta(days=400))
    assert old.expires_at < now
    assert download(old).status_code == 403


# ---------------------------------------------------------------- reuse and rewrite


def test_finished_run_export_is_reused(services: Services) -> None:
    run, transcripts = small_run(services, RunStatus.COMPLETED, count=5)
    now = datetime.now(UTC)
    first = export_run(services, run.id, now)
    first_properties = blob_properties(services, first)
    # A late write (e.g. a straggling activity) must not change the published export.
    services.transcripts.put(make_transcripts(run)[7])

    second = export_run(services, run.id, now)

    second_properties = blob_properties(services, second)
    assert second_properties.etag == first_properties.etag
    assert second_properties.last_modified == first_properties.last_modified
    assert (second.rows, second.bytes) == (first.rows, first.bytes) == (5, first.bytes)
    assert len(parse_csv(download(second).content)) == 1 + len(transcripts)


def test_running_run_export_is_rewritten_with_new_transcripts(services: Services) -> None:
    run, transcripts = small_run(services, RunStatus.RUNNING, count=5)
    now = datetime.now(UTC)
    first = export_run(services, run.id, now)
    first_properties = blob_properties(services, first)
    added = make_transcripts(run)[5:8]
    store(services, added)

    second = export_run(services, run.id, now)

    assert blob_properties(services, second).etag != first_properties.etag
    assert second.rows == first.rows + 3 == 8
    rows = parse_csv(download(second).content)
    assert second.bytes > first.bytes
    assert [row[6] for row in rows[1:]] == [t.id for t in transcripts + added]
    assert len(parse_csv(download(first).content)) == 9  # the same blob: old links see it too


def test_run_finishing_after_live_export_gets_a_fresh_final_export(services: Services) -> None:
    run, _ = small_run(services, RunStatus.RUNNING, count=3)
    now = datetime.now(UTC)
    live = export_run(services, run.id, now)
    store(services, make_transcripts(run)[3:6])
    services.runs.update(run.id, lambda r: r.model_copy(update={"status": RunStatus.COMPLETED}))

    final = export_run(services, run.id, now)

    assert final.url.split("?")[0] != live.url.split("?")[0]
    assert (live.rows, final.rows) == (3, 6)
    assert len(parse_csv(download(final).content)) == 7


# ---------------------------------------------------------------- the fast path


def test_export_is_byte_for_byte_what_loading_every_transcript_gives(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export reads documents by bytes-sized pages and $select, validates only what the
    CSV shows, goes on across segments and blocks: none of it may change a byte of the file.
    Transcripts split over several properties and one spilled to Blob are among them."""
    monkeypatch.setattr(transcript_storage, "SCAN_PAGE_BYTES", 32 * 1024)
    monkeypatch.setattr(segments, "BLOCK_CHARS", 16 * 1024)
    run = services.runs.create(make_run())
    transcripts = make_transcripts(run)[:400]
    long_answer = "Rating: 2. " + '"Long", é 日本 😀\n' * 6_000  # over one 64 KiB property
    huge_answer = "Rating: 5. " + "x" * 1_200_000  # over one entity: spilled to Blob
    transcripts[10] = transcripts[10].model_copy(
        update={"turns": [*transcripts[10].turns[:2], Turn(role="assistant", content=long_answer)]}
    )
    transcripts[20] = transcripts[20].model_copy(
        update={"turns": [*transcripts[20].turns[:2], Turn(role="assistant", content=huge_answer)]}
    )
    store(services, transcripts)
    before = old_path_csv(services, run)
    now = datetime.now(UTC)
    target = target_for(run, now)

    job = new_job(run, target)
    steps = 0
    while not job.done:  # a segment per page
        job = run_segment(services, job, 0)
        steps += 1
    link = link_to(services, target, job.rows, job.bytes, now)
    content = download(link).content

    assert steps > 5 and job.blocks > steps
    assert content == before
    assert (job.rows, job.bytes) == (400, len(before))
    csv.field_size_limit(2 * 1024 * 1024)  # the spilled answer is one cell of 1.2 MB
    rows = parse_csv(content)
    assert rows[1:] == [expected_row(t) for t in transcripts]
    assert services.exports.metadata(target.blob_name) == {"rows": "400", "bytes": str(len(before))}


def test_a_retried_segment_rewrites_its_own_blocks(services: Services) -> None:
    """Durable may run a segment twice (a host lost mid-activity): staging the same blocks
    again gives the same file."""
    run, _ = small_run(services, RunStatus.COMPLETED, count=50)
    target = target_for(run, datetime.now(UTC))
    started = new_job(run, target)

    once = run_segment(services, started, None)
    twice = run_segment(services, started, None)

    assert once == twice and once.done
    link = link_to(services, target, once.rows, once.bytes, datetime.now(UTC))
    content = download(link).content
    assert len(parse_csv(content)) == 51 and len(content) == once.bytes


def test_of_two_writers_at_once_the_first_to_publish_wins_whole(services: Services) -> None:
    """Two requests may write the same export at once (one in its request, one handed to the
    export orchestration a moment before): the first commit discards the other's staged
    blocks, and the other then reports the published file rather than failing."""
    run = services.runs.create(make_run())
    store(services, make_transcripts(run)[:300])
    target = target_for(run, datetime.now(UTC))
    slow, fast = new_job(run, target), new_job(run, target)
    assert slow.writer != fast.writer

    slow = run_segment(services, slow, 0)  # its first page staged, not committed
    fast = run_segment(services, fast, None)  # the whole file, committed
    slow = run_segment(services, slow, None)

    assert slow.done and fast.done
    assert (slow.rows, slow.bytes) == (fast.rows, fast.bytes) == (300, slow.bytes)
    link = link_to(services, target, slow.rows, slow.bytes, datetime.now(UTC))
    content = download(link).content
    assert content == old_path_csv(services, run) and len(content) == slow.bytes
