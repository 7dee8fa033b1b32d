"""A ``DurableHost`` in a process of its own, for the restart-durability test: runs until killed.

    python tests/devhost/durable_host_process.py CONNECTION_STRING TASK_HUB RECORD_FILE
        [--start INSTANCE_ID JOBS]

With ``--start`` it starts ``restart_run`` (``JOBS`` jobs fanned out through sub-orchestrations
of ``BATCH`` activities) once the host is up. Every activity execution appends ``start n pid``
and ``done n pid`` lines to ``RECORD_FILE``, so the test can count executions across
processes. Prints ``ready`` when the host has recovered and is scheduling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import azure.durable_functions as df  # noqa: E402

from devhost.durable import DurableHost  # noqa: E402

BATCH = 4
ACTIVITY_SECONDS = 0.3
MAX_CONCURRENT_ACTIVITIES = 4

app = df.DFApp()
RECORD: dict[str, Path] = {}


def record(line: str) -> None:
    with RECORD["path"].open("a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


@app.activity_trigger(input_name="job")
async def restart_job(job: int) -> dict[str, int]:
    record(f"start {job} {os.getpid()}")
    await asyncio.sleep(ACTIVITY_SECONDS)
    record(f"done {job} {os.getpid()}")
    return {"job": job, "square": job * job}


@app.orchestration_trigger(context_name="context")
def restart_batch(context: df.DurableOrchestrationContext) -> Any:
    jobs: list[int] = context.get_input()
    results = yield context.task_all([context.call_activity("restart_job", job) for job in jobs])
    return results


@app.orchestration_trigger(context_name="context")
def restart_run(context: df.DurableOrchestrationContext) -> Any:
    jobs: int = context.get_input()
    chunks = [list(range(start, min(start + BATCH, jobs))) for start in range(0, jobs, BATCH)]
    batches = yield context.task_all(
        [context.call_sub_orchestrator("restart_batch", chunk) for chunk in chunks]
    )
    return [result for batch in batches for result in batch]


async def serve(arguments: argparse.Namespace) -> None:
    host = DurableHost(
        app,
        task_hub=arguments.task_hub,
        connection_string=arguments.connection_string,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_concurrent_orchestrators=4,
    )
    await host.start()
    if arguments.start:
        instance_id, jobs = arguments.start
        host.start_new("restart_run", int(jobs), instance_id)
    print("ready", flush=True)
    await asyncio.Event().wait()  # until the test kills the process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("connection_string")
    parser.add_argument("task_hub")
    parser.add_argument("record_file", type=Path)
    parser.add_argument("--start", nargs=2, metavar=("INSTANCE_ID", "JOBS"))
    arguments = parser.parse_args()
    RECORD["path"] = arguments.record_file
    asyncio.run(serve(arguments))


if __name__ == "__main__":
    main()
