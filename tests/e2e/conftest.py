"""evalruns served by devhost in a subprocess, on the session's Azurite, over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from devhost.process import running_devhost

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stack:
    url: str
    log: Path
    calls: Path = Path("calls.jsonl")  # the mock provider's call log


@pytest.fixture
def stack(azurite: Azurite, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """devhost on its own task hub, tables and containers, with the settings of the test's
    `settings` marker (mock latency, faults, caps)."""
    marker = request.node.get_closest_marker("settings")
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "EVALRUNS_TASK_HUB": f"e2e{suffix}",
        "EVALRUNS_TABLE_PREFIX": f"e2e{suffix}",
        "EVALRUNS_EXPORTS_CONTAINER": f"exports-{suffix}",
        "EVALRUNS_SPILL_CONTAINER": f"content-{suffix}",
        "EVALRUNS_MOCK_CALL_LOG": str(tmp_path / "calls.jsonl"),
        **(marker.kwargs if marker else {}),
    }
    log = tmp_path / "devhost.log"
    with (
        log.open("wb") as output,
        running_devhost(ROOT, env=env, ready_path="/api/openapi.json", output=output) as url,
    ):
        yield Stack(url, log, tmp_path / "calls.jsonl")
