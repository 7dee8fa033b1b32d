"""DurableHost throughput on a private Azurite: many short activities behind sub-orchestrations.

    .venv/bin/python bench/devhost_engine_bench.py [--jobs 2000] [--latency 0.2]
        [--batch 20] [--activities 32] [--orchestrators 8] [--memory]

A parent orchestrator fans out ``jobs / batch`` sub-orchestrations at once; each fans out
``batch`` activities that sleep ``latency`` seconds (``asyncio.sleep``), capped at
``--activities`` concurrent activities. The ideal wall time is jobs x latency / activities.
Prints progress, then the figures as JSON on its last line. Not a test: nothing gates on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import azure.durable_functions as df  # noqa: E402

from devhost.azurite import running_azurite  # noqa: E402
from devhost.durable import DurableHost  # noqa: E402

app = df.DFApp()
LATENCY = {"seconds": 0.2}
IN_FLIGHT = {"now": 0, "peak": 0}


@app.activity_trigger(input_name="job")
async def bench_job(job: int) -> int:
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["peak"] = max(IN_FLIGHT["peak"], IN_FLIGHT["now"])
    try:
        await asyncio.sleep(LATENCY["seconds"])
    finally:
        IN_FLIGHT["now"] -= 1
    return job


@app.orchestration_trigger(context_name="context")
def bench_batch(context: df.DurableOrchestrationContext) -> Any:
    jobs: list[int] = context.get_input()
    results = yield context.task_all([context.call_activity("bench_job", job) for job in jobs])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def bench_run(context: df.DurableOrchestrationContext) -> Any:
    jobs, batch = context.get_input()
    batches = [list(range(start, min(start + batch, jobs))) for start in range(0, jobs, batch)]
    totals = yield context.task_all(
        [context.call_sub_orchestrator("bench_batch", chunk) for chunk in batches]
    )
    return sum(totals)


async def run(arguments: argparse.Namespace, connection_string: str | None) -> dict[str, Any]:
    LATENCY["seconds"] = arguments.latency
    hub = f"bench{uuid.uuid4().hex[:8]}"
    host = DurableHost(
        app,
        task_hub=hub,
        connection_string=connection_string,
        max_concurrent_activities=arguments.activities,
        max_concurrent_orchestrators=arguments.orchestrators,
        orchestrator_threads=not arguments.inline,
    )
    await host.start()
    try:
        began = time.perf_counter()
        cpu_began = time.process_time()
        instance_id = host.start_new("bench_run", [arguments.jobs, arguments.batch])
        done = await host.wait_for_completion(instance_id, arguments.timeout)
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
    finally:
        await host.stop()
    expected = arguments.jobs * (arguments.jobs - 1) // 2
    summary = host.summary()
    parent = host.instance(instance_id)
    ideal = arguments.jobs * arguments.latency / arguments.activities
    return {
        "storage": "memory" if connection_string is None else "azurite",
        "jobs": arguments.jobs,
        "batch": arguments.batch,
        "latency_seconds": arguments.latency,
        "max_concurrent_activities": arguments.activities,
        "max_concurrent_orchestrators": arguments.orchestrators,
        "orchestrators_in_threads": not arguments.inline,
        "status": done.status.runtime_status,
        "output_correct": done.output == json.dumps(expected),
        "wall_seconds": round(wall, 3),
        "ideal_seconds": round(ideal, 3),
        "overhead_ratio": round(wall / ideal, 3),
        "peak_activities_in_flight": IN_FLIGHT["peak"],
        "process_cpu_seconds": round(cpu, 3),
        "orchestrator_cpu_seconds": round(summary.orchestrator_cpu_seconds, 3),
        "episodes": summary.episodes,
        "instances": summary.instances,
        "largest_history": summary.largest_history,
        "parent_history": parent.peak_history_length,
        "parent_episodes": parent.episodes,
        "parent_cpu_seconds": round(parent.orchestrator_cpu_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--activities", type=int, default=32)
    parser.add_argument("--orchestrators", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--memory", action="store_true", help="no Azurite: in-memory store")
    parser.add_argument("--inline", action="store_true", help="episodes on the loop thread")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    print(f"{arguments.jobs} jobs of {arguments.latency}s, {arguments.activities} at a time")
    if arguments.memory:
        figures = asyncio.run(run(arguments, None))
    else:
        with running_azurite() as azurite:
            figures = asyncio.run(run(arguments, azurite.connection_string))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
