"""Records agree with orchestrations on devhost: a run terminated through the Durable webhook
the API hands out is reconciled by the timer-triggered sweeper (run here through the host's
admin endpoint, as an operator would) and at once by the next read; health counts it first."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from evalruns.client import EvalrunsClient
from tests.e2e.conftest import Stack
from tests.e2e.test_run_control_on_devhost import (
    CONTROL_SETTINGS,
    in_flight_settled,
    job_calls,
    start,
)
from tests.e2e.test_run_on_devhost import poll


def stored(client: EvalrunsClient, run_id: str) -> dict[str, Any]:
    """The run as recorded (the list shows records; reading the run itself would reconcile)."""
    return next(run for run in client.runs() if run["id"] == run_id)


def disagreeing(stack: Stack) -> int:
    queue = httpx.get(f"{stack.url}/api/health/queue", timeout=30).json()
    count: int = queue["disagreeingRecords"]
    return count


@pytest.mark.settings(**CONTROL_SETTINGS)
def test_a_run_terminated_through_the_webhook_is_swept_and_counted(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        run = start(client, models=["mock-small"], samplePercentage=30)
        poll(lambda: len(job_calls(stack.calls, run)) >= 4)
        terminated = httpx.post(
            f"{stack.url}/runtime/webhooks/durabletask/instances/{run['id']}/terminate",
            params={"reason": "stopped by an operator"},
        )
        assert terminated.status_code == 202
        poll(lambda: disagreeing(stack) == 1)
        assert stored(client, run["id"])["status"] == "RUNNING"  # the record does not know yet

        swept = httpx.post(f"{stack.url}/admin/functions/sweep_runs", json={"input": ""})
        assert swept.status_code == 202
        record = poll(lambda: (r := stored(client, run["id"]))["status"] == "CANCELLED" and r)
        assert "terminated outside the API" in record["error"]
        assert "stopped by an operator" in record["error"]
        assert disagreeing(stack) == 0
        # The lanes see the ended run (within the status cache's staleness): once the calls in
        # flight have finished, every job that reached the provider has its transcript, and the
        # record counts them (late probes recount; the sweeper's next pass would too).
        poll(in_flight_settled(stack.calls, run))
        kept = poll(
            lambda: (
                (t := list(client.transcripts(run["id"], limit=100)))
                and len(t) == len(job_calls(stack.calls, run))
                and t
            )
        )
        progress = poll(
            lambda: (
                (p := stored(client, run["id"])["progress"])["completed"] + p["failed"] == len(kept)
                and p
            )
        )
        assert progress["total"] > len(kept)


@pytest.mark.settings(**CONTROL_SETTINGS)
def test_reading_a_run_terminated_outside_the_api_shows_the_truth_at_once(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        run = start(client, models=["mock-small"], samplePercentage=30)
        poll(lambda: len(job_calls(stack.calls, run)) >= 2)
        httpx.post(f"{stack.url}/runtime/webhooks/durabletask/instances/{run['id']}/terminate")
        poll(
            lambda: (
                httpx.get(f"{stack.url}/runtime/webhooks/durabletask/instances/{run['id']}").json()[
                    "runtimeStatus"
                ]
                == "Terminated"
            )
        )
        seen = client.run(run["id"])
        assert seen["status"] == "CANCELLED"
        assert "terminated outside the API" in seen["error"]
        assert stored(client, run["id"])["status"] == "CANCELLED"
