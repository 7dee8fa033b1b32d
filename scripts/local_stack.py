"""`make run`: the local stack (Azurite + devhost serving function_app.py) with a sample run.

Starts Azurite (data kept in .azurite/) and devhost, creates the sample definition, runs it on
the mock models with a live progress bar, exports the CSV and prints its download link, then
keeps the stack up for exploration until Ctrl+C, stopping everything it started.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from argparse import Namespace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devhost.azurite import running_azurite, usable_port  # noqa: E402
from devhost.process import running_devhost  # noqa: E402
from evalruns.cli import cmd_watch  # noqa: E402
from evalruns.client import EvalrunsClient  # noqa: E402

SAMPLE = ROOT / "examples" / "library_funding.json"
MODELS = ["mock-small", "mock-large"]


def main() -> int:
    settings = ROOT / "local.settings.json"
    if not settings.exists():
        shutil.copy(ROOT / "local.settings.example.json", settings)
        print("created local.settings.json from local.settings.example.json")
    ports = (usable_port(10000), usable_port(10001), usable_port(10002))
    with running_azurite(location=ROOT / ".azurite", ports=ports) as azurite:
        print(
            f"Azurite: blob {azurite.blob_port}, queue {azurite.queue_port}, "
            f"table {azurite.table_port} (data in .azurite/)"
        )
        env = {"AzureWebJobsStorage": azurite.connection_string}
        try:
            with running_devhost(
                ROOT, env=env, port=usable_port(7071), ready_path="/api/openapi.json"
            ) as url:
                demo(url)
                print(f"\nThe stack is up: API {url}/api, OpenAPI {url}/api/openapi.json")
                print(f"Try: .venv/bin/evalruns --url {url} list    (Ctrl+C stops everything)")
                threading.Event().wait()
        except KeyboardInterrupt:
            print("\nstopping devhost and Azurite")
    return 0


def demo(url: str) -> None:
    with EvalrunsClient(url) as client:
        definition = client.create_definition(json.loads(SAMPLE.read_text()))
        print(
            f"\ndefinition {definition['id']}: {definition['name']} "
            f"({definition['scenarioCount']} scenarios)"
        )
        started = client.start_run(
            definitionId=definition["id"],
            models=MODELS,
            samplesPerScenario=2,
            name="make run sample",
        )
        run_id = started["run"]["id"]
        print(f"run {run_id}: {started['run']['progress']['total']} jobs on {', '.join(MODELS)}")
        print(f"Durable status: {started['statusQueryGetUri']}")
        cmd_watch(client, Namespace(run_id=run_id))
        link = client.export(run_id)
        print(f"\nCSV export: {link['rows']} rows, {link['bytes']} bytes, {link['filename']}")
        print(f"download (until {link['expiresAt']}):\n{link['url']}")


if __name__ == "__main__":
    sys.exit(main())
