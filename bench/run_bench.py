"""A mock run end to end on devhost + Azurite: wall time against the ideal, history, CPU.

    .venv/bin/python bench/run_bench.py [--jobs 2000] [--latency-ms 200]

The ideal is jobs × latency ÷ activity concurrency (host.json maxConcurrentActivityFunctions,
overridable with --concurrency); ``status_seen_at_seconds`` tells when each run status was first
seen (a run that summarises after its jobs shows when the jobs were done). Figures come from the
API and devhost's admin route; the CPU time each process of the stack spent during the run
(devhost's host and worker processes, Azurite) comes from /proc where there is one. Prints
progress, then the figures as JSON on its last line. Not a test: nothing gates on time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from devhost.azurite import running_azurite  # noqa: E402
from devhost.process import running_devhost  # noqa: E402
from evalruns.client import EvalrunsClient  # noqa: E402
from evalruns.domain.runs import TERMINAL  # noqa: E402

MODELS = ["mock-small", "mock-large"]
POLL_SECONDS = 0.25
PROC = Path("/proc")


def _descendants(root: int) -> dict[int, str]:
    """Process ids under ``root`` (from /proc; empty where there is none), with a label."""
    if not PROC.is_dir():
        return {}
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = _label(pid)
                frontier.append(pid)
    return found


def _label(pid: int) -> str:
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in argv)
    if "azurite" in text:
        return "azurite"
    if "devhost" in text:
        return "devhost_worker" if "worker_main" in text else "devhost_host"
    return Path(argv[0].decode(errors="replace")).name or "?"


def _cpu_seconds(pid: int) -> float:
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot() -> dict[int, tuple[str, float]]:
    return {pid: (label, _cpu_seconds(pid)) for pid, label in _descendants(os.getpid()).items()}


def cpu_split(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds per process label between two snapshots (this process as ``bench``)."""
    split: dict[str, float] = {}
    for pid, (label, seconds) in after.items():
        spent = seconds - before.get(pid, (label, 0.0))[1]
        split[label] = round(split.get(label, 0.0) + spent, 2)
    return split


def definition(scenarios: int) -> dict[str, object]:
    """One dimension per factor of `scenarios` (at most 5 levels each)."""
    sizes, rest = [], scenarios
    for size in (5, 4, 3, 2):
        while rest % size == 0 and rest > 1:
            sizes.append(size)
            rest //= size
    if rest != 1:
        raise SystemExit(f"{scenarios} scenarios cannot be built from levels of 2-5")
    return {
        "name": f"bench {scenarios}",
        "template": " ".join(f"[D{i}]" for i in range(len(sizes))),
        "dimensions": [
            {"name": f"D{i}", "values": [f"d{i}-{v}" for v in range(size)]}
            for i, size in enumerate(sizes)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    with running_azurite() as azurite:
        env = {
            "AzureWebJobsStorage": azurite.connection_string,
            "EVALRUNS_TASK_HUB": f"bench{suffix}",
            "EVALRUNS_TABLE_PREFIX": f"bench{suffix}",
            "EVALRUNS_MOCK_LATENCY_MS": str(args.latency_ms),
            "AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions": str(
                args.concurrency
            ),
        }
        with (
            running_devhost(ROOT, env=env, ready_path="/api/openapi.json") as url,
            EvalrunsClient(url) as client,
        ):
            created = client.create_definition(definition(args.jobs // len(MODELS)))
            cpu_before = cpu_snapshot()
            bench_before = time.process_time()
            began = time.monotonic()
            run = client.start_run(definitionId=created["id"], models=MODELS)["run"]
            print(f"run {run['id']}: {run['progress']['total']} jobs", file=sys.stderr)
            phases: dict[str, float] = {}
            while run["status"] not in TERMINAL:
                time.sleep(POLL_SECONDS)
                run = client.run(run["id"])
                phases.setdefault(run["status"], round(time.monotonic() - began, 2))
            wall = time.monotonic() - began
            cpu = cpu_split(cpu_before, cpu_snapshot())
            cpu["bench"] = round(time.process_time() - bench_before, 2)
            stats = httpx.get(f"{url}/admin/devhost/instances").json()
    ideal = args.jobs * args.latency_ms / 1000 / args.concurrency
    print(
        json.dumps(
            {
                "jobs": run["progress"]["total"],
                "status": run["status"],
                "latency_ms": args.latency_ms,
                "activity_concurrency": args.concurrency,
                "wall_seconds": round(wall, 2),
                "status_seen_at_seconds": phases,
                "ideal_seconds": round(ideal, 2),
                "efficiency": round(ideal / wall, 3),
                "instances": stats.get("totals", {}).get("instances"),
                "largest_history": stats.get("totals", {}).get("largestHistory"),
                "episodes": stats.get("totals", {}).get("episodes"),
                "orchestrator_cpu_seconds": stats.get("totals", {}).get("orchestratorCpuSeconds"),
                "process_cpu_seconds": cpu,
            }
        )
    )


if __name__ == "__main__":
    main()
