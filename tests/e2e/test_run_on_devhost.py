"""evalruns end to end: HTTP API on devhost, Durable orchestration, Azurite, mock models."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from evalruns.client import EvalrunsClient
from tests.e2e.conftest import ROOT, Stack

DEADLINE_SECONDS = 120
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def poll(check: Callable[[], Any], deadline: float = DEADLINE_SECONDS) -> Any:
    """Call `check` until it returns something truthy, or fail at the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not done within {deadline} s")


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "examples" / f"{name}.json").read_text())
    return loaded


@pytest.mark.settings(EVALRUNS_MOCK_LATENCY_MS="100", EVALRUNS_PROVIDER_MOCK_MAX_CONCURRENCY="4")
def test_run_completes_with_every_transcript_once_and_exports(stack: Stack) -> None:
    with EvalrunsClient(stack.url) as client:
        definition = client.create_definition(example("library_funding"))
        started = client.start_run(
            definitionId=definition["id"],
            models=["mock-small", "mock-large"],
            samplePercentage=40,
            sampleSeed=11,
        )
        run_id = started["run"]["id"]
        assert started["run"]["progress"]["total"] == 100
        status_uri = started["statusQueryGetUri"]
        assert status_uri.startswith(stack.url)

        seen_api: list[int] = []
        seen_hook: list[int] = []

        def finished() -> bool:
            run = client.run(run_id)
            seen_api.append(run["progress"]["completed"] + run["progress"]["failed"])
            hook = httpx.get(status_uri)
            assert hook.status_code in (200, 202)
            custom = hook.json().get("customStatus") or {}
            if custom:
                seen_hook.append(custom["completed"] + custom["failed"])
            if hook.status_code == 202:
                assert "Location" in hook.headers and "Retry-After" in hook.headers
            return run["status"] in TERMINAL and hook.status_code == 200

        poll(finished)
        run = client.run(run_id)
        assert run["status"] == "COMPLETED", run
        assert run["progress"]["completed"] == 100
        assert seen_api == sorted(seen_api) and seen_hook == sorted(seen_hook)
        final_hook = httpx.get(status_uri).json()
        assert final_hook["runtimeStatus"] == "Completed"
        assert final_hook["customStatus"]["completed"] == 100

        transcripts = list(client.transcripts(run_id, limit=100))
        assert len(transcripts) == 100
        assert len({item["id"] for item in transcripts}) == 100
        keys = {(item["modelId"], item["scenarioId"], item["sample"]) for item in transcripts}
        assert len(keys) == 100
        assert {item["status"] for item in transcripts} == {"SUCCEEDED"}
        whole = client.transcript(run_id, transcripts[0]["id"])
        assert whole["attempts"] == 1

        link = client.export(run_id)
        download = httpx.get(link["url"])
        assert download.status_code == 200
        assert download.headers["content-disposition"] == (
            f'attachment; filename="{link["filename"]}"'
        )
        rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
        assert len(rows) == 100
        assert {row["Transcript ID"] for row in rows} == {item["id"] for item in transcripts}
        assert {row["AI Model Name"] for row in rows} == {"mock-small", "mock-large"}


@pytest.mark.settings(EVALRUNS_MOCK_LATENCY_MS="20")
def test_cli_starts_watches_and_exports(stack: Stack, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "evalruns.cli", "--url", stack.url, *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE_SECONDS,
            cwd=tmp_path,
        )

    started = cli(
        "start",
        "--file",
        str(ROOT / "examples" / "shift_policy.json"),
        "--models",
        "mock-small",
        "--samples",
        "2",
        "--watch",
    )
    assert started.returncode == 0, started.stderr
    assert "18/18 done (0 failed)" in started.stdout
    run_id = started.stdout.split()[1]
    listed = cli("list", "--status", "COMPLETED")
    assert run_id in listed.stdout
    exported = cli("export", run_id, "-o", "out.csv")
    assert exported.returncode == 0, exported.stderr
    assert "18 rows" in exported.stdout
    assert (tmp_path / "out.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    conflict = cli("pause", run_id)
    assert conflict.returncode == 1 and "COMPLETED" in conflict.stderr
    rerun = cli("rerun", run_id, "--models", "mock-large", "--watch")
    assert rerun.returncode == 0, rerun.stderr
    assert f"re-run of {run_id}" in rerun.stdout and "18/18 done" in rerun.stdout
    refused = cli(
        "start", "--file", str(ROOT / "examples" / "shift_policy.json"), "--models", "no-such-model"
    )
    assert refused.returncode == 1 and "no-such-model" in refused.stderr
