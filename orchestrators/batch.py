"""The batch sub-orchestrator: probes a bounded set of jobs, retrying provider errors.

A retryable provider error (rate limit, timeout, 5xx) comes back from the probe as an outcome
with the delay the provider asked for; the batch waits it out on a durable timer (no activity
sleeps) and tries again, up to the plan's attempt limit. The last attempt records any failure.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
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
    jobs = {
        job.ordinal: job
        for job in (
            Job.model_validate(raw)
            for raw in (
                yield context.call_activity_with_retry(
                    names.LOAD_JOBS_ACTIVITY,
                    INFRASTRUCTURE_RETRY,
                    encode(BatchJobsInput(run_id=batch.run_id, first=batch.first, last=batch.last)),
                )
            )
        )
    }
    if len(jobs) != batch.last - batch.first + 1:
        raise RuntimeError(
            f"batch {batch.batch} of run {batch.run_id} found {len(jobs)} of its "
            f"{batch.last - batch.first + 1} jobs"
        )
    result = BatchResult()
    pending = [(ordinal, 1) for ordinal in sorted(jobs)]
    while pending:
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
                        for ordinal, attempt in pending
                    ]
                )
            )
        ]
        add_outcomes(result.by_model, outcomes)
        attempts = dict(pending)
        retries = [outcome for outcome in outcomes if outcome.outcome == "retry"]
        if not retries:
            break
        delay = max(
            retry_delay(batch.run_id, o.ordinal, attempts[o.ordinal], o.retry_after)
            for o in retries
        )
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=delay))
        pending = [(o.ordinal, attempts[o.ordinal] + 1) for o in retries]
    return encode(result)
