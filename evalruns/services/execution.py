"""The work of a run: planning its ledger and probing one job against its model."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from evalruns.domain.base import utcnow
from evalruns.domain.decisions import ERROR, PENDING
from evalruns.domain.expansion import max_prompt_chars
from evalruns.domain.jobspace import JobSpace
from evalruns.domain.ledger import Group, Ledger
from evalruns.domain.orchestration import PlanResult, WorkInput
from evalruns.domain.runs import ModelProgress, RunStatus
from evalruns.domain.scheduler import Outcome, Pace
from evalruns.domain.tokens import cost_usd, estimate_tokens
from evalruns.domain.transcripts import (
    Job,
    Transcript,
    TranscriptError,
    TranscriptStatus,
    Turn,
)
from evalruns.providers.base import (
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    Message,
    ProviderError,
)
from evalruns.providers.catalog import ResolvedModel, UnknownModelError
from evalruns.providers.registry import ProviderNotConfiguredError, open_provider
from evalruns.services.container import Services
from evalruns.services.reconcile import settle
from evalruns.services.summaries import needs_summary
from evalruns.services.work import gate, job_space
from evalruns.storage.runs import StoredRun

log = logging.getLogger(__name__)


def plan_run(services: Services, run_id: str) -> PlanResult:
    """Write the run's ledger: per provider, how many jobs its lanes will claim, and its pace.

    Nothing is stored per job: lanes compute their jobs from the run's snapshot. A re-run of
    failed jobs copies the parent's successful transcripts into the run (no provider is called
    for them), queues those still waiting for a summary, and stores the selection of jobs it
    executes. Planning again finds the ledger there and keeps it.
    """
    run = services.runs.get(run_id)
    space = JobSpace(run.id, run.definition, run.config)
    carried: dict[str, ModelProgress] = {}
    pending: list[int] = []
    if run.only_failed and run.parent_run_id:
        succeeded = _carry_successes(services, run.parent_run_id, run.id, carried)
        selection: dict[str, list[int]] = {}
        for provider, group in space.groups.items():
            selection[provider] = []
            for ordinal in range(group.first, group.first + group.size):
                key = space.key(ordinal)
                if key not in succeeded:
                    selection[provider].append(ordinal)
                elif succeeded[key]:
                    pending.append(ordinal)
        services.ledgers.put_selection(run.id, selection)
        space = JobSpace(run.id, run.definition, run.config, selection)
    ledger = Ledger(
        groups={
            provider: Group(count=space.count(provider), pace=Pace.open(services.cap(provider)))
            for provider in space.groups
        },
        summary_cap=_summariser_cap(services),
        progress=carried,
        worst_case_job_usd=_worst_case_usd(run),
    )
    ledger.enqueue(pending)
    services.ledgers.create(run.id, ledger)
    jobs = sum(entry.count for entry in ledger.groups.values())
    return PlanResult(jobs=jobs, carried=carried)


def _summariser_cap(services: Services) -> int:
    """Summaries in flight at once: the summariser's provider's cap (1 if it is unusable:
    every summary then fails at once, with the reason)."""
    try:
        return services.cap(services.catalog.resolve(services.settings.summariser_model).provider)
    except UnknownModelError:
        return 1


def _worst_case_usd(run: StoredRun) -> float:
    """The most one job can cost: its longest possible prompt in, `maxTokens` out."""
    prompt = estimate_tokens(max_prompt_chars(run.definition))
    return max(
        (
            cost_usd(
                prompt,
                run.config.max_tokens,
                model.cost_input_per_million,
                model.cost_output_per_million,
            )
            for model in run.config.models
        ),
        default=0.0,
    )


def _carry_successes(
    services: Services, parent_id: str, run_id: str, carried: dict[str, ModelProgress]
) -> dict[str, bool]:
    """Copy the parent's successful transcripts into the run; return their keys, each with
    whether it still waits for a summary."""
    keys: dict[str, bool] = {}
    for transcript in services.transcripts.iterate(parent_id):
        if transcript.status != TranscriptStatus.SUCCEEDED:
            continue
        services.transcripts.put(transcript.model_copy(update={"run_id": run_id}))
        keys[transcript.id] = needs_summary(transcript)
        carried.setdefault(transcript.model_id, ModelProgress()).add(
            ModelProgress(
                completed=1,
                cost_usd=transcript.cost_usd,
                input_tokens=transcript.input_tokens,
                output_tokens=transcript.output_tokens,
            )
        )
    return keys


async def probe_job(services: Services, work: WorkInput) -> Outcome:
    """Run one job, at most once successfully: a job with a successful transcript is not
    sent to its provider again (activities are delivered at least once).

    One storage read (the job's transcript, for that check) and one write (the transcript)
    per job: the job comes from the run's snapshot and the status from this process's cache.
    """
    (item,) = work.items
    job = (await job_space(services, work.run_id)).job(item.ordinal)
    log_extra = {"run_id": job.run_id, "job_key": job.key, "attempt": item.attempt}
    run_gate, existing = await asyncio.gather(
        gate(services, job.run_id),
        services.run_io(services.transcripts.get_if_exists, job.run_id, job.key),
    )
    if existing is not None and existing.status == TranscriptStatus.SUCCEEDED:
        log.info("job already succeeded; not calling the provider again", extra=log_extra)
        return _outcome(job.ordinal, existing)
    if run_gate.status != RunStatus.RUNNING:
        # Paused: the job waits for the resume. Cancelled or ended: it never runs.
        log.info("run is %s; not calling the provider", run_gate.status.value, extra=log_extra)
        kind = "deferred" if run_gate.status in (RunStatus.PAUSED, RunStatus.PENDING) else "stopped"
        return Outcome(ordinal=job.ordinal, kind=kind, model_id=job.model.id)

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
        if error.retry is not None and not work.final(item):
            log.info("retryable provider error %s", error.code, extra=log_extra)
            return Outcome(
                ordinal=job.ordinal,
                kind="retry",
                model_id=job.model.id,
                called=True,
                rate_limited=error.retry.rate_limited,
                retry=error.retry,
            )
        log.warning("job failed: %s", error.code, extra=log_extra)
        outcome = _failure(error)
    except ProviderNotConfiguredError as error:
        log.warning("job failed: provider not configured", extra=log_extra)
        outcome = _failure(ProviderError(str(error), code=ErrorCode.AUTHENTICATION))
    else:
        outcome = _success(result, resolved)
    duration_ms = round((time.perf_counter() - started) * 1000)
    transcript = _transcript(job, item.attempt, request, duration_ms, existing, outcome)
    await services.run_io(services.transcripts.put, transcript)
    if transcript.status == TranscriptStatus.SUCCEEDED:
        services.recent.put(transcript)
    if (await gate(services, job.run_id)).status.is_terminal:
        # The run ended while this call was in flight: count its transcript in.
        await services.run_io(settle, services, job.run_id)
    called = _outcome(job.ordinal, transcript, called=True, rate_limited=_limited(outcome))
    return called.model_copy(update={"seconds": duration_ms / 1000})


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
    attempt: int,
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
        attempts=attempt,
        request_hash=_request_hash(request),
        created_at=existing.created_at if existing else now,
        updated_at=now,
        **outcome,
    )


def _request_hash(request: CompletionRequest) -> str:
    parameters = request.model_dump_json(exclude={"correlation_id"})
    return hashlib.sha256(parameters.encode()).hexdigest()[:16]


def _limited(outcome: dict[str, Any]) -> bool:
    error = outcome.get("error")
    return error is not None and error.code == ErrorCode.RATE_LIMITED.value


def _outcome(
    ordinal: int, transcript: Transcript, called: bool = False, rate_limited: bool = False
) -> Outcome:
    succeeded = transcript.status == TranscriptStatus.SUCCEEDED
    return Outcome(
        ordinal=ordinal,
        kind="done" if succeeded else "failed",
        model_id=transcript.model_id,
        cost_usd=transcript.cost_usd,
        input_tokens=transcript.input_tokens,
        output_tokens=transcript.output_tokens,
        called=called,
        rate_limited=rate_limited,
    )
