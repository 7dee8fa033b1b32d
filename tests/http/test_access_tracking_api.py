"""Reading a definition, a run or a transcript over the API records `lastAccessedAt` in the
background, at most once a minute, without changing anything else or delaying the response;
lists do not count as reads."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evalruns.domain.runs import RunStatus
from evalruns.domain.transcripts import Turn
from evalruns.services import Services
from evalruns.storage.transcripts import partition_of
from tests.integration.storage.test_access_tracking import (
    DEADLINE_SECONDS,
    accessed,
    eventually,
    snapshot,
    timeline_entities,
    without_access,
)
from tests.integration.storage.test_repositories import (
    make_definition_input,
    make_run,
    make_transcript,
)
from tests.support.functions import call_http, json_body

START = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)


class Clock:
    """The time access tracking sees, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(services: Services) -> Clock:
    instance = Clock()
    services.access.clock = instance
    return instance


@dataclass
class Tracked:
    """A stored record and how to read it over the API and inspect its entities."""

    id: str
    read: Callable[[], Any]
    entities: Callable[[], dict[str, dict[str, Any]]]


def tracked_definition(services: Services) -> Tracked:
    definition = services.definitions.create(make_definition_input())
    table = services.storage.table("Definitions")
    return Tracked(
        id=definition.id,
        read=lambda: call_http(
            "definitions_get",
            path=f"/api/definitions/{definition.id}",
            route_params={"definitionId": definition.id},
        ),
        entities=lambda: timeline_entities(table, definition.id),
    )


def tracked_run(services: Services) -> Tracked:
    run = services.runs.create(make_run(status=RunStatus.COMPLETED))
    table = services.storage.table("Runs")
    return Tracked(
        id=run.id,
        read=lambda: call_http(
            "runs_get", path=f"/api/runs/{run.id}", route_params={"runId": run.id}
        ),
        entities=lambda: timeline_entities(table, run.id),
    )


def tracked_transcript(services: Services, spilled: bool) -> Tracked:
    transcript = make_transcript(uuid.uuid4().hex)
    if spilled:
        huge = Turn(role="assistant", content="Long answer 😀 " * 200_000, tokens=1)
        transcript = transcript.model_copy(update={"turns": [huge]})
    services.transcripts.put(transcript)
    table = services.storage.table("Transcripts")
    route = {"runId": transcript.run_id, "transcriptId": transcript.id}
    return Tracked(
        id=transcript.id,
        read=lambda: call_http("transcripts_get", route_params=route),
        entities=lambda: {
            transcript.id: snapshot(
                table.get_entity(partition_of(transcript.run_id, transcript.id), transcript.id)
            )
        },
    )


RECORDS: dict[str, Callable[[Services], Tracked]] = {
    "definition": tracked_definition,
    "run": tracked_run,
    "transcript-inline": lambda services: tracked_transcript(services, spilled=False),
    "transcript-spilled": lambda services: tracked_transcript(services, spilled=True),
}


def read_ok(record: Tracked) -> dict[str, Any]:
    response = record.read()
    assert response.status_code == 200, response.get_body()
    body: dict[str, Any] = json_body(response)
    return body


def stored_access(record: Tracked) -> set[datetime | None]:
    return {accessed(entity) for entity in record.entities().values()}


def without_last_accessed(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "lastAccessedAt"}


@pytest.mark.parametrize("kind", list(RECORDS))
def test_reading_records_access_throttled_and_changes_nothing_else(
    services: Services, clock: Clock, kind: str
) -> None:
    record = RECORDS[kind](services)
    before = record.entities()

    first = read_ok(record)

    assert first["lastAccessedAt"] is None  # the response shows the record as it was read
    eventually(lambda: stored_access(record) == {START} or None, "the first access time")
    written = record.entities()
    for key, entity in written.items():
        assert without_access(entity) == without_access(before[key])
        assert entity["etag"] != before[key]["etag"]

    clock.advance(30)
    second = read_ok(record)

    assert datetime.fromisoformat(second["lastAccessedAt"]) == START
    assert without_last_accessed(second) == without_last_accessed(first)
    assert services.access.drain(DEADLINE_SECONDS)
    assert record.entities() == written  # same ETags: nothing was written

    clock.advance(31)
    third = read_ok(record)

    assert datetime.fromisoformat(third["lastAccessedAt"]) == START
    eventually(lambda: stored_access(record) == {clock.now} or None, "the second access time")
    for key, entity in record.entities().items():
        assert without_access(entity) == without_access(before[key])
    assert without_last_accessed(read_ok(record)) == without_last_accessed(first)


def test_listing_does_not_count_as_reading(services: Services, clock: Clock) -> None:
    definition = tracked_definition(services)
    run = services.runs.create(make_run(status=RunStatus.COMPLETED))
    runs = services.storage.table("Runs")
    transcript = make_transcript(run.id)
    services.transcripts.put(transcript)
    transcripts = services.storage.table("Transcripts")

    def everything() -> list[Any]:
        return [
            definition.entities(),
            timeline_entities(runs, run.id),
            snapshot(transcripts.get_entity(partition_of(run.id, transcript.id), transcript.id)),
        ]

    before = everything()

    for name, route in [
        ("definitions_list", {}),
        ("runs_list", {}),
        ("transcripts_list", {"runId": run.id}),
        ("definitions_scenarios", {"definitionId": definition.id}),
    ]:
        response = call_http(name, route_params=route)
        assert response.status_code == 200, (name, response.get_body())

    assert services.access.drain(DEADLINE_SECONDS)
    assert everything() == before
    [listed] = json_body(call_http("runs_list"))["items"]
    assert listed["lastAccessedAt"] is None


def test_lists_show_the_stored_access_time(services: Services, clock: Clock) -> None:
    run = services.runs.create(make_run(status=RunStatus.COMPLETED))
    response = call_http("runs_get", route_params={"runId": run.id})
    assert response.status_code == 200
    eventually(lambda: services.runs.get(run.id).last_accessed_at, "the access time")

    [listed] = json_body(call_http("runs_list"))["items"]

    assert datetime.fromisoformat(listed["lastAccessedAt"]) == START


def test_the_response_does_not_wait_for_the_write(
    services: Services, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = services.runs.create(make_run(status=RunStatus.COMPLETED))
    release = threading.Event()
    started = threading.Event()
    touch = services.runs.touch

    def slow_touch(run_id: str, at: datetime) -> None:
        started.set()
        assert release.wait(DEADLINE_SECONDS)
        touch(run_id, at)

    monkeypatch.setattr(services.runs, "touch", slow_touch)

    response = call_http("runs_get", route_params={"runId": run.id})

    assert response.status_code == 200
    assert json_body(response)["lastAccessedAt"] is None
    assert started.wait(DEADLINE_SECONDS)
    # The response is in hand while the write is still pending on the tracker.
    assert not services.access.drain(0.05)
    assert services.runs.get(run.id).last_accessed_at is None
    release.set()
    assert services.access.drain(DEADLINE_SECONDS)
    assert services.runs.get(run.id).last_accessed_at == START


def test_a_failed_write_does_not_fail_the_read(
    services: Services,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = services.runs.create(make_run(status=RunStatus.COMPLETED))

    def broken(run_id: str, at: datetime) -> None:
        raise ConnectionError("storage unreachable")

    monkeypatch.setattr(services.runs, "touch", broken)
    caplog.set_level(logging.WARNING, logger="evalruns.services.access")

    response = call_http("runs_get", route_params={"runId": run.id})

    assert response.status_code == 200
    assert json_body(response)["id"] == run.id
    warning = eventually(
        lambda: next((r for r in caplog.records if "storage unreachable" in r.getMessage()), None),
        "the warning",
    )
    assert warning.levelno == logging.WARNING and run.id in warning.getMessage()
    assert services.runs.get(run.id).last_accessed_at is None
