"""Access tracking on a real Azurite: reading a record sets its `LastAccessedAt` column in the
background, at most once a minute, and changes nothing else; updates carry it over."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from azure.data.tables import TableClient

from evalruns.domain.runs import Progress, RunStatus
from evalruns.domain.transcripts import Transcript, Turn
from evalruns.errors import NotFound
from evalruns.services import Services
from evalruns.services.access import (
    ACCESS_WRITE_INTERVAL,
    touch_definition,
    touch_run,
    touch_transcript,
)
from evalruns.storage.documents import ACCESSED_COLUMN, DOC_BLOB
from evalruns.storage.runs import StoredRun
from evalruns.storage.timeline import ID_PREFIX, PARTITION
from evalruns.storage.transcripts import partition_of
from tests.integration.storage.test_repositories import (
    make_definition_input,
    make_run,
    make_transcript,
)

T = TypeVar("T")
READ_AT = datetime(2025, 7, 1, 9, 0, 0, 123456, tzinfo=UTC)
AN_HOUR_LATER = READ_AT + timedelta(hours=1)
DEADLINE_SECONDS = 10.0


# ---------------------------------------------------------------- helpers


def eventually(probe: Callable[[], T | None], what: str) -> T:
    """Poll `probe` until it returns a value, within a deadline (no fixed waits)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def timeline_entities(table: TableClient, record_id: str) -> dict[str, dict[str, Any]]:
    """Both entities of a timeline record, by row key, with their ETags."""
    by_id = table.get_entity(PARTITION, ID_PREFIX + record_id)
    by_time = table.get_entity(PARTITION, by_id["TimeKey"])
    return {entity["RowKey"]: snapshot(entity) for entity in (by_id, by_time)}


def snapshot(entity: Any) -> dict[str, Any]:
    return {**dict(entity), "etag": entity.metadata["etag"]}


def without_access(entity: dict[str, Any]) -> dict[str, Any]:
    """Every property but the access time (and the ETag, which any write changes)."""
    return {name: value for name, value in entity.items() if name not in {ACCESSED_COLUMN, "etag"}}


def document_text(entity: dict[str, Any]) -> str:
    return "".join(entity[f"Doc{index}"] for index in range(8) if f"Doc{index}" in entity)


def accessed(entity: dict[str, Any]) -> datetime | None:
    value = entity.get(ACCESSED_COLUMN)
    return None if value is None else datetime.fromisoformat(value.isoformat())


def runs_table(services: Services) -> TableClient:
    return services.storage.table("Runs")


def transcript_entity(services: Services, transcript: Transcript) -> dict[str, Any]:
    table = services.storage.table("Transcripts")
    return snapshot(table.get_entity(partition_of(transcript.run_id, transcript.id), transcript.id))


def stored_run(services: Services, **overrides: Any) -> StoredRun:
    return services.runs.create(make_run(**overrides))


# ---------------------------------------------------------------- runs


def test_reading_a_run_sets_last_accessed_at_and_nothing_else(services: Services) -> None:
    run = stored_run(services, status=RunStatus.RUNNING)
    before = timeline_entities(runs_table(services), run.id)
    assert all(ACCESSED_COLUMN not in entity for entity in before.values())
    assert "lastAccessedAt" not in json.loads(document_text(before[ID_PREFIX + run.id]))

    read = services.runs.get(run.id)
    assert read.last_accessed_at is None
    future = touch_run(services, read, now=READ_AT)

    assert future is not None
    eventually(lambda: services.runs.get(run.id).last_accessed_at, "the access time")
    loaded = services.runs.get(run.id)
    assert loaded.last_accessed_at == READ_AT
    assert loaded == run.model_copy(update={"last_accessed_at": READ_AT})
    after = timeline_entities(runs_table(services), run.id)
    assert after.keys() == before.keys()
    for row, entity in after.items():
        assert without_access(entity) == without_access(before[row])  # document, columns, keys
        assert accessed(entity) == READ_AT
        assert entity["etag"] != before[row]["etag"]


def test_reads_within_a_minute_do_not_write_again(services: Services) -> None:
    run = stored_run(services)
    first = touch_run(services, services.runs.get(run.id), now=READ_AT)
    assert first is not None
    first.result(timeout=DEADLINE_SECONDS)
    written = timeline_entities(runs_table(services), run.id)

    read = services.runs.get(run.id)
    assert read.last_accessed_at == READ_AT
    assert touch_run(services, read, now=READ_AT + timedelta(seconds=30)) is None
    assert touch_run(services, read, now=READ_AT + timedelta(seconds=59.9)) is None
    # Another process (its own tracker) goes by the stored value alone, and holds back too.
    other = Services(services.settings)
    assert touch_run(other, read, now=READ_AT + timedelta(seconds=45)) is None

    assert services.access.drain(DEADLINE_SECONDS) and other.access.drain(DEADLINE_SECONDS)
    assert timeline_entities(runs_table(services), run.id) == written


def test_a_read_after_the_window_writes_again(services: Services) -> None:
    run = stored_run(services)
    first = touch_run(services, services.runs.get(run.id), now=READ_AT)
    assert first is not None
    first.result(timeout=DEADLINE_SECONDS)

    later = READ_AT + ACCESS_WRITE_INTERVAL + timedelta(seconds=1)
    read = services.runs.get(run.id)
    second = touch_run(services, read, now=later)

    assert second is not None
    eventually(
        lambda: services.runs.get(run.id).last_accessed_at == later or None,
        "the second access time",
    )
    entities = timeline_entities(runs_table(services), run.id)
    assert [accessed(entity) for entity in entities.values()] == [later, later]


def test_a_read_that_saw_the_old_value_is_held_back_by_the_recent_write(
    services: Services,
) -> None:
    run = stored_run(services)
    stale = services.runs.get(run.id)  # read before the first write landed

    first = touch_run(services, stale, now=READ_AT)
    second = touch_run(services, stale, now=READ_AT + timedelta(seconds=1))

    assert first is not None and second is None
    first.result(timeout=DEADLINE_SECONDS)
    assert services.runs.get(run.id).last_accessed_at == READ_AT


def test_a_run_updated_after_being_touched_keeps_its_last_accessed_at(services: Services) -> None:
    run = stored_run(services)
    touched = touch_run(services, services.runs.get(run.id), now=READ_AT)
    assert touched is not None
    touched.result(timeout=DEADLINE_SECONDS)

    progress = Progress.planned({"mock-small": 6}).model_copy(update={"completed": 2})
    updated = services.runs.update(
        run.id,
        lambda current: current.model_copy(
            update={"status": RunStatus.RUNNING, "progress": progress}
        ),
    )

    assert updated.last_accessed_at == READ_AT
    assert updated.updated_at > run.updated_at
    loaded = services.runs.get(run.id)
    assert loaded == updated
    assert loaded.status == RunStatus.RUNNING and loaded.progress == progress
    entities = timeline_entities(runs_table(services), run.id)
    assert [accessed(entity) for entity in entities.values()] == [READ_AT, READ_AT]
    [listed] = services.runs.list(10, None, status=RunStatus.RUNNING).items
    assert listed == loaded


def test_a_touch_between_an_updates_read_and_write_is_kept(services: Services) -> None:
    run = stored_run(services)
    calls = 0

    def rename(current: StoredRun) -> StoredRun:
        nonlocal calls
        calls += 1
        if calls == 1:
            services.runs.touch(run.id, READ_AT)  # lands after the update read the run
        return current.model_copy(update={"name": "renamed"})

    updated = services.runs.update(run.id, rename)

    assert calls == 2  # the first replace met the changed ETag and reread the run
    assert updated.last_accessed_at == READ_AT and updated.name == "renamed"
    assert services.runs.get(run.id) == updated
    entities = timeline_entities(runs_table(services), run.id)
    assert [accessed(entity) for entity in entities.values()] == [READ_AT, READ_AT]


def test_the_access_time_set_on_a_model_is_not_written_by_updates(services: Services) -> None:
    run = stored_run(services, last_accessed_at=READ_AT)

    assert run.last_accessed_at is None
    assert services.runs.get(run.id).last_accessed_at is None
    updated = services.runs.update(
        run.id,
        lambda current: current.model_copy(update={"name": "x", "last_accessed_at": AN_HOUR_LATER}),
    )
    assert updated.last_accessed_at is None
    assert services.runs.get(run.id).last_accessed_at is None


def test_listing_shows_the_stored_access_time_and_does_not_touch(services: Services) -> None:
    touched_run = stored_run(services)
    untouched_run = stored_run(services, created_at=datetime(2025, 3, 2, tzinfo=UTC))
    future = touch_run(services, services.runs.get(touched_run.id), now=READ_AT)
    assert future is not None
    future.result(timeout=DEADLINE_SECONDS)
    before = {
        run.id: timeline_entities(runs_table(services), run.id)
        for run in (touched_run, untouched_run)
    }

    listed = {run.id: run.last_accessed_at for run in services.runs.list(10, None).items}

    assert listed == {touched_run.id: READ_AT, untouched_run.id: None}
    assert services.access.drain(DEADLINE_SECONDS)
    assert {
        run.id: timeline_entities(runs_table(services), run.id)
        for run in (touched_run, untouched_run)
    } == before


# ---------------------------------------------------------------- definitions


def test_definitions_are_tracked_the_same_way(services: Services) -> None:
    definition = services.definitions.create(make_definition_input())
    table = services.storage.table("Definitions")
    before = timeline_entities(table, definition.id)

    first = touch_definition(services, services.definitions.get(definition.id), now=READ_AT)
    assert first is not None
    eventually(
        lambda: services.definitions.get(definition.id).last_accessed_at,
        "the definition's access time",
    )
    assert services.definitions.get(definition.id) == definition.model_copy(
        update={"last_accessed_at": READ_AT}
    )
    after = timeline_entities(table, definition.id)
    for row, entity in after.items():
        assert without_access(entity) == without_access(before[row])
        assert accessed(entity) == READ_AT
    [listed] = services.definitions.list(10, None).items
    assert listed.last_accessed_at == READ_AT

    read = services.definitions.get(definition.id)
    assert touch_definition(services, read, now=READ_AT + timedelta(seconds=10)) is None
    later = READ_AT + timedelta(seconds=61)
    again = touch_definition(services, read, now=later)
    assert again is not None
    again.result(timeout=DEADLINE_SECONDS)
    assert services.definitions.get(definition.id).last_accessed_at == later


# ---------------------------------------------------------------- transcripts


def spilled_transcript(run_id: str) -> Transcript:
    huge = "Long answer 😀 " * 200_000  # ~3 MiB: beyond one entity
    return make_transcript(run_id).model_copy(
        update={"turns": [Turn(role="assistant", content=huge, tokens=1)]}
    )


@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_transcripts_are_tracked_without_changing_them(services: Services, spilled: bool) -> None:
    run_id = uuid.uuid4().hex
    transcript = spilled_transcript(run_id) if spilled else make_transcript(run_id)
    services.transcripts.put(transcript)
    before = transcript_entity(services, transcript)
    assert (DOC_BLOB in before) is spilled
    container = services.storage.container(services.settings.spill_container)
    blobs_before = {blob.name: blob.etag for blob in container.list_blobs()}

    read = services.transcripts.get(run_id, transcript.id)
    assert read.last_accessed_at is None
    first = touch_transcript(services, read, now=READ_AT)

    assert first is not None
    eventually(
        lambda: services.transcripts.get(run_id, transcript.id).last_accessed_at,
        "the transcript's access time",
    )
    loaded = services.transcripts.get(run_id, transcript.id)
    assert loaded == transcript.model_copy(update={"last_accessed_at": READ_AT})
    after = transcript_entity(services, transcript)
    assert without_access(after) == without_access(before)
    assert accessed(after) == READ_AT
    assert {blob.name: blob.etag for blob in container.list_blobs()} == blobs_before

    # Within the minute: no write; after it: a write.
    assert touch_transcript(services, loaded, now=READ_AT + timedelta(seconds=20)) is None
    assert services.access.drain(DEADLINE_SECONDS)
    assert transcript_entity(services, transcript) == after
    later = READ_AT + timedelta(seconds=61)
    again = touch_transcript(services, loaded, now=later)
    assert again is not None
    again.result(timeout=DEADLINE_SECONDS)
    assert services.transcripts.get(run_id, transcript.id).last_accessed_at == later

    # Listing shows summaries and touches nothing.
    settled = transcript_entity(services, transcript)
    [summary] = services.transcripts.list(run_id, 10, None).items
    assert summary.id == transcript.id
    assert services.access.drain(DEADLINE_SECONDS)
    assert transcript_entity(services, transcript) == settled


@pytest.mark.parametrize(
    ("first_spilled", "then_spilled"),
    [(False, False), (False, True), (True, False), (True, True)],
    ids=["inline-inline", "inline-spilled", "spilled-inline", "spilled-spilled"],
)
def test_replacing_a_transcript_keeps_its_access_time(
    services: Services, first_spilled: bool, then_spilled: bool
) -> None:
    run_id = uuid.uuid4().hex
    first = spilled_transcript(run_id) if first_spilled else make_transcript(run_id, failed=True)
    services.transcripts.put(first)
    services.transcripts.touch(run_id, first.id, READ_AT)

    retried = (spilled_transcript(run_id) if then_spilled else make_transcript(run_id)).model_copy(
        update={"attempts": 2, "last_accessed_at": None}
    )
    services.transcripts.put(retried)

    loaded = services.transcripts.get(run_id, first.id)
    assert loaded == retried.model_copy(update={"last_accessed_at": READ_AT})
    entity = transcript_entity(services, first)
    assert accessed(entity) == READ_AT
    assert (DOC_BLOB in entity) is then_spilled


def test_a_new_transcript_ignores_an_access_time_it_carries(services: Services) -> None:
    """A transcript copied from another run (a re-run carrying successes over) was never read
    in its new run."""
    source = make_transcript(uuid.uuid4().hex).model_copy(update={"last_accessed_at": READ_AT})
    copy = source.model_copy(update={"run_id": uuid.uuid4().hex})

    services.transcripts.put(copy)

    assert services.transcripts.get(copy.run_id, copy.id).last_accessed_at is None
    assert ACCESSED_COLUMN not in transcript_entity(services, copy)


# ---------------------------------------------------------------- failures


def test_a_failed_write_is_logged_and_swallowed(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    missing = make_run()  # never stored: the write finds nothing
    caplog.set_level(logging.WARNING, logger="evalruns.services.access")

    future = touch_run(services, missing, now=READ_AT)

    assert future is not None
    assert isinstance(future.exception(timeout=DEADLINE_SECONDS), NotFound)
    assert services.access.drain(DEADLINE_SECONDS)
    record = eventually(
        lambda: next((r for r in caplog.records if r.levelno == logging.WARNING), None),
        "the warning",
    )
    assert missing.id in record.getMessage()
    # Nothing was written, so the next read tries again rather than waiting out the minute.
    assert touch_run(services, missing, now=READ_AT + timedelta(seconds=1)) is not None
    assert services.access.drain(DEADLINE_SECONDS)
    with pytest.raises(NotFound):
        services.runs.get(missing.id)
