"""Summaries: a decision code and a short explanation for each successful transcript.

A transcript's summary is written as soon as the transcript exists: summary lanes claim the
jobs that succeeded from the run's ledger while the probes go on (within the summariser's own
cap). The code is read from the model's answer (`extract_decision`) and the configured
summariser model (`EVALRUNS_SUMMARISER_MODEL`) writes the decision text. Summarising is
idempotent (a transcript that has its code is never sent to the summariser again) and
failure-tolerant (a failed summary is recorded as code `error` with the reason, so a run never
waits on it). Failed jobs keep their `error` code and their job error. A retryable summariser
error comes back as a retry outcome; the summary lane waits it out like a probe's.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from evalruns.domain.base import utcnow
from evalruns.domain.decisions import ERROR, PENDING, extract_decision
from evalruns.domain.orchestration import WorkInput
from evalruns.domain.runs import RunStatus
from evalruns.domain.scheduler import Outcome, WorkItem
from evalruns.domain.transcripts import Transcript, TranscriptStatus
from evalruns.providers.base import CompletionRequest, Message, ProviderError
from evalruns.providers.catalog import ResolvedModel, UnknownModelError
from evalruns.providers.registry import ProviderNotConfiguredError, open_provider
from evalruns.services.container import Services
from evalruns.services.work import gate, job_space

log = logging.getLogger(__name__)

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


def needs_summary(transcript: Transcript) -> bool:
    """A successful transcript without a decision yet (a missing code counts as pending)."""
    return transcript.status == TranscriptStatus.SUCCEEDED and transcript.decision_code in (
        "",
        PENDING,
    )


async def summarise_jobs(
    services: Services, work: WorkInput, now: datetime | None = None
) -> list[Outcome]:
    """Summarise the transcripts of `work.items`, one after the other (each summary is
    checked against the run's status first, so a pause stops the rest)."""
    return [await summarise_job(services, work, item, now) for item in work.items]


async def summarise_job(
    services: Services, work: WorkInput, item: WorkItem, now: datetime | None = None
) -> Outcome:
    """Give job `item`'s transcript its decision code and text.

    Idempotent: a transcript that has its code is never sent to the summariser again. A run
    that is paused defers the summary; one that has ended (cancelled) stops it.
    """
    run_id, ordinal = work.run_id, item.ordinal
    key = (await job_space(services, run_id)).key(ordinal)
    log_extra = {"run_id": run_id, "job_key": key, "attempt": item.attempt}
    run_gate, transcript = await asyncio.gather(
        gate(services, run_id), _read(services, run_id, key)
    )
    if transcript is None or not needs_summary(transcript):
        return Outcome(ordinal=ordinal, kind="done")
    if run_gate.status not in (RunStatus.RUNNING, RunStatus.SUMMARIZING):
        log.info("run is %s; not summarising", run_gate.status.value, extra=log_extra)
        kind = "stopped" if run_gate.status.is_terminal else "deferred"
        return Outcome(ordinal=ordinal, kind=kind)
    now = now or utcnow()
    ref = services.settings.summariser_model
    try:
        model = services.catalog.resolve(ref)
        async with open_provider(model, services.settings, services.catalog) as provider:
            result = await provider.complete(summary_request(transcript, model))
    except (UnknownModelError, ProviderNotConfiguredError) as error:
        log.warning("summariser model %r cannot be used: %s", ref, error, extra=log_extra)
        reason = f"{FAILURE_PREFIX}: summariser model {ref!r} cannot be used: {error}"
        return await _store(services, ordinal, _failed(transcript, reason, None, now), False)
    except ProviderError as error:
        if error.retry is not None and not work.final(item):
            log.info("retryable summariser error %s", error.code, extra=log_extra)
            return Outcome(
                ordinal=ordinal,
                kind="retry",
                called=True,
                rate_limited=error.retry.rate_limited,
                retry=error.retry,
            )
        log.warning("summary failed: %s", error.code, extra=log_extra)
        reason = f"{FAILURE_PREFIX}: {error.code.value}: {error.message}"
        return await _store(services, ordinal, _failed(transcript, reason, model.ref, now))
    text = result.text.strip()
    if not text:
        log.warning("summary failed: empty answer", extra=log_extra)
        reason = f"{FAILURE_PREFIX}: the summariser gave an empty answer ({result.finish_reason})"
        return await _store(services, ordinal, _failed(transcript, reason, model.ref, now))
    summarised = transcript.model_copy(
        update={
            "decision_code": extract_decision(final_answer(transcript)),
            "decision_text": _clip_end(text, DECISION_TEXT_MAX_CHARS),
            "summary_model": model.ref,
            "updated_at": now,
        }
    )
    return await _store(services, ordinal, summarised)


async def _read(services: Services, run_id: str, key: str) -> Transcript | None:
    """The transcript, from this process's recent writes when it was probed here."""
    recent = services.recent.take(run_id, key)
    if recent is not None:
        return recent
    return await services.run_io(services.transcripts.get_if_exists, run_id, key)


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


async def _store(
    services: Services, ordinal: int, transcript: Transcript, called: bool = True
) -> Outcome:
    await services.run_io(services.transcripts.update, transcript)
    kind = "failed" if transcript.decision_code == ERROR else "done"
    return Outcome(ordinal=ordinal, kind=kind, called=called)


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
