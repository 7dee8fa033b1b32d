"""What one point read or single-entity write costs this process: the Tables SDK against
`LeanTable`, on Azurite.

    .venv/bin/python bench/storage_bench.py [--requests 2000]

Each client reads and replaces one transcript-sized entity `--requests` times; prints CPU and
wall milliseconds per request for each (this process's CPU only: Azurite's is left out), and
JSON on its last line. Not a test: nothing gates on time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from azure.data.tables import UpdateMode  # noqa: E402

from devhost.azurite import running_azurite  # noqa: E402
from evalruns.services import Services  # noqa: E402
from evalruns.settings import Settings  # noqa: E402


def measure(table: Any, requests: int) -> dict[str, float]:
    """Per request: CPU and wall ms over `requests` alternating reads and replaces."""
    entity = {"PartitionKey": "run", "RowKey": "job", "Content": "x" * 2000, "Tokens": 42}
    table.upsert_entity(entity, mode=UpdateMode.REPLACE)
    cpu, wall = time.process_time(), time.perf_counter()
    for number in range(requests):
        if number % 2:
            table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        else:
            table.get_entity("run", "job")
    return {
        "cpu_ms": round((time.process_time() - cpu) * 1000 / requests, 3),
        "wall_ms": round((time.perf_counter() - wall) * 1000 / requests, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with running_azurite() as azurite:
        settings = Settings(
            storage_connection=azurite.connection_string,
            table_prefix=f"b{uuid.uuid4().hex[:8]}",
        )
        lean = Services(settings).storage.table("Bench")
        figures = {"sdk": measure(lean.sdk, args.requests), "lean": measure(lean, args.requests)}
    for name, figure in figures.items():
        print(f"{name:5} {figure['cpu_ms']:7.3f} ms CPU  {figure['wall_ms']:7.3f} ms wall")
    print(json.dumps({"requests": args.requests, **figures}))


if __name__ == "__main__":
    main()
