"""How a run executes, end to end on devhost + Azurite, read from the mock provider's call log
(one line per call, with the job, its start and end): no barrier between jobs, summaries while
jobs are probed, a rate-limited provider paced by its lanes together, and a host killed with
SIGKILL that loses and duplicates nothing."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite, free_port
from devhost.process import running_devhost, start
from evalruns.client import EvalrunsClient
from evalruns.services import Services
from evalruns.settings import Settings
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_run_control_on_devhost import calls, job_calls, wait_for
from tests.e2e.test_run_on_devhost import TERMINAL, poll

SLOW_MS = 3000


def rated_grid() -> dict[str, Any]:
    """75 scenarios."""
    return {
        "name": "grid 75",
        "template": "[A] [B] [C]",
        "dimensions": [
            {"name": "A", "values": [f"a{i}" for i in range(5)]},
            {"name": "B", "values": [f"b{i}" for i in range(5)]},
            {"name": "C", "values": [f"c{i}" for i in range(3)]},
        ],
    }


def grid(scenarios: int) -> dict[str, Any]:
    """A definition of `scenarios` scenarios (a multiple of 5 up to 25)."""
    return {
        "name": f"grid {scenarios}",
        "template": "[A] [B]",
        "dimensions": [
            {"name": "A", "values": [f"a{i}" for i in range(5)]},
            {"name": "B", "values": [f"b{i}" for i in range(scenarios // 5)]},
        ],
    }


def summary_calls(log: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in calls(log) if str(c["correlationId"]).startswith("summary:")]


@pytest.mark.settings(
    EVALRUNS_MOCK_LATENCY_MS="100",
    EVALRUNS_MOCK_LATENCY_TAIL=f"0.1:{SLOW_MS}",
    EVALRUNS_MOCK_SEED="4",
    EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY="4",
)
def test_a_slow_call_holds_only_its_own_slot(stack: Stack) -> None:
    """While a job takes 3 s longer than the others, the other lanes start job after job."""
    with EvalrunsClient(stack.url) as client:
        definition = client.create_definition(grid(25))
        run = client.start_run(definitionId=definition["id"], models=["mock-small", "mock-large"])[
            "run"
        ]
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        made = sorted(job_calls(stack.calls, run), key=lambda c: c["startedAt"])
        # Slow calls that ended while fresh jobs were left (the last ones cannot overlap much).
        tenth_last = made[-10]["startedAt"]
        slow = [
            c
            for c in made
            if c["finishedAt"] - c["startedAt"] >= SLOW_MS / 1000 and c["finishedAt"] < tenth_last
        ]
        assert slow, "the seed gives some slow calls"
        for call in slow:
            started_meanwhile = [
                other
                for other in made
                if other is not call and call["startedAt"] < other["startedAt"] < call["finishedAt"]
            ]
            # Three other lanes, 100 ms a call: a wave barrier would start none of them.
            assert len(started_meanwhile) >= 6, (call, len(started_meanwhile))


@pytest.mark.settings(EVALRUNS_MOCK_LATENCY_MS="200", EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY="4")
def test_summaries_are_written_while_jobs_are_probed(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        definition = client.create_definition(grid(25))
        run = client.start_run(definitionId=definition["id"], models=["mock-small", "mock-large"])[
            "run"
        ]
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        probes = job_calls(stack.calls, run)
        summaries = summary_calls(stack.calls, run)
        assert len(probes) == len(summaries) == 50
        last_probe = max(c["finishedAt"] for c in probes)
        first_summary = min(c["startedAt"] for c in summaries)
        last_summary = max(c["finishedAt"] for c in summaries)
        # 50 jobs on 4 lanes take about 2.5 s: summaries start long before the last probe,
        # and end soon after it.
        assert first_summary < last_probe - 1.0
        assert last_summary - last_probe < 1.5
        transcripts = list(client.transcripts(run["id"], limit=100))
        assert {t["decisionCode"] for t in transcripts} <= {"1", "2", "3", "4", "5", "other"}


RPS = 10


def test_a_rate_limited_provider_is_paced_by_its_lanes_together(
    azurite: Azurite, tmp_path: Path
) -> None:
    """Eight lanes could make 80 calls a second; the provider takes 10. Its lanes back off
    together: most calls go through, and the provider is kept near its limit."""
    env = stack_env(azurite, tmp_path)
    env |= {
        "EVALRUNS_MOCK_LATENCY_MS": "100",
        "EVALRUNS_MOCK_RPS": str(RPS),
        "EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY": "8",
        "EVALRUNS_SUMMARISER_MODEL": "mock-large",  # jobs use mock-small: its own limit
        "EVALRUNS_MAX_ATTEMPTS": "20",
    }
    with (
        (tmp_path / "devhost.log").open("wb") as output,
        running_devhost(ROOT, env=env, ready_path="/api/openapi.json", output=output) as url,
        EvalrunsClient(url) as client,
    ):
        definition = client.create_definition(rated_grid())
        run = client.start_run(definitionId=definition["id"], models=["mock-small"])["run"]
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED" and done["progress"]["completed"] == 75
    made = job_calls(tmp_path / "calls.jsonl", run)
    refused = [c for c in made if c["outcome"] == "RATE_LIMITED"]
    accepted = [c for c in made if c["outcome"] == "ok"]
    span = max(c["finishedAt"] for c in made) - min(c["startedAt"] for c in made)
    print(f"{len(made)} calls, {len(refused)} refused, {len(accepted) / span:.1f}/s accepted")
    assert len(accepted) == 75
    assert len(refused) / len(made) < 0.5
    ledger = services_of(azurite, env).ledgers.get(run["id"])
    assert ledger is not None
    pace = ledger[0].groups["mock"].pace
    assert pace.allowed < pace.cap  # the lanes were cut


def test_a_host_killed_mid_run_finishes_every_job_once(azurite: Azurite, tmp_path: Path) -> None:
    """SIGKILL while lanes run: after the restart the run completes, every job has one
    successful transcript, and no provider call started for a job after its transcript
    was written (a job that succeeded is never billed again)."""
    env = stack_env(azurite, tmp_path) | {
        "EVALRUNS_MOCK_LATENCY_MS": "300",
        "EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY": "4",
    }
    port = free_port()
    log = tmp_path / "calls.jsonl"
    first = start_devhost(env, port, tmp_path / "first.log")
    try:
        url = f"http://127.0.0.1:{port}"
        with EvalrunsClient(url) as client:
            definition = client.create_definition(grid(25))
            run = client.start_run(
                definitionId=definition["id"], models=["mock-small", "mock-large"]
            )["run"]
            poll(lambda: len(job_calls(log, run)) >= 12)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    second = start_devhost(env, port, tmp_path / "second.log")
    try:
        with EvalrunsClient(url) as client:
            done = wait_for(client, run["id"], TERMINAL)
            assert done["status"] == "COMPLETED"
            assert done["progress"]["completed"] == done["progress"]["total"] == 50
            transcripts = list(client.transcripts(run["id"], limit=100))
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=30)
    assert len(transcripts) == 50 and {t["status"] for t in transcripts} == {"SUCCEEDED"}
    written = {
        t.id: t.created_at.timestamp()
        for t in services_of(azurite, env).transcripts.iterate(run["id"])
    }
    by_job: dict[str, list[float]] = defaultdict(list)
    for call in job_calls(log, run):
        by_job[call["correlationId"].split(":", 1)[1]].append(call["startedAt"])
    assert set(by_job) == set(written)
    for key, starts in by_job.items():
        assert all(start < written[key] for start in starts), key


# -- stacks that outlive a single devhost process ---------------------------------------------


def stack_env(azurite: Azurite, tmp_path: Path) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "EVALRUNS_TASK_HUB": f"exec{suffix}",
        "EVALRUNS_TABLE_PREFIX": f"exec{suffix}",
        "EVALRUNS_EXPORTS_CONTAINER": f"exports-{suffix}",
        "EVALRUNS_SPILL_CONTAINER": f"content-{suffix}",
        "EVALRUNS_MOCK_CALL_LOG": str(tmp_path / "calls.jsonl"),
    }


def services_of(azurite: Azurite, env: dict[str, str]) -> Services:
    return Services(
        Settings.model_validate(
            {
                "storage_connection": azurite.connection_string,
                "table_prefix": env["EVALRUNS_TABLE_PREFIX"],
            }
        )
    )


def start_devhost(env: dict[str, str], port: int, output: Path) -> subprocess.Popen[bytes]:
    with output.open("ab") as sink:
        return start(ROOT, env=env, port=port, ready_path="/api/openapi.json", output=sink)
