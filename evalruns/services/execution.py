"""The work of a run: planning its jobs and probing one job against its model."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from evalruns.domain.base import utcnow
from evalruns.domain.decisions import ERROR, PENDING
from evalruns.domain.expansion import scenario_at
from evalruns.domain.orchestration import PlanResult, ProbeInput, ProbeOutcome
from evalruns.domain.runs import ModelProgress, RunModel, RunStatus
from evalruns.domain.sampling import sample_indices
from evalruns.domain.tokens import cost_usd, estimate_tokens
from evalruns.domain.transcripts import (
    Job,
    Transcript,
    TranscriptError,
    TranscriptStatus,
    Turn,
    job_key,
)
from evalruns.domain.waves import Lane, consecutive_runs
from evalruns.providers.base import (
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    Message,
    ProviderError,
)
from evalruns.providers.catalog import Catalog, ResolvedModel, UnknownModelError
from evalruns.providers.registry import ProviderNotConfiguredError, open_provider
from evalruns.services.container import Services
from evalruns.settings import Settings
from evalruns.storage.runs import StoredRun

log = logging.getLogger(__name__)
# Jobs are written as they are generated, in chunks, so planning never holds a whole run.
PLAN_WRITE_CHUNK = 1000


def plan_run(services: Services, run_id: str) -> PlanResult:
    """Expand, sample and store the run's jobs; return only counts and lanes.

    Jobs are stored provider by provider (each provider's jobs form one lane of ordinals, so
    its concurrency cap can be honoured), and within a provider they interleave its models
    (scenario, then model, then sample) so every model progresses together. Re-planning writes
    the same jobs under the same keys. A re-run of failed jobs keeps only the jobs without a
    successful transcript in the parent, and copies those transcripts into the run instead (no
    provider is called for them).
    """
    run = services.runs.get(run_id)
    settings = services.settings
    catalog = services.catalog
    carried: dict[str, ModelProgress] = {}
    succeeded = (
        _carry_successes(services, run.parent_run_id, run.id, carried)
        if run.only_failed and run.parent_run_id
        else set()
    )
    lanes: list[Lane] = []
    worst_case = 0.0
    ordinal = 0
    for provider, models in _by_provider(run.config.models).items():
        first = ordinal
        jobs: list[Job] = []
        for job in _jobs(run, models):
            if job.key in succeeded:
                continue
            jobs.append(job.model_copy(update={"ordinal": ordinal}))
            worst_case = max(worst_case, _worst_case_usd(job))
            ordinal += 1
            if len(jobs) >= PLAN_WRITE_CHUNK:
                services.jobs.put_all(jobs)
                jobs = []
        services.jobs.put_all(jobs)
        if ordinal > first:
            cap = catalog.providers[provider].max_concurrency
            lanes.append(Lane.sized(provider, first, ordinal - 1, settings.batch_size, cap))
    return PlanResult(
        totals_by_model=run.config.jobs_by_model,
        carried=carried,
        lanes=lanes,
        parallel_batches=settings.parallel_batches,
        max_attempts=settings.max_attempts,
        worst_case_job_usd=worst_case,
        summary_lane=_summary_lane(catalog, settings, ordinal),
    )


def _summary_lane(catalog: Catalog, settings: Settings, jobs: int) -> Lane | None:
    """Summary pages over the jobs, as many at once as the summariser's provider allows."""
    if not jobs:
        return None
    try:
        provider: str | None = catalog.resolve(settings.summariser_model).provider
    except UnknownModelError:
        provider = None  # every summary then fails at once, with the reason
    cap = catalog.providers[provider].max_concurrency if provider else 1
    return Lane.sized(provider or "none", 0, jobs - 1, settings.summary_page_size, cap)


def _by_provider(models: list[RunModel]) -> dict[str, list[RunModel]]:
    grouped: dict[str, list[RunModel]] = {}
    for model in models:
        grouped.setdefault(model.provider, []).append(model)
    return grouped


def _worst_case_usd(job: Job) -> float:
    """The most a job can cost: its whole prompt in, `maxTokens` out."""
    prompt = estimate_tokens(len(job.preamble) + len(job.prompt))
    return cost_usd(
        prompt, job.max_tokens, job.model.cost_input_per_million, job.model.cost_output_per_million
    )


def _carry_successes(
    services: Services, parent_id: str, run_id: str, carried: dict[str, ModelProgress]
) -> set[str]:
    """Copy the parent's successful transcripts into the run; return their keys."""
    keys: set[str] = set()
    for transcript in services.transcripts.iterate(parent_id):
        if transcript.status != TranscriptStatus.SUCCEEDED:
            continue
        services.transcripts.put(transcript.model_copy(update={"run_id": run_id}))
        keys.add(transcript.id)
        carried.setdefault(transcript.model_id, ModelProgress()).add(
            ModelProgress(
                completed=1,
                cost_usd=transcript.cost_usd,
                input_tokens=transcript.input_tokens,
                output_tokens=transcript.output_tokens,
            )
        )
    return keys


def _jobs(run: StoredRun, models: list[RunModel]) -> Iterator[Job]:
    """The run's jobs for `models` in execution order (ordinals are assigned when stored)."""
    config = run.config
    indices = sample_indices(
        run.definition.scenario_count, config.sample_percentage, config.sample_seed
    )
    for index in indices:
        scenario = scenario_at(run.definition, index)
        for model in models:
            for sample in range(1, config.samples_per_scenario + 1):
                yield Job(
                    run_id=run.id,
                    ordinal=0,
                    key=job_key(model.id, scenario.id, sample),
                    scenario_id=scenario.id,
                    scenario_number=scenario.number,
                    scenario_name=scenario.name,
                    dimensions=scenario.dimensions,
                    preamble=scenario.preamble,
                    prompt=scenario.prompt,
                    model=model,
                    sample=sample,
                    temperature=config.temperature,
                    max_tokens=config.max_tokens,
                )


def load_jobs(services: Services, run_id: str, ordinals: list[int]) -> list[Job]:
    """The jobs of a batch, one range query per run of consecutive ordinals: fresh jobs are
    consecutive, and retried or deferred ones joining them must not widen the range read."""
    return [
        job
        for first, last in consecutive_runs(ordinals)
        for job in services.jobs.get_range(run_id, first, last)
    ]


async def probe_job(services: Services, probe: ProbeInput) -> ProbeOutcome:
    """Run one job, at most once successfully: a job with a successful transcript is not
    sent to its provider again (activities are delivered at least once)."""
    job = probe.job
    log_extra = {"run_id": job.run_id, "job_key": job.key, "attempt": probe.attempt}
    status, existing = await asyncio.gather(
        services.run_io(services.runs.status, job.run_id),
        services.run_io(services.transcripts.get_if_exists, job.run_id, job.key),
    )
    if existing is not None and existing.status == TranscriptStatus.SUCCEEDED:
        log.info("job already succeeded; not calling the provider again", extra=log_extra)
        return _outcome(job.ordinal, existing)
    if status != RunStatus.RUNNING:
        # Paused: the job waits for the resume. Cancelled or ended: it never runs.
        log.info("run is %s; not calling the provider", status.value, extra=log_extra)
        return ProbeOutcome(
            ordinal=job.ordinal,
            outcome="deferred" if status == RunStatus.PAUSED else "stopped",
            model_id=job.model.id,
        )

    request = CompletionRequest(
        model=job.model.version,
        messages=_messages(job),
        temperature=job.temperature,
        max_tokens=job.max_tokens,
        correlation_id=f"{job.run_id}:{job.key}",
    )
    resolved = ResolvedModel(
        model_id=job.model.id,
        provider=job.model.provider,
        version=job.model.version,
        cost_input_per_million=job.model.cost_input_per_million,
        cost_output_per_million=job.model.cost_output_per_million,
    )
    started = time.perf_counter()
    try:
        async with open_provider(resolved, services.settings) as provider:
            result = await provider.complete(request)
    except ProviderError as error:
        if error.retryable and not probe.final:
            log.info("retryable provider error %s", error.code, extra=log_extra)
            return ProbeOutcome(
                ordinal=job.ordinal,
                outcome="retry",
                model_id=job.model.id,
                retry_after=error.retry_after,
            )
        log.warning("job failed: %s", error.code, extra=log_extra)
        outcome = _failure(error)
    except ProviderNotConfiguredError as error:
        log.warning("job failed: provider not configured", extra=log_extra)
        outcome = _failure(ProviderError(str(error), code=ErrorCode.AUTHENTICATION))
    else:
        outcome = _success(result, resolved)
    duration_ms = round((time.perf_counter() - started) * 1000)
    transcript = _transcript(job, probe, request, duration_ms, existing, outcome)
    await services.run_io(services.transcripts.put, transcript)
    return _outcome(job.ordinal, transcript)


def _success(result: CompletionResult, model: ResolvedModel) -> dict[str, Any]:
    return {
        "status": TranscriptStatus.SUCCEEDED,
        "reply": Turn(role="assistant", content=result.text, tokens=result.output_tokens),
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": model.cost_usd(result.input_tokens, result.output_tokens),
        "provider_model": result.provider_model,
        "finish_reason": result.finish_reason.value,
        # The summarising phase extracts the code and writes the text.
        "decision_code": PENDING,
    }


def _failure(error: ProviderError) -> dict[str, Any]:
    return {
        "status": TranscriptStatus.FAILED,
        "decision_code": ERROR,
        "error": TranscriptError(code=error.code.value, message=error.message),
    }


def _messages(job: Job) -> list[Message]:
    system = [Message(role="system", content=job.preamble)] if job.preamble.strip() else []
    return [*system, Message(role="user", content=job.prompt)]


def _transcript(
    job: Job,
    probe: ProbeInput,
    request: CompletionRequest,
    duration_ms: int,
    existing: Transcript | None,
    outcome: dict[str, Any],
) -> Transcript:
    now = utcnow()
    turns = [Turn(role=message.role, content=message.content) for message in request.messages]
    reply = outcome.pop("reply", None)
    if reply is not None:
        turns[-1] = turns[-1].model_copy(update={"tokens": outcome["input_tokens"]})
        turns.append(reply)
    return Transcript(
        id=job.key,
        run_id=job.run_id,
        scenario_id=job.scenario_id,
        scenario_number=job.scenario_number,
        scenario_name=job.scenario_name,
        dimensions=job.dimensions,
        model_id=job.model.id,
        model_version=job.model.version,
        requested_model=job.model.requested or job.model.id,
        provider=job.model.provider,
        sample=job.sample,
        turns=turns,
        duration_ms=duration_ms,
        attempts=probe.attempt,
        request_hash=_request_hash(request),
        created_at=existing.created_at if existing else now,
        updated_at=now,
        **outcome,
    )


def _request_hash(request: CompletionRequest) -> str:
    parameters = request.model_dump_json(exclude={"correlation_id"})
    return hashlib.sha256(parameters.encode()).hexdigest()[:16]


def _outcome(ordinal: int, transcript: Transcript) -> ProbeOutcome:
    succeeded = transcript.status == TranscriptStatus.SUCCEEDED
    return ProbeOutcome(
        ordinal=ordinal,
        outcome="succeeded" if succeeded else "failed",
        model_id=transcript.model_id,
        cost_usd=transcript.cost_usd,
        input_tokens=transcript.input_tokens,
        output_tokens=transcript.output_tokens,
    )
