"""The export orchestrator: one instance per export of a run (`export:<run>:<export id>`).

It goes on with the export its HTTP request began, one segment (the `export_segment` activity,
a few seconds to minutes of writing) at a time, and reports the rows written so far in its
custom status; the last segment commits the file and the job is the output. A failure leaves
a readable reason in the custom status (the API's export status shows it) and fails the
instance. It continues as new every few segments, so a huge export's history stays small.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.lazy import lazy
from orchestrators.payloads import decode, encode
from orchestrators.retries import INFRASTRUCTURE_RETRY

bp = df.Blueprint()
jobs = lazy("evalruns.exports.jobs")

SEGMENTS_PER_GENERATION = 16


@bp.orchestration_trigger(context_name="context", orchestration=names.EXPORT_ORCHESTRATOR)
def export_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    job = decode(context.get_input(), jobs.ExportJob)
    context.set_custom_status(encode(jobs.ExportProgress(rows=job.rows)))
    try:
        for _ in range(SEGMENTS_PER_GENERATION):
            raw = yield context.call_activity_with_retry(
                names.EXPORT_ACTIVITY, INFRASTRUCTURE_RETRY, encode(job)
            )
            job = decode(raw, jobs.ExportJob)
            context.set_custom_status(encode(jobs.ExportProgress(rows=job.rows)))
            if job.done:
                return encode(job)
    except Exception as error:
        context.set_custom_status(
            encode(jobs.ExportProgress(rows=job.rows, error=jobs.failure_reason(error)))
        )
        raise
    context.continue_as_new(encode(job))
    return None
