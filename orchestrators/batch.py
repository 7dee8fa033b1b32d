"""The batch sub-orchestrator: probes a bounded set of jobs once each.

A retryable provider error (rate limit, timeout, 5xx) comes back from the probe as an outcome
with the delay the provider asked for; the batch hands the job back to the run with that delay
(backoff with jitter when the provider named none), and the run waits it out on a durable
timer while its other jobs keep flowing: no activity sleeps and no batch holds a wave back.
The plan's last attempt records any failure. Jobs a pause caught before their call come back
as deferred; a cancelled run's probes call no provider (the run and this batch are terminated).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.domain.orchestration import (
    BatchInput,
    BatchJobsInput,
    BatchResult,
    ProbeInput,
    ProbeOutcome,
    add_outcomes,
    retry_delay,
)
from evalruns.domain.transcripts import Job
from orchestrators.payloads import decode, encode
from orchestrators.retries import INFRASTRUCTURE_RETRY

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=names.BATCH_ORCHESTRATOR)
def batch_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    batch = decode(context.get_input(), BatchInput)
    loaded = yield context.call_activity_with_retry(
        names.LOAD_JOBS_ACTIVITY,
        INFRASTRUCTURE_RETRY,
        encode(BatchJobsInput(run_id=batch.run_id, ordinals=batch.ordinals)),
    )
    jobs = {job.ordinal: job for job in (Job.model_validate(raw) for raw in loaded)}
    if sorted(jobs) != sorted(batch.ordinals):
        raise RuntimeError(
            f"batch {batch.batch} of run {batch.run_id} found {len(jobs)} of its "
            f"{len(batch.ordinals)} jobs"
        )
    attempts = batch.attempt_of()
    outcomes = [
        ProbeOutcome.model_validate(raw)
        for raw in (
            yield context.task_all(
                [
                    context.call_activity_with_retry(
                        names.PROBE_ACTIVITY,
                        INFRASTRUCTURE_RETRY,
                        encode(
                            ProbeInput(
                                job=jobs[ordinal],
                                attempt=attempt,
                                final=attempt >= batch.max_attempts,
                            )
                        ),
                    )
                    for ordinal, attempt in attempts.items()
                ]
            )
        )
    ]
    result = BatchResult()
    add_outcomes(result.by_model, outcomes)
    result.deferred = [o.ordinal for o in outcomes if o.outcome == "deferred"]
    retries = [o for o in outcomes if o.outcome == "retry"]
    result.retry = [o.ordinal for o in retries]
    result.retry_in = max(
        (retry_delay(batch.run_id, o.ordinal, attempts[o.ordinal], o.retry_after) for o in retries),
        default=0.0,
    )
    return encode(result)
