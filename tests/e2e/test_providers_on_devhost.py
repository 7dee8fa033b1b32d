"""Rate limits, failures and provider caps end to end on devhost: what reaches the provider."""

from __future__ import annotations

import itertools
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
# How late a retry may start after it is due: the lane finishes the call it is making (50 ms
# here) and the Durable timer fires (devhost checks timers every few milliseconds).
RETRY_SLACK_SECONDS = 0.75


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
        # The waits were durable timers of the lanes, not sleeping activities.
        instances = httpx.get(f"{stack.url}/admin/devhost/instances").json()["instances"]
        lanes = [i for i in instances if i["instanceId"].startswith(run["id"] + ":")]
        assert sum(lane["timersCreated"] for lane in lanes) > 0
        assert max(call["finishedAt"] - call["startedAt"] for call in made) < 1.0
        # Each rejected job was tried again when its Retry-After (1 s, plus up to 25% jitter)
        # had passed: not earlier, and not much later (no wave to wait for).
        by_job: dict[str, list[dict[str, Any]]] = {}
        for call in sorted(made, key=lambda c: c["startedAt"]):
            by_job.setdefault(call["correlationId"], []).append(call)
        gaps = [
            after["startedAt"] - before["finishedAt"]
            for calls in by_job.values()
            for before, after in itertools.pairwise(calls)
        ]
        assert gaps and min(gaps) >= 1.0
        assert max(gaps) < 1.25 + RETRY_SLACK_SECONDS, sorted(gaps)[-5:]


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


LOCAL_CAP = 3


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
        "EVALRUNS_PROVIDER_LOCAL_MAX_CONCURRENCY": str(LOCAL_CAP),
    }
    log = tmp_path / "devhost.log"
    with (
        log.open("wb") as output,
        running_devhost(ROOT, env=env, ready_path="/api/openapi.json", output=output) as url,
        EvalrunsClient(url) as client,
    ):
        run = start(client, models=["local-model", "mock-small"], samplePercentage=16)
        done = wait_for(client, run["id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        assert slow_provider.requests == done["progress"]["byModel"]["local-model"]["total"]
        # The setting, not the catalog's 4, is the cap: reached, never passed.
        assert slow_provider.peak == LOCAL_CAP != load_catalog().providers["local"].max_concurrency


def _grid() -> dict[str, Any]:
    return {
        "name": "grid",
        "template": "[A] [B]",
        "dimensions": [
            {"name": "A", "values": ["a1", "a2", "a3", "a4", "a5"]},
            {"name": "B", "values": ["b1", "b2", "b3", "b4", "b5"]},
        ],
    }
