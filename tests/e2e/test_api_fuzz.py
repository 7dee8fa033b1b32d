"""The API document is a contract, fuzzed: schemathesis (pinned in requirements-dev.txt) sends
schema-valid and schema-violating requests to every operation on devhost + Azurite, with a
fixed seed and a bounded number of examples, then follows the document's links statefully
(create a definition, start a run, read, control, export). No answer may be a 5xx, every
answer must match the document, valid requests must be accepted and invalid ones refused
(tests/e2e/fuzz/schemathesis.toml lists the rules a JSON schema cannot state); afterwards
every listing still answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, Stack

KEY = "fuzz-function-key"
FUZZ = ROOT / "tests" / "e2e" / "fuzz"
EXAMPLES_PER_OPERATION = 15
SEED = 20261208


@pytest.mark.settings(DEVHOST_FUNCTION_KEY=KEY, EVALRUNS_MOCK_LATENCY_MS="5")
def test_the_api_answers_as_its_document_says(stack: Stack, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(FUZZ / "schemathesis.toml"),
            "run",
            f"{stack.url}/api/openapi.json",
            "--header",
            f"x-functions-key: {KEY}",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz.hooks", "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = re.search(r"Test cases:\s*\n\s*(.+)", result.stdout)
    print(f"schemathesis (seed {SEED}): {summary.group(1) if summary else '?'}")
    assert result.returncode == 0, result.stdout[-20_000:]
    assert summary is not None and re.match(r"\d+ generated, \d+ passed", summary.group(1))
    assert int(summary.group(1).split()[0]) > 500  # every operation was really exercised

    # Whatever the fuzzer stored, every listing and every run still reads.
    headers = {"x-functions-key": KEY}
    for path in ("/api/runs", "/api/definitions", "/api/models", "/api/health/queue"):
        assert httpx.get(f"{stack.url}{path}", headers=headers, timeout=30).status_code == 200
    runs = httpx.get(f"{stack.url}/api/runs?limit=100", headers=headers, timeout=30).json()
    assert runs["items"], "the stateful pass started no run"
    for run in runs["items"]:
        for path in (f"/api/runs/{run['id']}", f"/api/runs/{run['id']}/transcripts"):
            answer = httpx.get(f"{stack.url}{path}", headers=headers, timeout=30)
            assert answer.status_code == 200, (path, answer.text)
