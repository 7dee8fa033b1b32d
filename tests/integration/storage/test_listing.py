"""Listing on a real Azurite: newest first, server-side filters, keyset cursors, limits."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evalruns.domain.definitions import Definition
from evalruns.domain.runs import Progress, RunConfig, RunModel, RunStatus
from evalruns.errors import InvalidInput
from evalruns.services import Services
from evalruns.services.health import storage_health
from evalruns.storage.documents import DOC_PREFIX, read_document
from evalruns.storage.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, check_limit
from evalruns.storage.runs import StoredRun
from tests.integration.storage.test_repositories import make_definition_input

# ---------------------------------------------------------------- factories

BASE = datetime(2025, 1, 1, tzinfo=UTC)


def make_definition(definition_id: str = "def-a") -> Definition:
    return Definition(
        id=definition_id,
        name=f"Definition {definition_id}",
        template="Say [Tone] things.",
        dimensions=[{"name": "Tone", "values": ["kind", "curt"]}],
        created_at=BASE,
        updated_at=BASE,
    )


def make_run(
    minute: int,
    status: RunStatus = RunStatus.PENDING,
    definition_id: str = "def-a",
) -> StoredRun:
    """A run created `minute` minutes after BASE (larger is newer)."""
    created_at = BASE + timedelta(minutes=minute)
    model = RunModel(
        id="mock-small",
        provider="mock",
        version="mock-small-20250601",
        cost_input_per_million=0.5,
        cost_output_per_million=1.5,
    )
    return StoredRun(
        id=uuid.uuid4().hex,
        name=f"run at minute {minute}",
        definition_id=definition_id,
        status=status,
        config=RunConfig(
            models=[model],
            sample_percentage=100,
            sample_seed=1,
            samples_per_scenario=1,
            temperature=0.7,
            max_tokens=64,
            scenario_count=2,
        ),
        progress=Progress.planned({"mock-small": 2}),
        created_at=created_at,
        updated_at=created_at,
        definition=make_definition(definition_id),
    )


def create_runs(services: Services, runs: list[StoredRun]) -> list[StoredRun]:
    """Store `runs` in a shuffled order; return them newest first."""
    shuffled = runs[:]
    random.Random(11).shuffle(shuffled)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(services.runs.create, shuffled))
    return sorted(runs, key=lambda run: run.created_at, reverse=True)


def collect_pages(services: Services, limit: int, **filters: Any) -> list[Page[StoredRun]]:
    pages = [services.runs.list(limit, None, **filters)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 100, "paging does not terminate"
        pages.append(services.runs.list(limit, pages[-1].next_cursor, **filters))
    return pages


def cursor_of(state: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


# ---------------------------------------------------------------- order and filters


def test_runs_list_newest_first(services: Services) -> None:
    expected = create_runs(services, [make_run(minute) for minute in (5, 1, 9, 3, 7)])

    page = services.runs.list(10, None)

    assert [run.id for run in page.items] == [run.id for run in expected]
    assert [run.created_at for run in page.items] == [
        BASE + timedelta(minutes=m) for m in (9, 7, 5, 3, 1)
    ]
    assert page.items == expected
    assert page.next_cursor is None


def test_runs_filtered_by_status_and_definition(services: Services) -> None:
    runs = [
        make_run(minute, status, definition_id)
        for minute, (status, definition_id) in enumerate(
            [
                (RunStatus.RUNNING, "def-a"),
                (RunStatus.COMPLETED, "def-a"),
                (RunStatus.RUNNING, "def-b"),
                (RunStatus.PENDING, "def-b"),
                (RunStatus.RUNNING, "def-a"),
                (RunStatus.COMPLETED, "def-b"),
            ]
        )
    ]
    newest_first = create_runs(services, runs)

    def ids(**filters: Any) -> list[str]:
        return [run.id for run in services.runs.list(50, None, **filters).items]

    def expected(predicate: Any) -> list[str]:
        return [run.id for run in newest_first if predicate(run)]

    assert ids(status=RunStatus.RUNNING) == expected(lambda r: r.status is RunStatus.RUNNING)
    assert ids(definition_id="def-b") == expected(lambda r: r.definition_id == "def-b")
    assert ids(status=RunStatus.RUNNING, definition_id="def-a") == expected(
        lambda r: r.status is RunStatus.RUNNING and r.definition_id == "def-a"
    )
    assert ids(status=RunStatus.CANCELLED) == []
    assert ids(definition_id="def-missing") == []


def test_filter_follows_status_updates(services: Services) -> None:
    [run] = create_runs(services, [make_run(1)])

    services.runs.update(run.id, lambda r: r.model_copy(update={"status": RunStatus.RUNNING}))

    assert services.runs.list(10, None, status=RunStatus.PENDING).items == []
    [listed] = services.runs.list(10, None, status=RunStatus.RUNNING).items
    assert listed.id == run.id and listed.status is RunStatus.RUNNING


# ---------------------------------------------------------------- cursor paging


@pytest.mark.parametrize(("count", "limit"), [(7, 2), (7, 3), (6, 3), (6, 2)])
def test_cursor_paging_visits_every_run_exactly_once(
    services: Services, count: int, limit: int
) -> None:
    expected = create_runs(services, [make_run(minute) for minute in range(count)])

    pages = collect_pages(services, limit)

    assert len(pages) == math.ceil(count / limit)
    assert all(len(page.items) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1].items) <= limit
    seen = [run.id for page in pages for run in page.items]
    assert seen == [run.id for run in expected]
    assert len(set(seen)) == count


def test_filtered_query_still_fills_its_page(services: Services) -> None:
    # 3 of 15 runs match, far apart: a page must not come back short just because the
    # storage page it was read from held non-matching rows.
    matching = {0, 7, 14}
    runs = [
        make_run(minute, RunStatus.FAILED if minute in matching else RunStatus.COMPLETED)
        for minute in range(15)
    ]
    newest_first = create_runs(services, runs)

    pages = collect_pages(services, 2, status=RunStatus.FAILED)

    assert [len(page.items) for page in pages] == [2, 1]
    assert [run.id for page in pages for run in page.items] == [
        run.id for run in newest_first if run.status is RunStatus.FAILED
    ]


@pytest.mark.parametrize("limit", [2, 3])
def test_pages_stay_stable_while_runs_are_created(services: Services, limit: int) -> None:
    expected = create_runs(services, [make_run(minute) for minute in range(9)])

    first = services.runs.list(limit, None)
    newer = create_runs(services, [make_run(1000 + minute) for minute in range(3)])
    second = services.runs.list(limit, first.next_cursor)
    create_runs(services, [make_run(2000)])
    rest = [second]
    while rest[-1].next_cursor is not None:
        rest.append(services.runs.list(limit, rest[-1].next_cursor))

    seen = [run.id for page in [first, *rest] for run in page.items]
    assert seen == [run.id for run in expected]
    # A fresh listing does show the new runs, first.
    fresh = services.runs.list(4, None)
    assert [run.id for run in fresh.items][1:] == [run.id for run in newer]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        cursor_of([1, 2]),
        cursor_of({"after": 5}),
        cursor_of({"before": "ts!0"}),
        cursor_of("ts!0"),
        base64.urlsafe_b64encode(b"\xff\xfe{").decode(),
    ],
)
def test_invalid_cursor_is_invalid_input(services: Services, cursor: str) -> None:
    create_runs(services, [make_run(1)])

    with pytest.raises(InvalidInput) as raised:
        services.runs.list(2, cursor)
    assert raised.value.errors[0].loc == ("query", "cursor")
    with pytest.raises(InvalidInput):
        services.definitions.list(2, cursor)
    with pytest.raises(InvalidInput):
        services.transcripts.list(uuid.uuid4().hex, 2, cursor)


@pytest.mark.parametrize("after", ["a", "id!", "", "ts", "ts#"])
def test_cursor_outside_the_time_range_is_invalid_input(services: Services, after: str) -> None:
    # A hand-made key below `ts!` would become the lower bound and list the `id!` copies too.
    create_runs(services, [make_run(1), make_run(2)])
    services.definitions.create(make_definition_input())
    cursor = cursor_of({"after": after})

    with pytest.raises(InvalidInput) as raised:
        services.runs.list(5, cursor)
    assert raised.value.errors[0].loc == ("query", "cursor")
    with pytest.raises(InvalidInput):
        services.definitions.list(5, cursor)


def test_cursor_past_the_time_range_lists_nothing(services: Services) -> None:
    create_runs(services, [make_run(1), make_run(2)])

    page = services.runs.list(5, cursor_of({"after": "ts!~"}))

    assert page.items == [] and page.next_cursor is None


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, DEFAULT_LIMIT), (1, 1), (20, 20), (99, 99), (100, 100), (101, 100), (10**6, 100)],
)
def test_check_limit_defaults_and_caps(given: int | None, expected: int) -> None:
    assert check_limit(given) == expected


@pytest.mark.parametrize("given", [0, -1, -100])
def test_check_limit_refuses_non_positive(given: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_limit(given)
    assert raised.value.errors[0].loc == ("query", "limit")


def test_capped_limit_pages_through_more_than_max(services: Services) -> None:
    count = MAX_LIMIT + 5
    expected = create_runs(services, [make_run(minute) for minute in range(count)])

    first = services.runs.list(check_limit(5000), None)
    second = services.runs.list(check_limit(5000), first.next_cursor)

    assert len(first.items) == MAX_LIMIT
    assert first.next_cursor is not None
    assert len(second.items) == 5
    assert second.next_cursor is None
    assert [run.id for run in first.items + second.items] == [run.id for run in expected]


# ---------------------------------------------------------------- unreadable rows


def test_one_unreadable_run_is_skipped_counted_and_never_fails_the_listing(
    services: Services,
) -> None:
    runs = create_runs(services, [make_run(minute) for minute in (1, 2, 3)])
    broken = runs[1]
    table = services.storage.table("Runs")
    stored = table.get_entity("all", f"id!{broken.id}")
    document = read_document(stored)
    document["name"] = None  # what the fuzzer's PATCH stored before names were validated
    for row in (stored["RowKey"], stored["TimeKey"]):
        table.upsert_entity(
            {"PartitionKey": "all", "RowKey": row, f"{DOC_PREFIX}0": json.dumps(document)}
        )

    pages = collect_pages(services, limit=1)
    assert [run.id for page in pages for run in page.items] == [runs[0].id, runs[2].id]
    assert services.incidents.count() == 1
    services.runs.list(10, None)  # seen again: still one incident, not two
    assert services.incidents.count() == 1
    incident = next(iter(services.storage.table("Incidents").list_entities()))
    assert incident["PartitionKey"] == "run" and broken.id in incident["Key"]
    assert "name" in incident["Reason"]
    assert asyncio.run(storage_health(services)).unreadable_records == 1
