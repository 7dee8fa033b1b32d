"""The summarising phase: a decision code and a short explanation for each successful transcript.

After the probes, the run orchestrator walks the run's transcripts a page at a time in key order.
For every successful transcript still `pending`, the code is read from the model's answer
(`extract_decision`) and the configured summariser model (`EVALRUNS_SUMMARISER_MODEL`) writes the
decision text. Summarising is idempotent (a transcript that has its code is never sent to the
summariser again, so a redelivered activity or a retried page only does what is left) and
failure-tolerant (a failed summary is recorded as code `error` with the reason, so a run never
waits on it). Failed jobs keep their `error` code and their job error.

A retryable provider error on a page that will be retried (`final=False`) leaves the transcript
pending and reports the delay the provider asked for; the orchestrator waits on a durable timer
and calls the same page (`SummaryPage.cursor`) again with the next attempt.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from evalruns.domain.base import utcnow
from evalruns.domain.decisions import ERROR, PENDING, extract_decision
from evalruns.domain.orchestration import SummaryPage, SummaryPageInput
from evalruns.domain.runs import RunStatus
from evalruns.domain.transcripts import Transcript, TranscriptStatus
from evalruns.providers.base import CompletionRequest, Message, Provider, ProviderError
from evalruns.providers.catalog import ResolvedModel, UnknownModelError
from evalruns.providers.registry import ProviderNotConfiguredError, open_provider
from evalruns.services.container import Services

log = logging.getLogger(__name__)

# Transcripts per page: the summaries of a page run concurrently in one activity.
SUMMARY_TEMPERATURE = 0.0
SUMMARY_MAX_TOKENS = 200
# The scenario and the answer are cut to these lengths (start and end kept) in the prompt.
PROMPT_MAX_CHARS = 3_000
ANSWER_MAX_CHARS = 6_000
# A runaway summariser cannot make a decision text longer than this.
DECISION_TEXT_MAX_CHARS = 2_000
FAILURE_PREFIX = "summary failed"
CORRELATION_PREFIX = "summary:"
OMISSION = "\n[… {count} characters omitted …]\n"
ELLIPSIS = "…"

SYSTEM_PROMPT = (
    "You summarise the reasoning of an AI model that was given a scenario and answered it. "
    "Reply with one or two neutral sentences that explain the reasoning behind the model's "
    "answer. Do not judge the answer, give advice or add anything the answer does not say."
)
USER_PROMPT = (
    "Scenario given to the model:\n{scenario}\n\n"
    "The model's answer:\n{answer}\n\n"
    "In one or two neutral sentences, explain the reasoning behind this answer."
)


@dataclass(frozen=True)
class _Outcome:
    kind: Literal["summarised", "failed", "pending"]
    retry_after: float | None = None


def needs_summary(transcript: Transcript) -> bool:
    """A successful transcript without a decision yet (a missing code counts as pending)."""
    return transcript.status == TranscriptStatus.SUCCEEDED and transcript.decision_code in (
        "",
        PENDING,
    )


async def summarise_run_page(services: Services, request: SummaryPageInput) -> SummaryPage:
    """The summarise activity: one page, unless the run is no longer SUMMARIZING (cancelled),
    in which case nothing is done and the page says `stopped`."""
    status = await services.run_io(services.runs.status, request.run_id)
    if status != RunStatus.SUMMARIZING:
        log.info(
            "run is %s; not summarising",
            status.value,
            extra={"run_id": request.run_id, "attempt": request.attempt},
        )
        return SummaryPage(cursor=request.cursor, next_cursor=None, stopped=True)
    if request.first is not None and request.last is not None:
        return await summarise_jobs(
            services,
            request.run_id,
            request.first,
            request.last,
            attempt=request.attempt,
            final=request.final,
        )
    return await summarise_page(
        services, request.run_id, request.cursor, attempt=request.attempt, final=request.final
    )


async def summarise_jobs(
    services: Services,
    run_id: str,
    first: int,
    last: int,
    *,
    attempt: int = 1,
    final: bool = True,
    now: datetime | None = None,
) -> SummaryPage:
    """Summarise the transcripts of jobs `first..last`: pages of jobs are known before any is
    summarised, so the orchestration can summarise several at once."""
    jobs = await services.run_io(services.jobs.get_range, run_id, first, last)
    found = await asyncio.gather(
        *(services.run_io(services.transcripts.get_if_exists, run_id, job.key) for job in jobs)
    )
    transcripts = [transcript for transcript in found if transcript is not None]
    return await _summarise_transcripts(
        services, run_id, transcripts, None, None, attempt, final, now
    )


async def summarise_page(
    services: Services,
    run_id: str,
    cursor: str | None,
    *,
    attempt: int = 1,
    final: bool = True,
    now: datetime | None = None,
) -> SummaryPage:
    """Summarise the page of the run's transcripts that starts after `cursor`.

    `final` says no retry of this page follows: a retryable error is then recorded as a failure
    instead of being left pending.
    """
    page = await services.run_io(
        services.transcripts.page, run_id, services.settings.summary_page_size, cursor
    )
    return await _summarise_transcripts(
        services, run_id, page.items, cursor, page.next_cursor, attempt, final, now
    )


async def _summarise_transcripts(
    services: Services,
    run_id: str,
    transcripts: list[Transcript],
    cursor: str | None,
    next_cursor: str | None,
    attempt: int,
    final: bool,
    now: datetime | None,
) -> SummaryPage:
    todo = [transcript for transcript in transcripts if needs_summary(transcript)]
    outcomes = await _summarise_all(services, todo, attempt, final, now or utcnow()) if todo else []
    delays = [o.retry_after for o in outcomes if o.kind == "pending" and o.retry_after is not None]
    result = SummaryPage(
        cursor=cursor,
        next_cursor=next_cursor,
        summarised=sum(o.kind == "summarised" for o in outcomes),
        failed=sum(o.kind == "failed" for o in outcomes),
        pending=sum(o.kind == "pending" for o in outcomes),
        retry_after=max(delays, default=None),
    )
    log.info(
        "summarised a page: %d summarised, %d failed, %d pending of %d transcripts",
        result.summarised,
        result.failed,
        result.pending,
        len(transcripts),
        extra={"run_id": run_id, "attempt": attempt},
    )
    return result


async def _summarise_all(
    services: Services, todo: list[Transcript], attempt: int, final: bool, now: datetime
) -> list[_Outcome]:
    ref = services.settings.summariser_model
    async with AsyncExitStack() as stack:
        try:
            model = services.catalog.resolve(ref)
            provider = await stack.enter_async_context(
                open_provider(model, services.settings, services.catalog)
            )
        except (UnknownModelError, ProviderNotConfiguredError) as error:
            log.warning(
                "summariser model %r cannot be used: %s",
                ref,
                error,
                extra={"run_id": todo[0].run_id, "attempt": attempt},
            )
            reason = f"{FAILURE_PREFIX}: summariser model {ref!r} cannot be used: {error}"
            return list(
                await asyncio.gather(
                    *(_store(services, _failed(t, reason, None, now)) for t in todo)
                )
            )
        return list(
            await asyncio.gather(
                *(_summarise(services, provider, model, t, attempt, final, now) for t in todo)
            )
        )


async def _summarise(
    services: Services,
    provider: Provider,
    model: ResolvedModel,
    transcript: Transcript,
    attempt: int,
    final: bool,
    now: datetime,
) -> _Outcome:
    log_extra = {"run_id": transcript.run_id, "job_key": transcript.id, "attempt": attempt}
    try:
        result = await provider.complete(summary_request(transcript, model))
    except ProviderError as error:
        if error.retryable and not final:
            log.info("retryable summariser error %s", error.code, extra=log_extra)
            return _Outcome("pending", error.retry_after)
        log.warning("summary failed: %s", error.code, extra=log_extra)
        reason = f"{FAILURE_PREFIX}: {error.code.value}: {error.message}"
        return await _store(services, _failed(transcript, reason, model.ref, now))
    text = result.text.strip()
    if not text:
        log.warning("summary failed: empty answer", extra=log_extra)
        reason = f"{FAILURE_PREFIX}: the summariser gave an empty answer ({result.finish_reason})"
        return await _store(services, _failed(transcript, reason, model.ref, now))
    summarised = transcript.model_copy(
        update={
            "decision_code": extract_decision(final_answer(transcript)),
            "decision_text": _clip_end(text, DECISION_TEXT_MAX_CHARS),
            "summary_model": model.ref,
            "updated_at": now,
        }
    )
    return await _store(services, summarised)


def _failed(
    transcript: Transcript, reason: str, model_ref: str | None, now: datetime
) -> Transcript:
    return transcript.model_copy(
        update={
            "decision_code": ERROR,
            "decision_text": reason,
            "summary_model": model_ref,
            "updated_at": now,
        }
    )


async def _store(services: Services, transcript: Transcript) -> _Outcome:
    await services.run_io(services.transcripts.update, transcript)
    return _Outcome("failed" if transcript.decision_code == ERROR else "summarised")


def summary_request(transcript: Transcript, model: ResolvedModel) -> CompletionRequest:
    """The summariser's request: the scenario prompt and the model's answer, cut to size."""
    user = USER_PROMPT.format(
        scenario=clip_middle(scenario_prompt(transcript), PROMPT_MAX_CHARS),
        answer=clip_middle(transcript.response_text, ANSWER_MAX_CHARS),
    )
    return CompletionRequest(
        model=model.version,
        messages=[
            Message(role="system", content=SYSTEM_PROMPT),
            Message(role="user", content=user),
        ],
        temperature=SUMMARY_TEMPERATURE,
        max_tokens=SUMMARY_MAX_TOKENS,
        correlation_id=f"{CORRELATION_PREFIX}{transcript.id}",
    )


def scenario_prompt(transcript: Transcript) -> str:
    """The first user turn: the scenario the model was given."""
    return next((turn.content for turn in transcript.turns if turn.role == "user"), "")


def final_answer(transcript: Transcript) -> str:
    """The model's last turn, which carries its decision ('' when it never answered)."""
    answers = [turn.content for turn in transcript.turns if turn.role == "assistant"]
    return answers[-1] if answers else ""


def clip_middle(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping its start and its end."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    omitted = len(text) - head - tail
    return text[:head] + OMISSION.format(count=omitted) + text[len(text) - tail :]


def _clip_end(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS
