"""What rate limits cost: a mock run with a share of calls answered 429 (Retry-After: 1)
against the same run without, on devhost + Azurite.

    .venv/bin/python bench/rate_limit_bench.py [--jobs 500] [--rate 0.2] [--latency-ms 200]

While the runs execute, devhost's running activities are sampled; afterwards the mock's call
log tells, for every sample, how many jobs were waiting out a Retry-After and how many calls
were in flight. The run is "only waiting" at a sample when jobs wait, every job has had its
first call (no fresh work is left to overlap the waits) and no call is within QUIET_SECONDS
(the time a probe takes to read the run before its call and record the outcome after it).
"Waiting costs no running activity" means: no activity runs at those samples. Prints JSON on
its last line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from devhost.azurite import running_azurite  # noqa: E402
from devhost.process import running_devhost  # noqa: E402
from evalruns.client import EvalrunsClient  # noqa: E402
from evalruns.domain.runs import TERMINAL  # noqa: E402

SAMPLE_SECONDS = 0.05
QUIET_SECONDS = 0.25


DEFINITION = {
    "name": "rate limits (625 scenarios)",
    "template": "[A] [B] [C] [D]",
    "dimensions": [{"name": name, "values": [f"{name}{i}" for i in range(5)]} for name in "ABCD"],
}


def run_once(azurite: Any, jobs: int, rate: float, latency_ms: int, log: Path) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "EVALRUNS_TASK_HUB": f"rl{suffix}",
        "EVALRUNS_TABLE_PREFIX": f"rl{suffix}",
        "EVALRUNS_MOCK_LATENCY_MS": str(latency_ms),
        "EVALRUNS_MOCK_RATE_LIMIT_RATE": str(rate),
        "EVALRUNS_MOCK_SEED": "7",
        "EVALRUNS_MAX_ATTEMPTS": "20",
        "EVALRUNS_MOCK_CALL_LOG": str(log),
    }
    samples: list[tuple[float, dict[str, int]]] = []
    stop = threading.Event()
    with (
        running_devhost(ROOT, env=env, ready_path="/api/openapi.json") as url,
        EvalrunsClient(url) as client,
    ):

        def sample() -> None:
            while not stop.is_set():
                load = httpx.get(f"{url}/admin/devhost/activities").json()
                samples.append((time.time(), load.get("runningByName", {})))
                stop.wait(SAMPLE_SECONDS)

        created = client.create_definition(DEFINITION)
        percentage = 100 * jobs / 625
        began = time.monotonic()
        run = client.start_run(
            definitionId=created["id"], models=["mock-small"], samplePercentage=percentage
        )["run"]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        probes_done = None
        while run["status"] not in TERMINAL:
            time.sleep(0.2)
            run = client.run(run["id"])
            if probes_done is None and run["status"] != "RUNNING":
                probes_done = time.monotonic() - began
        stop.set()
        sampler.join()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [c for c in calls if str(c["correlationId"]).startswith(run["id"] + ":")]
    return {"run": run, "probes_seconds": probes_done, "samples": samples, "calls": calls}


def waiting_intervals(calls: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Per job: from a rate-limited call's end to the start of its next call."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        by_job.setdefault(call["correlationId"], []).append(call)
    intervals = []
    for job_calls in by_job.values():
        job_calls.sort(key=lambda c: c["startedAt"])
        for call, retry in itertools.pairwise(job_calls):
            if call["outcome"] == "RATE_LIMITED":
                intervals.append((call["finishedAt"], retry["startedAt"]))
    return intervals


def first_calls(calls: list[dict[str, Any]]) -> list[float]:
    """When each job's first call started."""
    first: dict[str, float] = {}
    for call in calls:
        job = call["correlationId"]
        first[job] = min(first.get(job, call["startedAt"]), call["startedAt"])
    return list(first.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--latency-ms", type=int, default=200)
    args = parser.parse_args()
    with running_azurite() as azurite, tempfile.TemporaryDirectory() as folder:
        clean = run_once(azurite, args.jobs, 0.0, args.latency_ms, Path(folder) / "clean.jsonl")
        limited = run_once(
            azurite, args.jobs, args.rate, args.latency_ms, Path(folder) / "rl.jsonl"
        )
    calls = limited["calls"]
    waits = waiting_intervals(calls)
    last_first_call = max(first_calls(calls))
    idle_waiting_peak = 0
    idle_waiting_names: set[str] = set()
    waiting_samples = 0
    for moment, by_name in limited["samples"]:
        running = sum(by_name.values())
        waiting = sum(1 for start, end in waits if start <= moment <= end)
        near = sum(
            1
            for c in calls
            if c["startedAt"] - QUIET_SECONDS <= moment <= c["finishedAt"] + QUIET_SECONDS
        )
        if waiting and not near and moment > last_first_call:
            waiting_samples += 1
            idle_waiting_peak = max(idle_waiting_peak, running)
            idle_waiting_names.update(by_name)
    rejected = sum(1 for c in calls if c["outcome"] == "RATE_LIMITED")
    print(
        json.dumps(
            {
                "jobs": limited["run"]["progress"]["total"],
                "rate_limited_share": args.rate,
                "latency_ms": args.latency_ms,
                "calls": len(calls),
                "rejected_calls": rejected,
                "status": limited["run"]["status"],
                "probe_phase_seconds_without_429": round(clean["probes_seconds"] or 0, 2),
                "probe_phase_seconds_with_429": round(limited["probes_seconds"] or 0, 2),
                "longest_call_seconds": round(
                    max(c["finishedAt"] - c["startedAt"] for c in calls), 3
                ),
                "samples_only_waiting": waiting_samples,
                "peak_running_activities_while_only_waiting": idle_waiting_peak,
                "activities_running_while_only_waiting": sorted(idle_waiting_names),
                "peak_running_activities": max(
                    (sum(by_name.values()) for _, by_name in limited["samples"]), default=0
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
