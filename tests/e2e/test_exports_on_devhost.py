"""A background export on devhost + Azurite, over HTTP: killed with SIGKILL in the middle, the
host restarted on the same data finishes it, and the file is the one the old in-request path
wrote, byte for byte."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from devhost.azurite import Azurite, free_port
from evalruns.client import EvalrunsClient
from evalruns.domain.transcripts import Transcript, TranscriptStatus, Turn, job_key
from evalruns.services import Services
from evalruns.settings import Settings
from evalruns.storage.runs import StoredRun
from tests.e2e.conftest import Stack
from tests.e2e.test_execution_on_devhost import grid, stack_env, start_devhost
from tests.e2e.test_run_control_on_devhost import wait_for
from tests.e2e.test_run_on_devhost import TERMINAL
from tests.integration.exports.test_csv_export import MODEL_IDS, make_run, old_path_csv

T = TypeVar("T")
SAMPLES = 60  # 4 models x 25 scenarios x 60 samples = 6,000 transcripts of ~2 KB
DEADLINE_SECONDS = 120


def poll(check: Callable[[], T | None], interval: float = 0.02) -> T:
    """`check()` once it returns something, or fail at the deadline."""
    end = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < end:
        result = check()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"not done within {DEADLINE_SECONDS} s")


def transcript(run: StoredRun, model: str, scenario: int, sample: int) -> Transcript:
    answer = f'Rating: {sample % 5 + 1}. "{model}", scenario {scenario}, é; ' * 40
    return Transcript(
        id=job_key(model, f"s{scenario:06d}", sample),
        run_id=run.id,
        scenario_id=f"s{scenario:06d}",
        scenario_number=scenario,
        scenario_name=f"scenario {scenario}",
        dimensions={"Urgency": scenario % 5 + 1, "Authority": (scenario - 1) // 5 + 1},
        model_id=model,
        model_version=f"{model}-v7",
        provider="mock",
        sample=sample,
        status=TranscriptStatus.SUCCEEDED,
        decision_code=str(sample % 5 + 1),
        turns=[Turn(role="user", content="Prompt"), Turn(role="assistant", content=answer)],
        created_at=datetime(2025, 4, 2, tzinfo=UTC),
        updated_at=datetime(2025, 4, 2, tzinfo=UTC),
    )


def services_for(azurite: Azurite, env: dict[str, str]) -> Services:
    return Services(
        Settings(
            storage_connection=azurite.connection_string,
            table_prefix=env["EVALRUNS_TABLE_PREFIX"],
            exports_container=env["EVALRUNS_EXPORTS_CONTAINER"],
            spill_container=env["EVALRUNS_SPILL_CONTAINER"],
        )
    )


def test_a_background_export_finishes_after_the_host_is_killed(
    azurite: Azurite, tmp_path: Path
) -> None:
    env = stack_env(azurite, tmp_path) | {
        "EVALRUNS_EXPORT_WAIT_SECONDS": "0",  # always in the background
        "EVALRUNS_EXPORT_SEGMENT_SECONDS": "0.05",  # a page or so per activity
    }
    services = services_for(azurite, env)
    run = services.runs.create(make_run())
    transcripts = [
        transcript(run, model, scenario, sample)
        for model in MODEL_IDS
        for scenario in range(1, 26)
        for sample in range(1, SAMPLES + 1)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(services.transcripts.put, transcripts))
    expected = old_path_csv(services, run)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/runs/{run.id}"

    first = start_devhost(env, port, tmp_path / "first.log")
    try:
        accepted = httpx.post(f"{url}/exports", json={"format": "csv"}, timeout=30)
        assert accepted.status_code == 202, accepted.text
        status_url = f"http://127.0.0.1:{port}{accepted.headers['Location']}"

        def some_rows() -> dict[str, Any] | None:
            status: dict[str, Any] = httpx.get(status_url, timeout=30).json()
            return status if status["rows"] > 0 or status["status"] != "running" else None

        before_kill = poll(some_rows)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert before_kill["status"] == "running"
    assert 0 < before_kill["rows"] < len(transcripts)

    second = start_devhost(env, port, tmp_path / "second.log")
    try:

        def finished() -> dict[str, Any] | None:
            status: dict[str, Any] = httpx.get(status_url, timeout=30).json()
            return None if status["status"] == "running" else status

        done = poll(finished, interval=0.2)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=30)

    assert done["status"] == "succeeded", done
    assert done["rows"] == len(transcripts) and done["bytes"] == len(expected)
    downloaded = httpx.get(done["url"], timeout=60)
    assert downloaded.status_code == 200
    assert downloaded.content == expected


@pytest.mark.settings(EVALRUNS_EXPORT_WAIT_SECONDS="0")
def test_the_client_waits_for_a_background_export(stack: Stack) -> None:
    """Every export answers 202 here; `EvalrunsClient.export` (and so `evalruns export`)
    follows the status route to the link."""
    with EvalrunsClient(stack.url) as client:
        definition = client.create_definition(grid(10))
        run_id = client.start_run(definitionId=definition["id"], models=["mock-small"])["run"]["id"]
        assert wait_for(client, run_id, TERMINAL)["status"] == "COMPLETED"
        accepted = httpx.post(f"{stack.url}/api/runs/{run_id}/exports", json={}, timeout=30)
        link = client.export(run_id)

    assert accepted.status_code == 202 and accepted.json()["status"] == "running"
    assert link["rows"] == 10 and link["filename"].endswith(".csv")
    content = httpx.get(link["url"], timeout=30).content
    assert content.startswith(b"\xef\xbb\xbfScenario,") and content.count(b"\r\n") == 11
