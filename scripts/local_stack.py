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
import time
from argparse import Namespace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devhost.azurite import running_azurite, usable_port  # noqa: E402
from devhost.process import running_devhost  # noqa: E402
from evalruns.cli import cmd_watch  # noqa: E402
from evalruns.client import EvalrunsClient  # noqa: E402

SAMPLE = ROOT / "examples" / "library_funding.json"
PAUSE_SETTLE_SECONDS = 1.5
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


def show_pause_and_resume(client: EvalrunsClient, run_id: str, total: int) -> None:
    """Pause once a quarter of the jobs are done, show that nothing moves, then resume."""
    done = 0
    while done < total // 4:
        time.sleep(0.5)
        progress = client.run(run_id)["progress"]
        done = progress["completed"] + progress["failed"]
    print(f"\npausing at {done}/{total} jobs ...")
    client.control(run_id, "pause")
    settled = -1
    while True:
        time.sleep(PAUSE_SETTLE_SECONDS)
        run = client.run(run_id)
        now = run["progress"]["completed"] + run["progress"]["failed"]
        if run["status"] == "PAUSED" and now == settled:
            break
        settled = now
    print(f"{run['status']} at {now}/{total}: calls in flight finished, nothing new starts")
    time.sleep(PAUSE_SETTLE_SECONDS)
    still = client.run(run_id)["progress"]
    print(f"still {still['completed'] + still['failed']}/{total} a moment later; resuming")
    client.control(run_id, "resume")


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
        total = started["run"]["progress"]["total"]
        print(f"run {run_id}: {total} jobs on {', '.join(MODELS)}")
        print(f"Durable status: {started['statusQueryGetUri']}")
        show_pause_and_resume(client, run_id, total)
        cmd_watch(client, Namespace(run_id=run_id))
        link = client.export(run_id)
        print(f"\nCSV export: {link['rows']} rows, {link['bytes']} bytes, {link['filename']}")
        print(f"download (until {link['expiresAt']}):\n{link['url']}")


if __name__ == "__main__":
    sys.exit(main())
