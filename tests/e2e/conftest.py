"""evalruns served by devhost in a subprocess, on the session's Azurite, over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devhost.azurite import Azurite, free_port

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Stack:
    url: str
    log: Path


def start_devhost(
    azurite: Azurite, log: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        "EVALRUNS_TASK_HUB": f"e2e{suffix}",
        "EVALRUNS_TABLE_PREFIX": f"e2e{suffix}",
        "EVALRUNS_EXPORTS_CONTAINER": f"exports-{suffix}",
        "EVALRUNS_SPILL_CONTAINER": f"content-{suffix}",
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app", str(ROOT), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"devhost exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/openapi.json", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"devhost did not answer in time: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def stack(azurite: Azurite, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """devhost with mock-provider settings from the test's `settings` marker."""
    marker = request.node.get_closest_marker("settings")
    settings = dict(marker.kwargs) if marker else {}
    log = tmp_path / "devhost.log"
    process, url = start_devhost(azurite, log, **settings)
    try:
        yield Stack(url, log)
    finally:
        stop(process)
