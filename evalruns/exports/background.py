"""Export requests that answer within a few seconds: a file, or an export going on as Durable work.

A request writes the export itself for up to `export_wait_seconds`; a run exported by then gets
its link (201). Otherwise the request hands what it has written to the export orchestration
(instance id `export_instance_id`, one per run, stage and day) and answers 202 with the export's
status; the orchestration goes on a segment (one activity) at a time, reporting the rows written
in its custom status, and commits the file at the end. A request that finds that export already
running joins it (it waits up to the same few seconds for it to finish) instead of writing a
second copy. A finished run's file, once written, is reused; a live run's background export is
handed out again for `LIVE_REUSE` after it finished (so `export.csv` can be retried until it
redirects), then rewritten on request.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from evalruns.domain.base import ApiModel
from evalruns.errors import NotFound
from evalruns.exports.jobs import ExportJob, ExportProgress
from evalruns.exports.segments import run_segment
from evalruns.exports.service import (
    ExportLink,
    ExportTarget,
    link_to,
    new_job,
    reusable,
    target_for,
    target_of,
    written,
)
from evalruns.services.container import Services

LIVE_REUSE = timedelta(minutes=1)
# How often a request waiting for a running export asks for its status.
POLL_SECONDS = 0.25
RUNNING_STATUSES = frozenset({"Pending", "Running", "ContinuedAsNew", "Suspended"})
FAILED_STATUSES = frozenset({"Failed", "Terminated", "Canceled"})
FAILED_REASON = "the export failed; request it again"


def export_instance_id(run_id: str, export_id: str) -> str:
    return f"export:{run_id}:{export_id}"


@dataclass(frozen=True)
class Instance:
    """What the Durable client tells of an orchestration instance."""

    runtime_status: str
    custom_status: Any
    output: Any
    last_updated: datetime | None


class ExportOrchestrations(Protocol):
    async def start(self, instance_id: str, job: ExportJob) -> None: ...

    async def instance(self, instance_id: str) -> Instance | None: ...


class ExportRequest(ApiModel):
    """The body of `POST /api/runs/{id}/exports`."""

    format: Literal["csv"] = "csv"


class ExportStatus(ApiModel):
    """`GET /api/runs/{id}/exports/{exportId}`: once succeeded, the fields of the 201 answer."""

    export_id: str
    status: Literal["running", "succeeded", "failed"]
    rows: int
    error: str | None = None
    url: str | None = None
    expires_at: datetime | None = None
    filename: str | None = None
    bytes: int | None = None


async def request_export(
    services: Services, orchestrations: ExportOrchestrations, run_id: str, now: datetime
) -> ExportLink | ExportStatus:
    """`POST /api/runs/{id}/exports`: a link when the file is ready within the wait, else
    the status of the export going on in the background."""
    run = await services.run_io(services.runs.get, run_id)
    target = target_for(run, now)
    existing = await services.run_io(reusable, services, target, now)
    if existing is not None:
        return existing
    instance_id = export_instance_id(run.id, target.export_id)
    wait = services.settings.export_wait_seconds
    instance = await orchestrations.instance(instance_id)
    if instance is not None and instance.runtime_status in RUNNING_STATUSES:
        return await _join(services, orchestrations, target, now, time.monotonic() + wait)
    if instance is not None and _fresh(instance, now):
        return await _status(services, target, instance, now)
    job = new_job(run, target)
    if wait > 0:
        job = await services.run_io(run_segment, services, job, wait)
        if job.done:
            return await services.run_io(link_to, services, target, job.rows, job.bytes, now)
    try:
        await orchestrations.start(instance_id, job)
    except Exception:
        # Another request started it in between (an instance id runs once at a time): join it.
        if await orchestrations.instance(instance_id) is None:
            raise
        return await _join(services, orchestrations, target, now, time.monotonic())
    return ExportStatus(export_id=target.export_id, status="running", rows=job.rows)


async def export_status(
    services: Services,
    orchestrations: ExportOrchestrations,
    run_id: str,
    export_id: str,
    now: datetime,
) -> ExportStatus:
    """`GET /api/runs/{id}/exports/{exportId}`; NotFound for an export never started."""
    target = target_of(run_id, export_id)
    await services.run_io(services.runs.get, run_id)
    instance = await orchestrations.instance(export_instance_id(run_id, export_id))
    if instance is None:
        # Written within its request, never in the background: the file is the record.
        found = await services.run_io(written, services, target)
        if found is None:
            raise NotFound(f"run {run_id!r} has no export {export_id!r}")
        link = await services.run_io(link_to, services, target, *found, now)
        return _succeeded(target, link)
    return await _status(services, target, instance, now)


async def _join(
    services: Services,
    orchestrations: ExportOrchestrations,
    target: ExportTarget,
    now: datetime,
    deadline: float,
) -> ExportLink | ExportStatus:
    """The running export's link once it finishes before `deadline`, else its status."""
    instance_id = export_instance_id(target.run_id, target.export_id)
    while True:
        instance = await orchestrations.instance(instance_id)
        if instance is None:
            raise NotFound(f"run {target.run_id!r} has no export {target.export_id!r}")
        status = await _status(services, target, instance, now)
        if status.status != "running" or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    if status.status == "succeeded" and status.url is not None:
        return ExportLink.model_validate(status.model_dump(include=set(ExportLink.model_fields)))
    return status


async def _status(
    services: Services, target: ExportTarget, instance: Instance, now: datetime
) -> ExportStatus:
    progress = _progress(instance.custom_status)
    if instance.runtime_status in RUNNING_STATUSES:
        return ExportStatus(export_id=target.export_id, status="running", rows=progress.rows)
    if instance.runtime_status == "Completed":
        job = _job(instance.output)
        if job is not None and job.done:
            link = await services.run_io(link_to, services, target, job.rows, job.bytes, now)
            return _succeeded(target, link)
    reason = progress.error or FAILED_REASON
    if instance.runtime_status == "Terminated":
        reason = "the export was stopped before it finished; request it again"
    return ExportStatus(
        export_id=target.export_id, status="failed", rows=progress.rows, error=reason
    )


def _succeeded(target: ExportTarget, link: ExportLink) -> ExportStatus:
    return ExportStatus(export_id=target.export_id, status="succeeded", **link.model_dump())


def _fresh(instance: Instance, now: datetime) -> bool:
    """A live export finished in the background moments ago (a finished run's export is
    reused from its file)."""
    return (
        instance.runtime_status == "Completed"
        and instance.last_updated is not None
        and now - instance.last_updated < LIVE_REUSE
        and _job(instance.output) is not None
    )


def _progress(custom_status: Any) -> ExportProgress:
    try:
        return ExportProgress.model_validate(_decoded(custom_status) or {})
    except ValidationError:
        return ExportProgress()


def _job(output: Any) -> ExportJob | None:
    try:
        return ExportJob.model_validate(_decoded(output))
    except ValidationError:
        return None


def _decoded(value: Any) -> Any:
    """Durable may hand back JSON text where a dict was set (DESIGN.md rule 6)."""
    try:
        while isinstance(value, str):
            value = json.loads(value)
    except ValueError:
        return None
    return value
