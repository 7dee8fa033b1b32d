"""Mock runs end to end on devhost + Azurite: wall time against the ideal, calls in flight,
CPU per job by process, the largest history.

    .venv/bin/python bench/run_bench.py [--workload fixed|tail|429|rps|local|all]
        [--jobs 1000] [--latency-ms 200] [--concurrency 16] [--rps 50]

Workloads (each to COMPLETED, summaries included):
* fixed: every call takes the latency (±20%);
* tail: 3% of calls take 3 s longer (`EVALRUNS_MOCK_LATENCY_TAIL=0.03:3000`);
* 429: 20% of calls are answered 429 with `Retry-After: 1`;
* rps: the provider allows `--rps` calls per second (more get 429 with `Retry-After: 1`);
* local: the `local` OpenAI-compatible provider against `bench/mock_openai_server.py`.

The ideal is jobs × mean latency ÷ concurrency (the provider's cap,
`EVALRUNS_PROVIDER_<ID>_MAX_CONCURRENCY`), or jobs ÷ rate for the rate-limited provider.
"Calls in flight" is the provider calls' total time over the span from the first job call to
the last. CPU comes from /proc for devhost's host and worker and Azurite (the mock server and
this process are left out). Prints progress, one JSON line per workload, and with `all` a
table; the last line is JSON. Not a test: nothing gates on time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from devhost.azurite import running_azurite  # noqa: E402
from devhost.process import running_devhost  # noqa: E402
from evalruns.client import EvalrunsClient  # noqa: E402
from evalruns.domain.runs import TERMINAL  # noqa: E402

POLL_SECONDS = 0.1
PROC = Path("/proc")
TAIL = (0.03, 3000)
RATE_LIMITED_SHARE = 0.2
WORKLOADS = ("fixed", "tail", "429", "rps", "local")
OURS = ("devhost_host", "devhost_worker", "azurite")


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
    if "mock_openai_server" in text:
        return "mock_server"
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
    """CPU seconds per process label between two snapshots."""
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def calls_in_flight(log: Path, run_id: str | None) -> dict[str, float]:
    """Mean job calls in flight over the job calls' span, and the share refused."""
    if not log.exists():
        return {}
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if run_id is not None:
        calls = [c for c in calls if str(c["correlationId"]).startswith(run_id + ":")]
    if not calls:
        return {}
    start = min(c["startedAt"] for c in calls)
    end = max(c["finishedAt"] for c in calls)
    busy = sum(c["finishedAt"] - c["startedAt"] for c in calls)
    refused = sum(1 for c in calls if c["outcome"] == "RATE_LIMITED")
    accepted = len(calls) - refused
    return {
        "job_calls": len(calls),
        "refused_share": round(refused / len(calls), 4),
        "mean_calls_in_flight": round(busy / (end - start), 2) if end > start else 0.0,
        "job_calls_span_seconds": round(end - start, 2),
        "accepted_per_second": round(accepted / (end - start), 2) if end > start else 0.0,
    }


def run_workload(args: argparse.Namespace, workload: str, azurite: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    log = folder / "calls.jsonl"
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "EVALRUNS_TASK_HUB": f"bench{suffix}",
        "EVALRUNS_TABLE_PREFIX": f"bench{suffix}",
        "EVALRUNS_MOCK_LATENCY_MS": str(args.latency_ms),
        "EVALRUNS_MOCK_SEED": "7",
        "EVALRUNS_MAX_ATTEMPTS": "20",
        "EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY": str(args.concurrency),
        "EVALRUNS_PROVIDER_LOCAL_MAX_CONCURRENCY": str(args.concurrency),
    }
    if args.activities:
        env["AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions"] = str(
            args.activities
        )
    models = ["mock-small", "mock-large"]
    mean_latency = args.latency_ms / 1000
    ideal = args.jobs * mean_latency / args.concurrency
    server: subprocess.Popen[bytes] | None = None
    if workload == "tail":
        env["EVALRUNS_MOCK_LATENCY_TAIL"] = f"{TAIL[0]}:{TAIL[1]}"
        ideal = args.jobs * (mean_latency + TAIL[0] * TAIL[1] / 1000) / args.concurrency
    elif workload == "429":
        env["EVALRUNS_MOCK_RATE_LIMIT_RATE"] = str(RATE_LIMITED_SHARE)
    elif workload == "rps":
        env["EVALRUNS_MOCK_RPS"] = str(args.rps)
        env["EVALRUNS_SUMMARISER_MODEL"] = "mock-large"  # its own limit: jobs use mock-small
        models = ["mock-small"]
        ideal = args.jobs / args.rps
    if workload in ("fixed", "tail", "429", "rps"):
        env["EVALRUNS_MOCK_CALL_LOG"] = str(log)
    if workload == "local":
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "mock_openai_server.py"),
                "--port",
                str(port),
                "--latency-ms",
                str(args.latency_ms),
                "--call-log",
                str(log),
            ]
        )
        env["EVALRUNS_LOCAL_OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
        models = ["local-model"]
        _wait_for(f"http://127.0.0.1:{port}/v1/models")
    try:
        with (
            running_devhost(ROOT, env=env, ready_path="/api/openapi.json") as url,
            EvalrunsClient(url) as client,
        ):
            created = client.create_definition(definition(args.jobs // len(models)))
            cpu_before = cpu_snapshot()
            began = time.monotonic()
            run = client.start_run(definitionId=created["id"], models=models)["run"]
            print(f"{workload}: run {run['id']}, {run['progress']['total']} jobs", file=sys.stderr)
            phases: dict[str, float] = {}
            while run["status"] not in TERMINAL:
                time.sleep(POLL_SECONDS)
                run = client.run(run["id"])
                phases.setdefault(run["status"], round(time.monotonic() - began, 2))
            wall = time.monotonic() - began
            cpu = cpu_split(cpu_before, cpu_snapshot())
            stats = httpx.get(f"{url}/admin/devhost/instances").json().get("totals", {})
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    jobs = run["progress"]["total"]
    ours = sum(cpu.get(label, 0.0) for label in OURS)
    figures: dict[str, Any] = {
        "workload": workload,
        "jobs": jobs,
        "status": run["status"],
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "wall_seconds": round(wall, 2),
        "ideal_seconds": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3),
        "status_seen_at_seconds": phases,
        **calls_in_flight(log, None if workload == "local" else run["id"]),
        "cpu_ms_per_job": round(1000 * ours / jobs, 2),
        "cpu_ms_per_job_by_process": {
            label: round(1000 * seconds / jobs, 2) for label, seconds in cpu.items()
        },
        "instances": stats.get("instances"),
        "largest_history": stats.get("largestHistory"),
        "orchestrator_cpu_ms_per_job": round(
            1000 * (stats.get("orchestratorCpuSeconds") or 0) / jobs, 2
        ),
    }
    if workload == "rps":
        figures["limit_per_second"] = args.rps
    return figures


def _wait_for(url: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {within} s")


@contextmanager
def _azurite(connection: str) -> Iterator[Any]:
    if connection:
        yield SimpleNamespace(connection_string=connection)
        return
    with running_azurite() as azurite:
        yield azurite


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | wall s | ideal s | wall/ideal | calls in flight | refused | "
        "CPU ms/job | largest history |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['workload']} | {row['wall_seconds']} | {row['ideal_seconds']} | "
            f"{row['wall_over_ideal']} | {row.get('mean_calls_in_flight', '–')} | "
            f"{row.get('refused_share', '–')} | {row['cpu_ms_per_job']} | "
            f"{row['largest_history']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="fixed")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument(
        "--activities", type=int, default=0, help="host activity concurrency (default host.json)"
    )
    parser.add_argument(
        "--connection", default="", help="an Azurite already running (e.g. under a profiler)"
    )
    args = parser.parse_args()
    workloads = WORKLOADS if args.workload == "all" else (args.workload,)
    rows = []
    with _azurite(args.connection) as azurite:
        for workload in workloads:
            row = run_workload(args, workload, azurite)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if len(rows) > 1:
        print(table(rows))
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
