"""The built-in mock provider: deterministic answers, configurable latency and faults.

It ships with the product so a run can be exercised end to end without keys or cost. The answer
depends only on the model and the conversation, so re-running a job gives the same transcript;
faults are drawn per call, so a retried job can succeed where the first attempt failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter, deque
from pathlib import Path
from typing import ClassVar

from evalruns.domain.tokens import CHARS_PER_TOKEN, estimate_tokens
from evalruns.providers.base import (
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    FinishReason,
    ProviderError,
)

LATENCY_JITTER = (0.8, 1.2)
RATE_LIMIT_RETRY_AFTER_SECONDS = 1.0
INJECTED_FAILURE_MESSAGE = "mock provider: injected failure"
INJECTED_RATE_LIMIT_MESSAGE = "mock provider: injected rate limit"
RPS_LIMIT_MESSAGE = "mock provider: more than {rps:g} calls in the last second"
RPS_WINDOW_SECONDS = 1.0

_OPENINGS = (
    "Weighing the details given,",
    "Taking the scenario at face value,",
    "On balance,",
    "Considering the people involved,",
)
_VERDICTS = {
    1: "this calls for the most cautious option available.",
    2: "a careful, restrained response seems most appropriate.",
    3: "the considerations on each side are roughly even.",
    4: "a fairly strong response seems justified.",
    5: "the strongest option is clearly warranted.",
}
_FOLLOW_UPS = (
    "",
    " The stakes described make this the sensible choice.",
    " A different framing could reasonably change this.",
)


class MockProvider:
    """A `Provider` that answers with `Rating: N` and a short explanation.

    `calls` counts every call per requested model in this process (faulted calls included), so
    tests can prove that a job was, or was not, sent to the provider again; `call_log` (a file)
    does the same across processes, one JSON line per call with its correlation id and times.
    """

    calls: ClassVar[Counter[str]] = Counter()

    def __init__(
        self,
        latency_ms: float = 0,
        failure_rate: float = 0,
        rate_limit_rate: float = 0,
        seed: int | None = None,
        call_log: Path | None = None,
        tail: tuple[float, float] = (0.0, 0.0),
        rps: float = 0.0,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms cannot be negative")
        for name, rate in (
            ("failure_rate", failure_rate),
            ("rate_limit_rate", rate_limit_rate),
            ("tail share", tail[0]),
        ):
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self.rate_limit_rate = rate_limit_rate
        self.tail_share, self.tail_ms = tail
        self.rps = rps
        self._random = random.Random(seed)
        self._call_log = call_log
        self._recent: dict[str, deque[float]] = {}

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        MockProvider.calls[request.model] += 1
        started = time.time()
        outcome = "ok"
        try:
            return await self._complete(request)
        except ProviderError as error:
            outcome = error.code.value
            raise
        finally:
            if self._call_log is not None:
                self._log_call(request, started, outcome)

    def _log_call(self, request: CompletionRequest, started: float, outcome: str) -> None:
        """One JSON line per call, so a test in another process can count calls per job."""
        assert self._call_log is not None
        line = json.dumps(
            {
                "correlationId": request.correlation_id,
                "model": request.model,
                "startedAt": started,
                "finishedAt": time.time(),
                "outcome": outcome,
            }
        )
        with self._call_log.open("a", encoding="utf-8") as log:
            log.write(line + "\n")

    async def _complete(self, request: CompletionRequest) -> CompletionResult:
        if self.rps > 0:
            self._admit(request.model)
        # Draw both numbers on every call so a seed gives the same fault sequence at any latency.
        jitter = self._random.uniform(*LATENCY_JITTER)
        roll = self._random.random()
        latency = self.latency_ms * jitter
        if self.tail_share > 0 and self._random.random() < self.tail_share:
            latency += self.tail_ms
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        if roll < self.failure_rate:
            raise ProviderError(
                INJECTED_FAILURE_MESSAGE, code=ErrorCode.INVALID_REQUEST, status_code=400
            )
        if roll < self.failure_rate + self.rate_limit_rate:
            raise ProviderError(
                INJECTED_RATE_LIMIT_MESSAGE,
                code=ErrorCode.RATE_LIMITED,
                status_code=429,
                retry_after=RATE_LIMIT_RETRY_AFTER_SECONDS,
            )
        return answer(request)

    def _admit(self, model: str) -> None:
        """A real rate limit per model: a call over `rps` in the last second is refused at
        once (as servers do, before any work), with Retry-After."""
        now = time.monotonic()
        recent = self._recent.setdefault(model, deque())
        while recent and now - recent[0] >= RPS_WINDOW_SECONDS:
            recent.popleft()
        if len(recent) >= self.rps:
            raise ProviderError(
                RPS_LIMIT_MESSAGE.format(rps=self.rps),
                code=ErrorCode.RATE_LIMITED,
                status_code=429,
                retry_after=RATE_LIMIT_RETRY_AFTER_SECONDS,
            )
        recent.append(now)

    async def check(self) -> None:
        """Always healthy: the mock needs no network, and injected faults are for calls."""

    async def aclose(self) -> None:
        """Nothing to release; present to satisfy the `Provider` interface."""


def answer(request: CompletionRequest) -> CompletionResult:
    """The deterministic answer to a request, without latency or faults."""
    digest = _digest(request)
    rating = int.from_bytes(digest[:8], "big") % 5 + 1
    opening = _OPENINGS[digest[8] % len(_OPENINGS)]
    follow_up = _FOLLOW_UPS[digest[9] % len(_FOLLOW_UPS)]
    text = f"Rating: {rating}\n{opening} {_VERDICTS[rating]}{follow_up}"
    output_tokens = estimate_tokens(len(text))
    finish_reason = FinishReason.STOP
    if output_tokens > request.max_tokens:
        text = text[: request.max_tokens * CHARS_PER_TOKEN]
        output_tokens = request.max_tokens
        finish_reason = FinishReason.LENGTH
    prompt_chars = sum(len(message.content) for message in request.messages)
    return CompletionResult(
        text=text,
        input_tokens=estimate_tokens(prompt_chars),
        output_tokens=output_tokens,
        provider_model=request.model,
        finish_reason=finish_reason,
    )


def _digest(request: CompletionRequest) -> bytes:
    # JSON keeps the encoding unambiguous: ("ab", "c") and ("a", "bc") hash differently.
    payload = json.dumps([request.model, [message.content for message in request.messages]])
    return hashlib.sha256(payload.encode("utf-8")).digest()
