"""Writing an export a segment at a time: read pages, encode rows, stage blocks, all at once.

A segment reads the run's transcript documents from where the last one stopped, encodes them
and stages the CSV as blocks of the export's blob, until the run's transcripts run out (then
it commits the blocks: the file appears whole) or its time is up (then it says where to go on).
The next page is read while this one is encoded, and blocks upload while the next rows are
encoded, so Table, Python and Blob work side by side; memory holds a page or two and a few
blocks, whatever the run's size. A segment is deterministic in what it stages (block ids come
from the writer and the position), so a retried segment overwrites its own blocks.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from contextlib import closing
from typing import TypeVar

from pydantic import ValidationError

from evalruns.exports.csv_format import CsvEncoder, ExportedTranscript
from evalruns.exports.jobs import ExportJob
from evalruns.services.container import Services
from evalruns.storage.exports import WRITER_ID_LENGTH, BlocksGone, block_id
from evalruns.storage.rest import Continuation
from evalruns.storage.transcripts import SCAN_FIRST_PAGE

# Characters of CSV per staged block: few requests per export, a bounded share of memory
# (a block is held as text and as bytes while it is encoded; 4 MiB blocks cost ~10 MB more
# peak RSS for no speed), 100 GB within a blob's 50,000 blocks.
BLOCK_CHARS = 2 * 1024 * 1024
# Blocks uploading at once while the next ones are encoded.
BLOCKS_IN_FLIGHT = 2

ROWS_METADATA = "rows"
BYTES_METADATA = "bytes"

T = TypeVar("T")
log = logging.getLogger(__name__)


def new_writer() -> str:
    """A writer id of its own for each export started, so two never mix their blocks."""
    return secrets.token_hex(WRITER_ID_LENGTH // 2)


def run_segment(services: Services, job: ExportJob, budget_seconds: float | None) -> ExportJob:
    """Go on with `job` for about `budget_seconds` (at least one page; None: to the end).

    Returns the job as far as it came; when `done`, the export is committed.
    """
    if job.done:
        return job
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    encoder = CsvEncoder(job.dimensions, BLOCK_CHARS, header_row=job.blocks == 0)
    after = Continuation(*job.after) if job.after else None
    page_rows, done = job.page_rows, False
    with ThreadPoolExecutor(max_workers=1 + BLOCKS_IN_FLIGHT) as pool:
        blocks = _Blocks(services, job, pool)
        read = services.transcripts.documents
        pages = _read_ahead(read(job.run_id, after, page_rows or SCAN_FIRST_PAGE), pool)
        with closing(pages):
            for page in pages:
                for key, document in page.documents:
                    chunk = encoder.add(_readable(job.run_id, key, document))
                    if chunk is not None:
                        blocks.stage(chunk)
                after, page_rows = page.next, page.next_top
                if after is None:
                    done = True
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
        last = encoder.flush()
        if last is not None:
            blocks.stage(last)
        blocks.finish()
    advanced = job.model_copy(
        update={
            "blocks": blocks.count,
            "rows": job.rows + encoder.stats.rows,
            "bytes": job.bytes + encoder.stats.bytes,
            "after": after,
            "page_rows": page_rows,
            "done": done,
        }
    )
    if done:
        return _commit(services, advanced)
    return advanced


def _commit(services: Services, job: ExportJob) -> ExportJob:
    """Publish the job's blocks; when another writer of the same export published first
    (and so discarded these blocks), its whole file stands and the job reports it."""
    try:
        services.exports.commit(
            job.blob_name,
            [block_id(job.writer, index) for index in range(job.blocks)],
            job.filename,
            {ROWS_METADATA: str(job.rows), BYTES_METADATA: str(job.bytes)},
        )
    except BlocksGone:
        metadata = services.exports.metadata(job.blob_name) or {}
        if ROWS_METADATA not in metadata:
            raise
        log.info(
            "export %s of run %s was published by another writer first; keeping theirs",
            job.export_id,
            job.run_id,
            extra={"run_id": job.run_id},
        )
        rows, size = int(metadata[ROWS_METADATA]), int(metadata[BYTES_METADATA])
        return job.model_copy(update={"rows": rows, "bytes": size})
    return job


class UnreadableTranscript(ValueError):
    """A stored transcript the export cannot read: it fails rather than leave a row out."""


def _readable(run_id: str, key: str, document: str | bytes) -> ExportedTranscript:
    try:
        return ExportedTranscript.model_validate_json(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        detail = f"{where}: {first['msg']}" if where else first["msg"]
        log.error(
            "transcript %s of run %s cannot be read: %s",
            key,
            run_id,
            detail,
            extra={"run_id": run_id, "job_key": key},
        )
        raise UnreadableTranscript(f"transcript {key} cannot be read ({detail})") from None


class _Blocks:
    """Stages blocks in the background, a few at a time, in order of their ids."""

    def __init__(self, services: Services, job: ExportJob, pool: ThreadPoolExecutor) -> None:
        self._exports = services.exports
        self._job = job
        self._pool = pool
        self._pending: deque[Future[None]] = deque()
        self.count = job.blocks

    def stage(self, data: bytes) -> None:
        while len(self._pending) >= BLOCKS_IN_FLIGHT:
            self._pending.popleft().result()
        block = block_id(self._job.writer, self.count)
        self._pending.append(
            self._pool.submit(self._exports.stage, self._job.blob_name, block, data)
        )
        self.count += 1

    def finish(self) -> None:
        while self._pending:
            self._pending.popleft().result()


def _read_ahead(
    pages: Generator[T, None, None], pool: ThreadPoolExecutor
) -> Generator[T, None, None]:
    """`pages`, each read in `pool` while the caller works on the one before."""
    pending: Future[T | None] = pool.submit(next, pages, None)
    try:
        while (page := pending.result()) is not None:
            pending = pool.submit(next, pages, None)
            yield page
    finally:
        wait_all([pending])
        pages.close()
