"""Run control end to end on devhost + Azurite with the mock provider, whose call log (one
line per provider call, with the job key and times) shows exactly which calls started when."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from evalruns.client import EvalrunsClient
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_run_on_devhost import TERMINAL, poll

QUIET_WINDOW_SECONDS = 2.0


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def job_calls(log: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Calls for the run's jobs (correlation id `<run id>:<job key>`; summaries have others)."""
    return [call for call in calls(log) if str(call["correlationId"]).startswith(run["id"] + ":")]


def instance_statuses(stack: Stack, run_id: str) -> dict[str, str]:
    """Runtime status of the run's instance and its lanes, from devhost's admin route."""
    instances = httpx.get(f"{stack.url}/admin/devhost/instances").json()["instances"]
    return {
        i["instanceId"]: i["runtimeStatus"]
        for i in instances
        if i["instanceId"] == run_id or i["instanceId"].startswith(run_id + ":")
    }


def running_lanes(stack: Stack, run_id: str) -> bool:
    statuses = instance_statuses(stack, run_id)
    return any(s == "Running" for i, s in statuses.items() if i != run_id)


def start(client: EvalrunsClient, **body: Any) -> dict[str, Any]:
    definition = client.create_definition(
        json.loads((ROOT / "examples" / "library_funding.json").read_text())
    )
    run: dict[str, Any] = client.start_run(definitionId=definition["id"], **body)["run"]
    return run


def action(stack: Stack, run_id: str, name: str, body: Any = None) -> httpx.Response:
    return httpx.post(f"{stack.url}/api/runs/{run_id}/{name}", json=body or {}, timeout=30)


def wait_for(client: EvalrunsClient, run_id: str, statuses: set[str]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run = client.run(run_id)
        return run if run["status"] in statuses else None

    return poll(reached)  # type: ignore[no-any-return]


def started_after(log: Path, run: dict[str, Any], moment: float, window: float = 0.0) -> int:
    """Job calls that started after `moment`, looked at once `window` seconds have passed
    and every call started by then has finished (a call's log line is written when it ends)."""
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        if any(c["startedAt"] > moment for c in job_calls(log, run)):
            break
        time.sleep(0.1)
    poll(in_flight_settled(log, run))
    return sum(1 for c in job_calls(log, run) if c["startedAt"] > moment)


def in_flight_settled(log: Path, run: dict[str, Any]) -> Callable[[], bool]:
    """True once the call log has not grown for longer than a call takes: every call that
    started has finished and written its line."""
    seen = {"count": -1, "since": time.monotonic()}

    def settled() -> bool:
        count = len(job_calls(log, run))
        now = time.monotonic()
        if count != seen["count"]:
            seen["count"], seen["since"] = count, now
        return now - seen["since"] > SETTLE_SECONDS

    return settled


# Longer than one mock call (300 ms) with its jitter.
SETTLE_SECONDS = 0.8
CONTROL_SETTINGS = {
    "EVALRUNS_MOCK_LATENCY_MS": "300",
    "EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY": "4",
}


@pytest.mark.settings(**CONTROL_SETTINGS)
def test_pause_mid_run_then_resume_runs_every_job_exactly_once(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        run = start(client, models=["mock-small", "mock-large"], samplePercentage=30)
        jobs = run["progress"]["total"]
        poll(lambda: len(job_calls(stack.calls, run)) >= 12)
        paused = action(stack, run["id"], "pause")
        accepted_at = time.time()
        assert paused.status_code == 202, paused.text
        wait_for(client, run["id"], {"PAUSED"})
        late = started_after(stack.calls, run, accepted_at, QUIET_WINDOW_SECONDS)
        print(f"provider calls started after the pause was accepted: {late}")
        assert late == 0
        snapshot = client.run(run["id"])
        assert snapshot["status"] == "PAUSED"
        assert 0 < snapshot["progress"]["completed"] < jobs

        assert action(stack, run["id"], "resume").status_code == 202
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        per_job = Counter(call["correlationId"] for call in job_calls(stack.calls, run))
        assert len(per_job) == jobs and set(per_job.values()) == {1}
        transcripts = list(client.transcripts(run["id"], limit=100))
        assert len(transcripts) == jobs
        assert {t["decisionCode"] for t in transcripts} <= {"1", "2", "3", "4", "5", "other"}


@pytest.mark.settings(**CONTROL_SETTINGS)
def test_pause_at_once_pause_then_cancel_and_cancel_while_running(stack: Stack) -> None:
    log = stack.calls
    with EvalrunsClient(stack.url) as client:
        # Paused straight after the start: the orchestration has barely begun (the step-engine
        # tests place this before its first step); no call starts once the pause is accepted.
        early = start(client, models=["mock-small"], samplePercentage=10)
        assert action(stack, early["id"], "pause").status_code == 202
        accepted_at = time.time()
        wait_for(client, early["id"], {"PAUSED"})
        assert started_after(log, early, accepted_at, QUIET_WINDOW_SECONDS) == 0
        assert client.run(early["id"])["progress"]["completed"] < early["progress"]["total"]
        # Then cancelled while paused.
        cancelled = action(stack, early["id"], "cancel")
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "CANCELLED"
        assert started_after(log, early, accepted_at, 1.0) == 0

        # Cancelled while lanes run: they are terminated, no new calls, transcripts kept.
        busy = start(client, models=["mock-small", "mock-large"], samplePercentage=30)
        poll(lambda: len(job_calls(log, busy)) >= 8 and running_lanes(stack, busy["id"]))
        assert action(stack, busy["id"], "cancel").status_code == 202
        accepted_at = time.time()
        run = client.run(busy["id"])
        assert run["status"] == "CANCELLED" and run["completedAt"]
        assert started_after(log, busy, accepted_at, QUIET_WINDOW_SECONDS) == 0
        statuses = instance_statuses(stack, busy["id"])
        assert statuses[busy["id"]] == "Terminated"
        assert "Terminated" in {s for i, s in statuses.items() if i != busy["id"]}
        kept = list(client.transcripts(busy["id"], limit=100))
        assert len(kept) == len(job_calls(log, busy)) > 0
        # The calls in flight at the cancel are counted as they finish, the export agrees.
        progress = client.run(busy["id"])["progress"]
        assert progress["completed"] + progress["failed"] == len(kept)
        assert client.export(busy["id"])["rows"] == len(kept)


@pytest.mark.settings(**CONTROL_SETTINGS)
def test_a_storm_of_commands_leaves_the_run_consistent(stack: Stack) -> None:
    log = stack.calls
    with EvalrunsClient(stack.url) as client:
        run = start(client, models=["mock-small"], samplePercentage=30)
        jobs = run["progress"]["total"]
        codes = [
            action(stack, run["id"], name).status_code
            for name in ["pause", "pause", "resume", "resume", "pause", "resume", "pause"]
        ]
        assert codes == [202, 409, 202, 409, 202, 202, 202]
        assert action(stack, run["id"], "resume").status_code == 202
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        per_job = Counter(call["correlationId"] for call in job_calls(log, run))
        assert len(per_job) == jobs and set(per_job.values()) == {1}


@pytest.mark.settings(
    EVALRUNS_MOCK_FAILURE_RATE="0.3",
    EVALRUNS_MOCK_SEED="4",
)
def test_reruns_with_lineage(stack: Stack) -> None:
    log = stack.calls
    with EvalrunsClient(stack.url) as client:
        parent = start(client, models=["mock-small"], samplePercentage=20)
        jobs = parent["progress"]["total"]
        assert wait_for(client, parent["id"], TERMINAL)["status"] == "COMPLETED"
        failed = {t["id"] for t in client.transcripts(parent["id"], status="FAILED")}
        assert 0 < len(failed) < jobs

        only_failed = action(stack, parent["id"], "rerun", {"onlyFailed": True})
        assert only_failed.status_code == 202, only_failed.text
        child = only_failed.json()["run"]
        wait_for(client, child["id"], TERMINAL)
        child_calls = {c["correlationId"].split(":", 1)[1] for c in job_calls(log, child)}
        assert len(job_calls(log, child)) == len(failed)  # only the failed jobs were called
        assert child_calls == failed
        child_transcripts = list(client.transcripts(child["id"], limit=100))
        assert len(child_transcripts) == jobs  # complete: carried over + re-run
        assert client.run(child["id"])["parentRunId"] == parent["id"]
        assert client.run(parent["id"])["childRunIds"] == [child["id"]]

        other = action(stack, parent["id"], "rerun", {"models": ["mock-small@mock-small-20250101"]})
        assert other.status_code == 202
        version_run = other.json()["run"]
        wait_for(client, version_run["id"], TERMINAL)
        versions = {t["modelVersion"] for t in client.transcripts(version_run["id"], limit=100)}
        assert versions == {"mock-small-20250101"}
        assert client.run(parent["id"])["childRunIds"] == [child["id"], version_run["id"]]


@pytest.mark.settings(EVALRUNS_SUMMARISER_MODEL="gpt-4o-mini")
def test_a_failing_summariser_never_stalls_the_run(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        run = start(client, models=["mock-small"], samplePercentage=5)
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        for item in client.transcripts(run["id"]):
            whole = client.transcript(run["id"], item["id"])
            assert whole["decisionCode"] == "error"
            assert "OPENAI_API_KEY" in whole["decisionText"]
        link = client.export(run["id"])
        text = httpx.get(link["url"]).content.decode("utf-8-sig")
        assert "summary failed" in text and "pending" not in text
