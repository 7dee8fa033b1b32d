"""`make run`: the local stack (Azurite + devhost serving function_app.py) with a sample run.

Starts Azurite (data kept in .azurite/) and devhost, creates the sample definition, runs it on
the mock models with a live progress bar, exports the CSV and prints its download link, then
keeps the stack up for exploration until Ctrl+C, stopping everything it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devhost.azurite import running_azurite, usable_port  # noqa: E402
from evalruns.cli import cmd_watch  # noqa: E402
from evalruns.client import EvalrunsClient  # noqa: E402

SAMPLE = ROOT / "examples" / "library_funding.json"
MODELS = ["mock-small", "mock-large"]
READY_TIMEOUT_SECONDS = 90


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
        port = usable_port(7071)
        env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string}
        host = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--app", str(ROOT), "--port", str(port)],
            cwd=ROOT,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url, host)
            demo(url)
            print(f"\nThe stack is up: API {url}/api, OpenAPI {url}/api/openapi.json.")
            print("Try: .venv/bin/evalruns --url", url, "list   — Ctrl+C stops everything.")
            host.wait()
        except KeyboardInterrupt:
            print("\nstopping devhost and Azurite")
        finally:
            if host.poll() is None:
                host.send_signal(signal.SIGINT)
                try:
                    host.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    host.kill()
    return 0


def wait_until_ready(url: str, host: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise SystemExit(f"devhost exited with code {host.returncode}")
        try:
            if httpx.get(f"{url}/api/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("devhost did not become ready in time")


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
