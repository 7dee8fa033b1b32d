"""Rate limits, failures and provider caps end to end on devhost: what reaches the provider."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.azurite import Azurite
from devhost.process import running_devhost
from evalruns.client import EvalrunsClient
from evalruns.providers.catalog import load_catalog
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_run_control_on_devhost import job_calls, start, wait_for
from tests.e2e.test_run_on_devhost import TERMINAL
from tests.support.fake_openai import completion_body

SLOW_ANSWER_SECONDS = 0.2


@pytest.mark.settings(
    EVALRUNS_MOCK_RATE_LIMIT_RATE="0.2",
    EVALRUNS_MOCK_SEED="9",
    EVALRUNS_MAX_ATTEMPTS="10",
    EVALRUNS_MOCK_LATENCY_MS="50",
)
def test_rate_limited_calls_wait_on_durable_timers_and_every_job_succeeds(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        started = client.start_run(
            definitionId=client.create_definition(_grid())["id"], models=["mock-small"]
        )
        run = started["run"]
        jobs = run["progress"]["total"]
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        assert done["progress"]["completed"] == jobs and done["progress"]["failed"] == 0
        made = job_calls(stack.calls, run)
        outcomes = Counter(call["outcome"] for call in made)
        assert outcomes["RATE_LIMITED"] > 0
        assert len(made) == jobs + outcomes["RATE_LIMITED"]  # jobs + rejected calls, no more
        # The waits were durable timers of the run's orchestration, not sleeping activities;
        # no batch waited, so no wave was held back by a retry chain.
        instances = httpx.get(f"{stack.url}/admin/devhost/instances").json()["instances"]
        mine = {i["instanceId"]: i for i in instances if i["instanceId"].startswith(run["id"])}
        assert mine[run["id"]]["timersCreated"] > 0
        batches = [i for i in mine if i != run["id"]]
        assert batches and all(mine[batch]["timersCreated"] == 0 for batch in batches)
        hook = started["statusQueryGetUri"].split("?")[0].rsplit("/", 1)[0]
        query = started["statusQueryGetUri"].split("?", 1)[1]
        for batch in batches:
            status = httpx.get(f"{hook}/{batch}?{query}&showHistory=true").json()
            events = {event["EventType"] for event in status["historyEvents"]}
            assert "TaskCompleted" in events and "TimerCreated" not in events
        assert max(call["finishedAt"] - call["startedAt"] for call in made) < 1.0


@pytest.mark.settings(EVALRUNS_MOCK_FAILURE_RATE="1.0", EVALRUNS_MAX_ATTEMPTS="10")
def test_a_non_retryable_failure_is_recorded_without_retrying(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        run = start(client, models=["mock-small"], samplePercentage=4)
        jobs = run["progress"]["total"]
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "FAILED" and f"all {jobs} jobs failed" in done["error"]
        assert len(job_calls(stack.calls, run)) == jobs  # one call each: no retries
        for item in client.transcripts(run["id"]):
            whole = client.transcript(run["id"], item["id"])
            assert whole["error"]["code"] == "INVALID_REQUEST" and whole["attempts"] == 1


class _SlowServer(ThreadingHTTPServer):
    in_flight = 0
    peak = 0
    requests = 0
    lock = threading.Lock()


class _SlowHandler(BaseHTTPRequestHandler):
    server: _SlowServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.requests += 1
            server.peak = max(server.peak, server.in_flight)
        threading.Event().wait(SLOW_ANSWER_SECONDS)
        with server.lock:
            server.in_flight -= 1
        body = json.dumps(completion_body(model="local-model", content="Rating: 3")).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def slow_provider() -> Iterator[_SlowServer]:
    server = _SlowServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_providers_concurrency_cap_holds_across_the_run(
    slow_provider: _SlowServer, azurite: Azurite, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{slow_provider.server_address[1]}/v1"
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "EVALRUNS_TASK_HUB": "caps" + tmp_path.name[-8:].replace("_", ""),
        "EVALRUNS_TABLE_PREFIX": "caps" + tmp_path.name[-8:].replace("_", ""),
        "EVALRUNS_LOCAL_OPENAI_BASE_URL": base,
        "EVALRUNS_SUMMARISER_MODEL": "mock-small",
    }
    log = tmp_path / "devhost.log"
    with (
        log.open("wb") as output,
        running_devhost(ROOT, env=env, ready_path="/api/openapi.json", output=output) as url,
        EvalrunsClient(url) as client,
    ):
        cap = load_catalog().providers["local"].max_concurrency
        run = start(client, models=["local-model", "mock-small"], samplePercentage=16)
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        assert slow_provider.requests == done["progress"]["byModel"]["local-model"]["total"]
        assert 1 < slow_provider.peak <= cap


def _grid() -> dict[str, Any]:
    return {
        "name": "grid",
        "template": "[A] [B]",
        "dimensions": [
            {"name": "A", "values": ["a1", "a2", "a3", "a4", "a5"]},
            {"name": "B", "values": ["b1", "b2", "b3", "b4", "b5"]},
        ],
    }
