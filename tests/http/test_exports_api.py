"""The export routes over the registered functions, on Azurite and the step-by-step Durable
engine: a small export answers 201 at once, a large one 202 and goes on as the export
orchestration, whose every step the test takes (so "running" is seen for sure)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from devhost.azurite import ACCOUNT_KEY
from devhost.durable import DurableEngine
from evalruns import names
from evalruns.domain.runs import RunStatus
from evalruns.exports.background import export_instance_id
from evalruns.services import Services
from evalruns.storage import transcripts as transcript_storage
from evalruns.storage.runs import StoredRun
from tests.http.test_definitions_api import assert_problem
from tests.integration.exports.test_csv_export import (
    make_run,
    make_transcripts,
    old_path_csv,
    parse_csv,
    store,
)
from tests.support.functions import call_http, json_body

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

LINK_FIELDS = {"url", "expiresAt", "filename", "rows", "bytes"}


def stored_run(
    services: Services, count: int, status: RunStatus = RunStatus.COMPLETED
) -> StoredRun:
    run = services.runs.create(make_run(status))
    store(services, make_transcripts(run)[:count])
    return run


def post_export(engine: DurableEngine, run_id: str) -> Any:
    return call_http(
        "exports_create",
        "POST",
        f"/api/runs/{run_id}/exports",
        body={"format": "csv"},
        route_params={"runId": run_id},
        client=engine.client_binding(),
    )


def get_status(engine: DurableEngine, run_id: str, export_id: str) -> Any:
    return call_http(
        "exports_status",
        path=f"/api/runs/{run_id}/exports/{export_id}",
        route_params={"runId": run_id, "exportId": export_id},
        client=engine.client_binding(),
    )


def status_of(engine: DurableEngine, run_id: str, export_id: str) -> dict[str, Any]:
    response = get_status(engine, run_id, export_id)
    assert response.status_code == 200, response.get_body()
    result: dict[str, Any] = json_body(response)
    return result


def export_instances(engine: DurableEngine) -> list[str]:
    return [s.instance_id for s in engine.snapshots() if s.instance_id.startswith("export:")]


def segments_done(engine: DurableEngine) -> int:
    return len(engine.activity_calls(names.EXPORT_ACTIVITY))


def writer_of(payload: Any) -> str:
    while isinstance(payload, str):
        payload = json.loads(payload)
    return str(payload["writer"])


def download(url: str) -> bytes:
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200
    return response.content


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of about 64 KiB: a few hundred rows give several pages, so several segments."""
    monkeypatch.setattr(transcript_storage, "SCAN_PAGE_BYTES", 64 * 1024)


def test_a_small_export_answers_201_with_its_link(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    run = stored_run(services, 5)

    response = post_export(engine, run.id)

    assert response.status_code == 201, response.get_body()
    answer = json_body(response)
    assert set(answer) == LINK_FIELDS and answer["rows"] == 5
    assert download(answer["url"]) == old_path_csv(services, run)
    assert export_instances(engine) == []  # written within the request


@pytest.mark.usefixtures("small_pages")
def test_a_large_export_goes_on_in_the_background_until_it_succeeds(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(export_wait_seconds=0, export_segment_seconds=0.001)
    run = stored_run(services, 600)
    export_id = f"final-{datetime.now(UTC):%Y-%m-%d}"

    accepted = post_export(engine, run.id)

    assert accepted.status_code == 202, accepted.get_body()
    assert accepted.headers["Location"] == f"/api/runs/{run.id}/exports/{export_id}"
    assert json_body(accepted) == {
        "exportId": export_id,
        "status": "running",
        "rows": 0,
        "error": None,
        "url": None,
        "expiresAt": None,
        "filename": None,
        "bytes": None,
    }
    assert export_instances(engine) == [export_instance_id(run.id, export_id)]
    assert status_of(engine, run.id, export_id)["status"] == "running"

    engine.run_until(lambda: segments_done(engine) == 1)
    engine.run_one()  # the orchestrator records the segment
    midway = status_of(engine, run.id, export_id)
    assert midway["status"] == "running"
    assert 0 < midway["rows"] < 600 and midway["url"] is None

    final = engine.run_until_complete(export_instance_id(run.id, export_id))
    assert final.runtime_status == "Completed"
    assert segments_done(engine) > 2
    done = status_of(engine, run.id, export_id)
    assert done["status"] == "succeeded"
    assert done["rows"] == 600 and done["filename"].startswith(f"summary_{run.id[:8]}_")
    content = download(done["url"])
    assert content == old_path_csv(services, run)
    assert done["bytes"] == len(content)
    assert len(parse_csv(content)) == 601

    # The finished run's file is reused: a second request answers 201 with the same numbers.
    again = post_export(engine, run.id)
    assert again.status_code == 201
    assert {k: json_body(again)[k] for k in ("rows", "bytes")} == {
        "rows": 600,
        "bytes": len(content),
    }
    assert export_instances(engine) == [export_instance_id(run.id, export_id)]


@pytest.mark.usefixtures("small_pages")
def test_a_second_request_joins_the_running_export(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(export_wait_seconds=0, export_segment_seconds=0.001)
    run = stored_run(services, 300, RunStatus.RUNNING)

    first, second = post_export(engine, run.id), post_export(engine, run.id)

    assert first.status_code == second.status_code == 202
    assert first.headers["Location"] == second.headers["Location"]
    (instance,) = export_instances(engine)
    engine.run_until_complete(instance)
    # One orchestration, one writer: the second request did not start a copy of its own.
    writers = {writer_of(call.input) for call in engine.activity_calls(names.EXPORT_ACTIVITY)}
    assert len(writers) == 1 and engine.instance(instance).generations == 1
    export_id = first.headers["Location"].rsplit("/", 1)[1]
    done = status_of(engine, run.id, export_id)
    assert done["status"] == "succeeded" and done["rows"] == 300
    assert download(done["url"]) == old_path_csv(services, run)


def test_export_csv_answers_202_then_redirects_once_written(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(export_wait_seconds=0)
    run = stored_run(services, 40)

    def download_route() -> Any:
        return call_http(
            "exports_download",
            path=f"/api/runs/{run.id}/export.csv",
            route_params={"runId": run.id},
            client=engine.client_binding(),
        )

    pending = download_route()
    assert pending.status_code == 202
    assert json_body(pending)["status"] == "running"
    engine.run_until_complete(export_instances(engine)[0])

    ready = download_route()
    assert ready.status_code == 302
    assert download(ready.headers["Location"]) == old_path_csv(services, run)


def test_an_unknown_export_is_404(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure()
    run = stored_run(services, 1)

    for export_id in ("final-2020-01-01", "live-2031-12-31", "final-2025-13-01", "nope", "x.csv"):
        assert_problem(get_status(engine, run.id, export_id), 404, export_id)
    assert_problem(get_status(engine, "no-such-run", "final-2020-01-01"), 404)
    assert export_instances(engine) == []


def test_a_failed_export_says_why_without_secrets(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    services = configure(export_wait_seconds=0)
    run = stored_run(services, 3)
    # A document no reader can load (written past the repository, as a bad migration might).
    services.storage.table("Transcripts").create_entity(
        {
            "PartitionKey": transcript_storage.partition_of(run.id, "alpha!s000001!099"),
            "RowKey": "alpha!s000001!099",
            "Doc0": '{"id": "alpha!s000001!099", "broken": tru',
        }
    )

    accepted = post_export(engine, run.id)
    assert accepted.status_code == 202
    export_id = accepted.headers["Location"].rsplit("/", 1)[1]
    final = engine.run_until_complete(export_instance_id(run.id, export_id))

    assert final.runtime_status == "Failed"
    failed = status_of(engine, run.id, export_id)
    assert failed["status"] == "failed" and failed["url"] is None
    assert failed["error"].startswith("the export failed: ")
    assert "alpha!s000001!099 cannot be read" in failed["error"]
    assert "json" in failed["error"].lower()
    text = json.dumps(failed)
    assert "Traceback" not in text and 'File "' not in text and "\n" not in failed["error"]
    assert ACCOUNT_KEY not in text and "AccountKey" not in text
    # Nothing was published under the export's name.
    blob = unquote(urlsplit(f"/{run.id}/final/").path)
    assert not list(services.storage.container(services.exports.name).list_blobs(blob[1:]))
