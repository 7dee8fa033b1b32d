"""CSV export benchmark on a private Azurite: write N transcripts, export, download.

    .venv/bin/python bench/export_bench.py [--transcripts 1000] [--response-chars 2000]

Prints progress, then the figures as JSON on its last line. Not a test: nothing here gates on
time. The run is left RUNNING so every export rewrites the blob: the first export is timed
untraced, the second is measured with tracemalloc (which slows it down).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

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
        status=RunStatus.RUNNING,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, default=1000)
    parser.add_argument("--response-chars", type=int, default=2000)
    args = parser.parse_args()
    samples = -(-args.transcripts // (len(MODELS) * SCENARIOS))

    with running_azurite() as azurite:
        suffix = uuid.uuid4().hex[:8]
        services = Services(
            Settings(
                storage_connection=azurite.connection_string,
                table_prefix=f"bench{suffix}",
                exports_container=f"exports-{suffix}",
                spill_container=f"content-{suffix}",
            )
        )
        run = services.runs.create(make_run(samples))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    services.transcripts.put,
                    (make_transcript(run, i, args.response_chars) for i in range(args.transcripts)),
                )
            )
        write_seconds = time.perf_counter() - started
        print(f"wrote {args.transcripts} transcripts in {write_seconds:.2f}s", file=sys.stderr)
        services.exports  # noqa: B018 - create the container outside the measurements

        started = time.perf_counter()
        link = export_run(services, run.id, datetime.now(UTC))
        export_seconds = time.perf_counter() - started

        tracemalloc.start()
        try:
            traced = export_run(services, run.id, datetime.now(UTC))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        started = time.perf_counter()
        response = httpx.get(link.url, timeout=300)
        download_seconds = time.perf_counter() - started
        response.raise_for_status()
        if len(response.content) != link.bytes or traced.rows != link.rows:
            raise SystemExit("downloaded export does not match its link")

    print(
        json.dumps(
            {
                "transcripts": args.transcripts,
                "response_chars": args.response_chars,
                "rows": link.rows,
                "bytes": link.bytes,
                "write_seconds": round(write_seconds, 3),
                "export_seconds": round(export_seconds, 3),
                "rows_per_second": round(link.rows / export_seconds, 1),
                "mib_per_second": round(link.bytes / 2**20 / export_seconds, 2),
                "download_seconds": round(download_seconds, 3),
                "tracemalloc_peak_mib": round(peak / 2**20, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
