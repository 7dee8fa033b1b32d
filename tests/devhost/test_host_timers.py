"""Timer triggers on devhost, end to end: schedules, the worker's ``TimerRequest``, runs that do
not overlap, a missed occurrence at start, ``run_on_startup``, and the admin API that runs a
timer function now (``POST /admin/functions/{name}`` with the master key)."""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite
from devhost.timer_monitor import HOSTS_CONTAINER
from devhost.timer_schedule import ScheduleStatus
from tests.devhost.conftest import (
    Devhost,
    child_env,
    copy_app,
    poll,
    run_devhost_to_exit,
    start_devhost,
)

MASTER_KEY = "timer-master-key"
FUNCTION_KEY = "timer-function-key"
WEBHOOKS = "/runtime/webhooks/durabletask"
HOUR = datetime.now().replace(minute=0, second=0, microsecond=0)
MISSED = ScheduleStatus(
    HOUR - timedelta(hours=2), HOUR - timedelta(hours=1), HOUR - timedelta(hours=2)
)
"""The hourly timer's status as recorded before devhost starts: the last hour was missed."""


def timer_env(azurite: Azurite, records: Path, host_id: str, **extra: str) -> dict[str, str]:
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TEST_TASK_HUB": f"hub{uuid.uuid4().hex[:10]}",
        "TIMER_RECORDS": str(records),
        "TICK_SCHEDULE": "* * * * * *",
        "DEVHOST_MASTER_KEY": MASTER_KEY,
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "AzureFunctionsWebHost__hostid": host_id,
    }
    return child_env(**{**settings, **extra})


def status_blob(azurite: Azurite, host_id: str, function: str) -> Any:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client(HOSTS_CONTAINER)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    return container.get_blob_client(f"timers/{host_id}/Host.Functions.{function}/status")


@pytest.fixture(scope="module")
def host_id() -> str:
    return f"timers-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
def host(
    azurite: Azurite, host_id: str, records: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devhost]:
    status_blob(azurite, host_id, "hourly").upload_blob(json.dumps(MISSED.to_json()))
    directory = tmp_path_factory.mktemp("timers")
    app_dir = copy_app(directory, "timer_app")
    started = start_devhost(
        app_dir, directory / "devhost.log", timer_env(azurite, records, host_id)
    )
    yield started
    started.stop()


def recorded_runs(records: Path, function: str) -> list[dict[str, Any]]:
    path = records / f"{function}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def runs(records: Path, function: str, at_least: int = 1) -> list[dict[str, Any]]:
    """The function's recorded runs, once there are ``at_least``."""

    def check() -> list[dict[str, Any]] | None:
        found = recorded_runs(records, function)
        return found if len(found) >= at_least else None

    found: list[dict[str, Any]] = poll(check, timeout=30, what=f"{at_least} runs of {function}")
    return found


def run_now(host: Devhost, name: str, **kwargs: Any) -> httpx.Response:
    return host.post(f"/admin/functions/{name}", **kwargs)


def test_a_timer_fires_on_its_schedule_taken_from_an_app_setting(
    host: Devhost, records: Path
) -> None:
    ticks = runs(records, "tick", at_least=3)

    seconds = [int(tick["at"]) for tick in ticks]
    assert seconds == sorted(set(seconds))  # at most one run a second
    assert all(tick["at"] % 1 < 0.6 for tick in ticks)  # at the start of each second
    assert all(tick["past_due"] is False for tick in ticks)
    assert all(tick["status"] == {} for tick in ticks)  # monitoring is off under a minute
    assert all(tick["schedule"] == {"AdjustForDST": True} for tick in ticks)
    output = host.output()
    assert "\ttick: timerTrigger\n" in output
    assert "The next 5 occurrences of the 'Functions.tick' schedule (Cron: '* * * * * *')" in output
    assert "Executing 'Functions.tick' (Reason='Timer fired at " in output
    assert "Executed 'Functions.tick' (Succeeded, Duration=" in output


def test_runs_of_one_timer_never_overlap_and_a_late_one_follows_at_once(
    records: Path, host: Devhost
) -> None:
    slow = runs(records, "slow", at_least=3)

    for earlier, later in itertools.pairwise(slow):
        assert later["start"] >= earlier["end"]  # never two at once
        assert later["start"] - earlier["end"] < 0.5  # not skipped to the next whole second


def test_run_on_startup_runs_once_at_start(host: Devhost, records: Path) -> None:
    [startup] = runs(records, "startup")

    assert startup["past_due"] is False
    assert startup["status"] == {}  # use_monitor=False
    assert "Trigger Details: UnscheduledInvocationReason: RunOnStartup" in host.output()


def test_a_missed_occurrence_runs_at_start_as_past_due(
    host: Devhost, records: Path, azurite: Azurite, host_id: str
) -> None:
    first = runs(records, "hourly")[0]

    missed = MISSED.next.strftime("%Y-%m-%dT%H:%M:%S")
    assert first["past_due"] is True
    assert first["status"]["Next"].startswith(missed)
    assert (
        f"Trigger Details: UnscheduledInvocationReason: IsPastDue, OriginalSchedule: {missed}"
        in host.output()
    )

    def recorded() -> ScheduleStatus | None:
        blob = status_blob(azurite, host_id, "hourly")
        status = ScheduleStatus.from_json(json.loads(blob.download_blob().readall()))
        return status if status.next > HOUR else None

    status = poll(recorded, what="the status after the past-due run")
    assert status.last > HOUR  # the run's own time, not the missed occurrence
    assert status.next == status.last.replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=1
    )


def test_the_admin_api_needs_the_master_key(host: Devhost, records: Path) -> None:
    before = len(recorded_runs(records, "on_demand"))
    body = {"input": ""}

    assert run_now(host, "on_demand", json=body).status_code == 401
    assert (
        run_now(host, "on_demand", json=body, headers={"x-functions-key": FUNCTION_KEY}).status_code
        == 401
    )
    assert run_now(host, "on_demand", json=body, params={"code": "wrong"}).status_code == 401
    assert (
        run_now(host, "on_demand", json=body, headers={"x-functions-key": MASTER_KEY}).status_code
        == 202
    )
    assert run_now(host, "ON_DEMAND", json=body, params={"code": MASTER_KEY}).status_code == 202

    assert len(runs(records, "on_demand", at_least=before + 2)) == before + 2


def test_a_timer_run_through_the_admin_api_gets_its_status_and_a_durable_client(
    host: Devhost, records: Path
) -> None:
    poll(lambda: "occurrences of the 'Functions.on_demand' schedule" in host.output())
    before = len(recorded_runs(records, "on_demand"))

    response = run_now(host, "on_demand", json={"input": "ignored"}, params={"code": MASTER_KEY})

    assert response.status_code == 202
    latest = runs(records, "on_demand", at_least=before + 1)[-1]
    assert latest["past_due"] is False
    next_new_year = datetime(datetime.now().year + 1, 1, 1).strftime("%Y-%m-%dT%H:%M:%S")
    assert latest["status"]["Next"].startswith(next_new_year)  # the recorded status
    assert latest["status"]["Last"].startswith("0001-01-01T00:00:00")

    def completed() -> dict[str, Any] | None:
        url = f"{WEBHOOKS}/instances/{latest['instance_id']}"
        body: dict[str, Any] = host.get(url, params={"code": MASTER_KEY}).json()
        return body if body.get("runtimeStatus") == "Completed" else None

    assert poll(completed, what="the orchestration the timer started")["output"] == "hello timer"
    reason = "This function was programmatically called via the host APIs."
    assert f"Executing 'Functions.on_demand' (Reason='{reason}')" in host.output()


def test_the_admin_api_answers_like_the_host(host: Devhost) -> None:
    key = {"x-functions-key": MASTER_KEY}
    json_type = {**key, "Content-Type": "application/json"}

    assert run_now(host, "missing", json={}, headers=key).status_code == 404
    assert run_now(host, "on_demand", content=b'{"input":""}', headers=key).status_code == 415
    assert run_now(host, "on_demand", content=b"", headers=json_type).status_code == 400
    assert run_now(host, "on_demand", content=b"[]", headers=json_type).status_code == 400
    assert run_now(host, "on_demand", content=b"{", headers=json_type).status_code == 400
    refused = run_now(host, "greet", json={}, headers=key)
    assert refused.status_code == 501
    assert "timer functions" in refused.text


def test_devhost_refuses_a_schedule_the_host_would_not_recognize(
    azurite: Azurite, tmp_path: Path
) -> None:
    app_dir = copy_app(tmp_path, "timer_app")
    env = timer_env(azurite, tmp_path, "refused", TICK_SCHEDULE="every second")

    result = run_devhost_to_exit(app_dir, **env)

    assert result.returncode == 1
    assert (
        "tick: The schedule expression 'every second' was not recognized as a valid cron "
        "expression or timespan string." in result.stderr
    )
