"""A mock run end to end on devhost + Azurite: wall time against the ideal, history, CPU.

    .venv/bin/python bench/run_bench.py [--jobs 2000] [--latency-ms 200]

The ideal is jobs × latency ÷ activity concurrency (host.json maxConcurrentActivityFunctions,
overridable with --concurrency). Figures come from the API and devhost's admin route. Prints
progress, then the figures as JSON on its last line. Not a test: nothing gates on time.
"""

from __future__ import annotations

import argparse
import json
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

MODELS = ["mock-small", "mock-large"]


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
            began = time.monotonic()
            run = client.start_run(definitionId=created["id"], models=MODELS)["run"]
            print(f"run {run['id']}: {run['progress']['total']} jobs", file=sys.stderr)
            while run["status"] not in ("COMPLETED", "FAILED", "CANCELLED"):
                time.sleep(0.5)
                run = client.run(run["id"])
            wall = time.monotonic() - began
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
                "ideal_seconds": round(ideal, 2),
                "efficiency": round(ideal / wall, 3),
                "instances": stats.get("totals", {}).get("instances"),
                "largest_history": stats.get("totals", {}).get("largestHistory"),
                "orchestrator_cpu_seconds": stats.get("totals", {}).get("orchestratorCpuSeconds"),
            }
        )
    )


if __name__ == "__main__":
    main()
