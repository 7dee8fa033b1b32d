"""CSV export benchmark on a private Azurite: write N transcripts, export them, download the file.

    .venv/bin/python bench/export_bench.py [--transcripts 20000 100000] [--response-chars 2000]

For each N (a fresh Azurite each time): the transcripts are written by a child process (so
this process's memory is only the export's), then the run is exported the way the export
activity does it (`export_run`: pages read ahead, rows encoded, blocks staged while reading)
and the file downloaded and checked. Prints rows per second, the export's peak RSS growth (the
process's high-water mark, reset just before the export, minus its RSS then) and the CPU
seconds Azurite and this process spent, then all figures as JSON on its last line. Not a test:
nothing here gates on time. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from devhost.azurite import running_azurite  # noqa: E402
from evalruns.domain.definitions import Definition  # noqa: E402
from evalruns.domain.runs import Progress, RunConfig, RunModel, RunStatus  # noqa: E402
from evalruns.domain.transcripts import Transcript, TranscriptStatus, Turn, job_key  # noqa: E402
from evalruns.exports.service import export_run  # noqa: E402
from evalruns.services import Services  # noqa: E402
from evalruns.settings import Settings  # noqa: E402
from evalruns.storage.runs import StoredRun  # noqa: E402

MODELS = ["mock-small", "mock-large", "gpt-4o", "claude-3-5-sonnet-20241022"]
SCENARIOS = 25
NOW = datetime.now(UTC)
WRITE_THREADS = 4
WRITE_ATTEMPTS = 5


def make_run(samples: int) -> StoredRun:
    definition = Definition(
        id="bench",
        name="Bench",
        template="An [Urgency] request from a [Role].",
        dimensions=[
            {"name": "Urgency", "values": ["calm", "mild", "firm", "urgent", "frantic"]},
            {"name": "Role", "values": ["peer", "lead", "manager", "director", "CEO"]},
        ],
        created_at=NOW,
        updated_at=NOW,
    )
    models = [
        RunModel(
            id=model,
            provider="mock",
            version=f"{model}-v1",
            cost_input_per_million=1.0,
            cost_output_per_million=2.0,
        )
        for model in MODELS
    ]
    return StoredRun(
        id=uuid.uuid4().hex,
        name="bench",
        definition_id=definition.id,
        # A finished run: what is exported in the background once a large run is done.
        status=RunStatus.COMPLETED,
        config=RunConfig(
            models=models,
            sample_percentage=100,
            sample_seed=1,
            samples_per_scenario=samples,
            temperature=0.7,
            max_tokens=1024,
            scenario_count=SCENARIOS,
        ),
        progress=Progress(),
        created_at=NOW,
        updated_at=NOW,
        definition=definition,
    )


def make_transcript(run: StoredRun, index: int, response_chars: int) -> Transcript:
    model = MODELS[index % len(MODELS)]
    scenario = index // len(MODELS) % SCENARIOS + 1
    sample = index // (len(MODELS) * SCENARIOS) + 1
    unit = f'Rating: {index % 5 + 1}. Because "{model}" said so, at length — é. '
    response = (unit * (response_chars // len(unit) + 1))[:response_chars]
    return Transcript(
        id=job_key(model, f"s{scenario:06d}", sample),
        run_id=run.id,
        scenario_id=f"s{scenario:06d}",
        scenario_number=scenario,
        scenario_name=f"scenario {scenario}",
        dimensions={"Urgency": scenario % 5 + 1, "Role": (scenario - 1) // 5 + 1},
        model_id=model,
        model_version=f"{model}-v1",
        provider="mock",
        sample=sample,
        status=TranscriptStatus.SUCCEEDED,
        decision_code=str(index % 5 + 1),
        turns=[
            Turn(role="user", content=f"Prompt {scenario}"),
            Turn(role="assistant", content=response),
        ],
        input_tokens=120,
        output_tokens=response_chars // 4,
        cost_usd=0.0001,
        duration_ms=800,
        created_at=NOW,
        updated_at=NOW,
    )


def write_transcripts(settings: Settings, run: StoredRun, count: int, chars: int) -> None:
    """In a child process: the transcripts' entities, 100 per transaction of one partition
    (the repository's own entities; only the bench writes this way, to get data in fast)."""
    services = Services(settings)
    repository = services.transcripts
    by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index in range(count):
        entity = repository._entity(make_transcript(run, index, chars))
        by_partition[entity["PartitionKey"]].append(entity)
    batches = [
        rows[i : i + 100] for rows in by_partition.values() for i in range(0, len(rows), 100)
    ]
    table = services.storage.table("Transcripts").sdk

    def send(batch: list[dict[str, Any]]) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                table.submit_transaction([("upsert", entity) for entity in batch])
                return
            except Exception:  # Azurite under load resets a connection now and then
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(1)

    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        list(pool.map(send, batches))


# -- /proc ----------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux: `clear_refs` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def child_pids() -> list[int]:
    """Every process below this one (Azurite's node among them)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children[int(fields[1])].append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# -- one size -------------------------------------------------------------------------------


def bench(transcripts: int, response_chars: int) -> dict[str, Any]:
    samples = -(-transcripts // (len(MODELS) * SCENARIOS))
    with running_azurite() as azurite:
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(
            storage_connection=azurite.connection_string,
            table_prefix=f"bench{suffix}",
            exports_container=f"exports-{suffix}",
            spill_container=f"content-{suffix}",
        )
        services = Services(settings)
        run = services.runs.create(make_run(samples))
        started = time.perf_counter()
        writer = multiprocessing.get_context("spawn").Process(
            target=write_transcripts, args=(settings, run, transcripts, response_chars)
        )
        writer.start()
        writer.join()
        if writer.exitcode != 0:
            raise SystemExit("writing the transcripts failed")
        write_seconds = time.perf_counter() - started
        print(f"wrote {transcripts} transcripts in {write_seconds:.1f}s", file=sys.stderr)
        warm = services.runs.create(make_run(1))  # clients, containers, lazy imports
        export_run(services, warm.id, datetime.now(UTC))

        azurite_pids = child_pids()
        rss_before = _status_kib("VmRSS")
        reset_peak_rss()
        azurite_before, own_before = cpu_seconds(azurite_pids), time.process_time()
        started = time.perf_counter()
        link = export_run(services, run.id, datetime.now(UTC))
        export_seconds = time.perf_counter() - started
        azurite_cpu = cpu_seconds(azurite_pids) - azurite_before
        own_cpu = time.process_time() - own_before
        rss_growth_kib = _status_kib("VmHWM") - rss_before

        response = httpx.get(link.url, timeout=600)
        response.raise_for_status()
        if len(response.content) != link.bytes or link.rows != transcripts:
            raise SystemExit("the downloaded export does not match its link")
        if response.content.count(b"\r\n") != transcripts + 1:
            raise SystemExit("the export does not have one line per transcript")

    figures = {
        "transcripts": transcripts,
        "response_chars": response_chars,
        "bytes": link.bytes,
        "write_seconds": round(write_seconds, 1),
        "export_seconds": round(export_seconds, 2),
        "rows_per_second": round(link.rows / export_seconds),
        "mib_per_second": round(link.bytes / 2**20 / export_seconds, 1),
        "peak_rss_growth_mib": round(rss_growth_kib / 1024, 1),
        "azurite_cpu_seconds": round(azurite_cpu, 2),
        "python_cpu_seconds": round(own_cpu, 2),
    }
    print(json.dumps(figures), file=sys.stderr)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--response-chars", type=int, default=2000)
    args = parser.parse_args()
    results = [bench(count, args.response_chars) for count in args.transcripts]
    print(json.dumps({"cpus": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
