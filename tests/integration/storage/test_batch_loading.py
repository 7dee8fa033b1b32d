"""A batch loads exactly its jobs, reading no job outside them: retried or deferred jobs far
from the fresh ones they travel with must not widen the range read."""

from __future__ import annotations

import uuid

import pytest

from evalruns.domain.transcripts import Job
from evalruns.services import Services
from evalruns.services.execution import load_jobs
from tests.integration.storage.test_repositories import make_job


def test_a_batch_with_far_apart_jobs_reads_only_those(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = uuid.uuid4().hex
    services.jobs.put_all(make_job(run_id, ordinal) for ordinal in range(1300))
    read: list[int] = []
    get_range = services.jobs.get_range

    def recording(run: str, first: int, last: int) -> list[Job]:
        found = get_range(run, first, last)
        read.extend(job.ordinal for job in found)
        return found

    monkeypatch.setattr(services.jobs, "get_range", recording)
    wanted = [3, 1200, 1201, 1202, 1203, 4, 9]
    jobs = load_jobs(services, run_id, wanted)
    assert sorted(job.ordinal for job in jobs) == sorted(wanted)
    assert sorted(read) == sorted(wanted)  # not the 1,201 jobs between 3 and 1203
