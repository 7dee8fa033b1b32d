"""Restart durability: a host killed with SIGKILL while activities run, then started again.

The host runs in a subprocess (``durable_host_process.py``) on the session's Azurite; its
activities log every execution to a file, so executions are counted across both processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from devhost.durable._records import TABLE
from tests.devhost.conftest import poll
from tests.support.azurite import Azurite

SCRIPT = Path(__file__).with_name("durable_host_process.py")
JOBS = 28


@contextmanager
def host_process(azurite: Azurite, hub: str, record: Path, *start: str) -> Iterator[Any]:
    log = record.with_name(f"host-{uuid.uuid4().hex[:6]}.log")
    with log.open("w") as stderr:
        arguments = [sys.executable, str(SCRIPT), azurite.connection_string, hub, str(record)]
        if start:
            arguments += ["--start", *start]
        process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def executions(record: Path) -> list[tuple[str, int, int]]:
    if not record.exists():
        return []
    lines = [line.split() for line in record.read_text().splitlines() if line.strip()]
    return [(kind, int(job), int(pid)) for kind, job, pid in lines]


def in_flight(record: Path, pid: int) -> set[int]:
    """Jobs that process ``pid`` started and has not finished."""
    mine = [(kind, job) for kind, job, owner in executions(record) if owner == pid]
    return {job for kind, job in mine if kind == "start"} - {
        job for kind, job in mine if kind == "done"
    }


def finished(record: Path, pid: int) -> int:
    return sum(kind == "done" and owner == pid for kind, _, owner in executions(record))


def instance_row(azurite: Azurite, hub: str, instance_id: str) -> dict[str, Any] | None:
    with TableClient.from_connection_string(azurite.connection_string, f"{hub}{TABLE}") as table:
        try:
            return dict(table.get_entity(partition_key=instance_id, row_key=""))
        except ResourceNotFoundError:
            return None


def test_a_host_killed_mid_run_resumes_and_accounts_for_every_activity(
    azurite: Azurite, tmp_path: Path
) -> None:
    hub = f"restart{uuid.uuid4().hex[:8]}"
    record = tmp_path / "executions.log"
    instance_id = "restart-run"
    interrupted: list[set[int]] = []

    for kill in range(2):  # killed twice: the second time while running recovered work
        start = (instance_id, str(JOBS)) if kill == 0 else ()
        with host_process(azurite, hub, record, *start) as process:
            pid = process.pid
            poll(
                lambda: finished(record, pid) >= 5 and in_flight(record, pid),  # noqa: B023
                timeout=60,
                what="activities to complete and others to be in flight",
            )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        interrupted.append(in_flight(record, pid))
        row = instance_row(azurite, hub, instance_id)
        assert row is not None and row["RuntimeStatus"] == "Running"
    before_last_start = len(executions(record))

    with host_process(azurite, hub, record):
        row = poll(
            lambda: (
                (found := instance_row(azurite, hub, instance_id)) is not None
                and found["RuntimeStatus"] == "Completed"
                and found
            ),
            timeout=60,
            what="the orchestration to complete after the restarts",
        )

    output = json.loads(row["Output"])
    assert sorted(item["job"] for item in output) == list(range(JOBS))  # each exactly once
    assert all(item["square"] == item["job"] ** 2 for item in output)
    after = executions(record)
    started = Counter(job for kind, job, _ in after if kind == "start")
    assert set(started) == set(range(JOBS))  # every job ran at least once
    assert all(interrupted), "each kill should interrupt running activities"
    for jobs in interrupted:
        assert all(started[job] >= 2 for job in jobs)  # dispatched again after a restart
    assert len({pid for _, _, pid in after}) == 3
    last_run = {job for kind, job, _ in after[before_last_start:] if kind == "start"}
    assert interrupted[-1] <= last_run
