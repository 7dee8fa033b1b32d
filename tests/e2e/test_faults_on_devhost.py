"""Faults end to end on devhost + Azurite: storage stopped for 15 s in the middle of a run, a
provider that fails 30% of its calls the ways flaky servers do, and a host killed with SIGKILL
while it summarises. Each run completes, and every job ends as exactly one transcript."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.azurite import Azurite, free_port
from devhost.process import stop
from evalruns.client import EvalrunsClient
from tests.e2e.test_execution_on_devhost import services_of, stack_env, start_devhost
from tests.e2e.test_run_control_on_devhost import calls, job_calls, wait_for
from tests.e2e.test_run_on_devhost import TERMINAL, poll
from tests.support.faulty_openai import FaultyOpenAIServer, conversation
from tests.support.outage import RestartableAzurite

OUTAGE_SECONDS = 15.0
MAX_ATTEMPTS = 4
# The provider's timeout in these tests, and how long a hanging call holds its connection.
PROVIDER_TIMEOUT_SECONDS = 1.0
HANG_SECONDS = 5.0
FAULT_SHARE = 0.3
SUMMARY_CODES = {"1", "2", "3", "4", "5", "other"}


def grid(sizes: tuple[int, ...], tag: str) -> dict[str, Any]:
    """A definition with a dimension of each size (at most 5), its prompts marked `tag` (the
    fake provider tells jobs apart by their prompts)."""
    names = "ABC"[: len(sizes)]
    return {
        "name": f"faults {tag}",
        "template": " ".join(f"[{name}]" for name in names) + f" ({tag}).",
        "dimensions": [
            {"name": name, "values": [f"{name.lower()}{i}" for i in range(size)]}
            for name, size in zip(names, sizes, strict=True)
        ],
    }


def start_run(
    client: EvalrunsClient, sizes: tuple[int, ...], models: list[str], tag: str
) -> dict[str, Any]:
    definition = client.create_definition(grid(sizes, tag))
    run: dict[str, Any] = client.start_run(definitionId=definition["id"], models=models)["run"]
    return run


def summary_calls(log: Path, since: float) -> list[dict[str, Any]]:
    """Summary calls started at or after `since` (their correlation ids name no run)."""
    return [
        c
        for c in calls(log)
        if str(c["correlationId"]).startswith("summary:") and c["startedAt"] >= since
    ]


def assert_one_transcript_per_job(transcripts: list[dict[str, Any]], done: dict[str, Any]) -> None:
    ids = [t["id"] for t in transcripts]
    assert len(ids) == len(set(ids)) == done["progress"]["total"]
    progress = done["progress"]
    assert progress["completed"] + progress["failed"] == progress["total"]


def assert_never_billed_after_success(
    azurite: Azurite, env: dict[str, str], log: Path, run: dict[str, Any]
) -> None:
    """No provider call for a job started after its transcript was written."""
    written = {
        t.id: t.created_at.timestamp()
        for t in services_of(azurite, env).transcripts.iterate(run["id"])
    }
    starts: dict[str, list[float]] = {}
    for call in job_calls(log, run):
        starts.setdefault(call["correlationId"].split(":", 1)[1], []).append(call["startedAt"])
    assert set(starts) == set(written)
    for key, started in starts.items():
        assert all(moment < written[key] for moment in started), key


# -- storage stopped mid-run ---------------------------------------------------------------------


def test_a_run_rides_out_storage_stopped_for_15_seconds(tmp_path: Path) -> None:
    """Azurite stops mid-run and starts again 15 s later on the same data: the run completes,
    every job has one transcript (with its summary), and while storage is down the API answers
    503 problem+json."""
    with RestartableAzurite(tmp_path / "azurite") as storage:
        env = stack_env(storage.azurite, tmp_path) | {
            "EVALRUNS_MOCK_LATENCY_MS": "200",
            "EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY": "4",
        }
        log = Path(env["EVALRUNS_MOCK_CALL_LOG"])
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        host = start_devhost(env, port, tmp_path / "devhost.log")
        try:
            with EvalrunsClient(url) as client:
                run = start_run(client, (5, 4), ["mock-small", "mock-large"], "outage")
                poll(lambda: len(job_calls(log, run)) >= 8)
                storage.stop()
                back_at = time.monotonic() + OUTAGE_SECONDS
                try:
                    down = httpx.get(f"{url}/api/runs/{run['id']}", timeout=60)
                    assert time.monotonic() < back_at  # answered while storage was down
                finally:
                    time.sleep(max(0.0, back_at - time.monotonic()))  # the outage itself
                    storage.start()
                done = wait_for(client, run["id"], TERMINAL)
                transcripts = list(client.transcripts(run["id"], limit=100))
                # The sweeper would find nothing to put right: no record disagrees.
                queue = httpx.get(f"{url}/api/health/queue", timeout=30).json()
            assert_never_billed_after_success(storage.azurite, env, log, run)
        finally:
            stop(host)

    assert down.status_code == 503, down.text
    assert down.headers["content-type"].startswith("application/problem+json")
    assert int(down.headers["retry-after"]) > 0
    problem = down.json()
    assert problem["status"] == 503 and "storage is unavailable" in problem["detail"]
    assert "Traceback" not in down.text

    assert done["status"] == "COMPLETED", done
    assert done["progress"]["total"] == 40 and done["progress"]["failed"] == 0
    assert_one_transcript_per_job(transcripts, done)
    assert queue["disagreeingRecords"] == 0
    assert {t["status"] for t in transcripts} == {"SUCCEEDED"}
    assert {t["decisionCode"] for t in transcripts} <= SUMMARY_CODES  # every one summarised


# -- a flaky provider, and a host killed while it summarises --------------------------------------


@dataclass
class Host:
    """devhost on a fixed port and environment, which a test may kill and start again."""

    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> Path:
        return Path(self.env["EVALRUNS_MOCK_CALL_LOG"])

    def start(self) -> None:
        self.process = start_devhost(self.env, self.port, self.log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@pytest.fixture(scope="module")
def provider() -> Iterator[FaultyOpenAIServer]:
    with FaultyOpenAIServer(share=FAULT_SHARE, hang_seconds=HANG_SECONDS) as server:
        yield server


@pytest.fixture(scope="module")
def host(
    azurite: Azurite, provider: FaultyOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Host]:
    """One devhost for the module: probes go to the local provider (the faulty server),
    summaries to the mock, at 300 ms each and two at a time, so a run summarises for a while
    after its last probe."""
    directory = tmp_path_factory.mktemp("faults")
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "EVALRUNS_TASK_HUB": f"faults{suffix}",
        "EVALRUNS_TABLE_PREFIX": f"faults{suffix}",
        "EVALRUNS_EXPORTS_CONTAINER": f"exports-{suffix}",
        "EVALRUNS_SPILL_CONTAINER": f"content-{suffix}",
        "EVALRUNS_MOCK_CALL_LOG": str(directory / "calls.jsonl"),
        "EVALRUNS_LOCAL_OPENAI_BASE_URL": provider.base_url,
        "EVALRUNS_PROVIDER_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
        "EVALRUNS_PROVIDER_LOCAL_MAX_CONCURRENCY": "8",
        "EVALRUNS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "EVALRUNS_SUMMARISER_MODEL": "mock-small",
        "EVALRUNS_MOCK_LATENCY_MS": "300",
        "EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY": "2",
    }
    running = Host(env, free_port(), directory / "devhost.log")
    running.start()
    yield running
    running.stop()


def test_jobs_meet_garbage_resets_and_hangs_and_each_ends_as_it_should(
    host: Host, provider: FaultyOpenAIServer
) -> None:
    """30% of calls fail: garbage fails the job at once (MALFORMED_RESPONSE), a reset
    (NETWORK) or a hang past the timeout (TIMEOUT) is retried, up to the last attempt."""
    provider.reset(share=FAULT_SHARE)
    with EvalrunsClient(host.url) as client:
        run = start_run(client, (5, 4, 2), ["local-model"], "flaky")
        done = wait_for(client, run["id"], TERMINAL)
        transcripts = [client.transcript(run["id"], t["id"]) for t in client.transcripts(run["id"])]

    assert done["status"] == "COMPLETED", done
    assert_one_transcript_per_job(transcripts, done)
    made = Counter(conversation(r.body) for r in provider.completions())
    outcomes: Counter[tuple[str, str | None, bool]] = Counter()
    for transcript in transcripts:
        key = [turn["content"] for turn in transcript["turns"] if turn["role"] == "user"][-1]
        expected = provider.expected(key, MAX_ATTEMPTS)
        error = transcript.get("error") or {}
        assert (transcript["status"], error.get("code")) == (expected.status, expected.code)
        assert transcript["attempts"] == made[key] == expected.attempts, key
        outcomes[expected.status, expected.code, expected.attempts > 1] += 1
    met = Counter(
        provider.fault(key, n) for key, count in made.items() for n in range(1, count + 1)
    )
    print(f"{sum(made.values())} calls, {dict(met)}; {len(transcripts)} jobs: {dict(outcomes)}")
    assert {"garbage", "reset", "hang"} <= set(met)
    failed = sum(n for (status, _, _), n in outcomes.items() if status == "FAILED")
    assert done["progress"]["failed"] == failed
    # The seed gives this run both: jobs retried to success, and jobs failed on garbage.
    assert outcomes["SUCCEEDED", None, True] > 0
    assert (
        outcomes["FAILED", "MALFORMED_RESPONSE", False]
        + outcomes["FAILED", "MALFORMED_RESPONSE", True]
        > 0
    )


def test_a_host_killed_while_summarising_completes_every_summary_after_a_restart(
    host: Host, provider: FaultyOpenAIServer
) -> None:
    provider.reset(share=0.0)
    began = time.time()
    with EvalrunsClient(host.url) as client:
        run = start_run(client, (5, 3, 2), ["local-model"], "killed")
        poll(lambda: client.run(run["id"])["status"] == "SUMMARIZING")
        host.kill()
        before_kill = len(summary_calls(host.calls, began))  # a call's line is written at its end
        host.start()
        done = wait_for(client, run["id"], TERMINAL)
        transcripts = [client.transcript(run["id"], t["id"]) for t in client.transcripts(run["id"])]

    print(f"killed after {before_kill} of 30 summaries")
    assert 0 < before_kill < 30  # killed part way through the summaries
    summarised = {
        c["correlationId"].removeprefix("summary:") for c in summary_calls(host.calls, began)
    }
    assert summarised == {t["id"] for t in transcripts}
    assert done["status"] == "COMPLETED", done
    assert_one_transcript_per_job(transcripts, done)
    assert {t["status"] for t in transcripts} == {"SUCCEEDED"}
    assert {t["decisionCode"] for t in transcripts} == {"3"}  # the fake answers "Rating: 3"
    assert all(t["decisionText"] for t in transcripts)
