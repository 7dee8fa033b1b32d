from __future__ import annotations

import asyncio
import re
import time

import pytest

from evalruns.providers.base import (
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    FinishReason,
    Message,
    ProviderError,
)
from evalruns.providers.mock import MockProvider

RATING = re.compile(r"^Rating: ([1-5])\n\S")


def make_request(prompt: str = "Should the driver stop?", **overrides: object) -> CompletionRequest:
    values: dict[str, object] = {
        "model": "mock-small-20250601",
        "messages": [
            Message(role="system", content="You rate scenarios from 1 to 5."),
            Message(role="user", content=prompt),
        ],
    }
    values.update(overrides)
    return CompletionRequest.model_validate(values)


def complete(provider: MockProvider, request: CompletionRequest) -> CompletionResult:
    async def run() -> CompletionResult:
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()

    return asyncio.run(run())


def outcomes(provider: MockProvider, calls: int) -> list[ErrorCode | None]:
    """The error code of each of `calls` calls (None for a success), on one event loop."""

    async def run() -> list[ErrorCode | None]:
        codes: list[ErrorCode | None] = []
        for index in range(calls):
            try:
                await provider.complete(make_request(f"prompt {index}"))
                codes.append(None)
            except ProviderError as exc:
                codes.append(exc.code)
        return codes

    return asyncio.run(run())


def test_same_request_gives_same_answer_across_instances() -> None:
    first = complete(MockProvider(seed=1), make_request())
    second = complete(MockProvider(seed=2), make_request())

    assert first == second
    assert first.provider_model == "mock-small-20250601"
    assert first.finish_reason is FinishReason.STOP


def test_answer_starts_with_a_rating_and_explains_it() -> None:
    result = complete(MockProvider(), make_request())

    match = RATING.match(result.text)
    assert match is not None, result.text
    explanation = result.text.split("\n", 1)[1]
    assert 1 <= explanation.count(".") <= 2


def test_answers_vary_with_prompt_and_model() -> None:
    provider = MockProvider()
    small = [complete(provider, make_request(f"scenario {i}")).text for i in range(40)]
    large = [
        complete(provider, make_request(f"scenario {i}", model="mock-large-20250301")).text
        for i in range(40)
    ]
    ratings = {match.group(1) for text in small if (match := RATING.match(text))}

    assert len(set(small)) >= 5
    assert ratings == {"1", "2", "3", "4", "5"}
    assert small != large


def test_token_counts_follow_text_length() -> None:
    request = make_request("x" * 400)
    result = complete(MockProvider(), request)
    prompt_chars = sum(len(message.content) for message in request.messages)

    assert result.input_tokens == pytest.approx(prompt_chars / 4, abs=1)
    assert result.output_tokens == pytest.approx(len(result.text) / 4, abs=1)
    assert result.output_tokens >= 1


def test_short_prompt_still_counts_one_token() -> None:
    request = CompletionRequest(model="m", messages=[Message(role="user", content="")])

    assert complete(MockProvider(), request).input_tokens == 1


def test_max_tokens_truncates_and_reports_length() -> None:
    full = complete(MockProvider(), make_request())
    capped = complete(MockProvider(), make_request(max_tokens=3))

    assert capped.finish_reason is FinishReason.LENGTH
    assert capped.output_tokens == 3
    assert capped.text == full.text[:12]
    assert capped.input_tokens == full.input_tokens


def test_no_faults_by_default() -> None:
    assert outcomes(MockProvider(seed=7), 200) == [None] * 200


def test_failure_rate_one_always_fails_without_retry() -> None:
    codes = outcomes(MockProvider(failure_rate=1.0, seed=7), 50)

    assert codes == [ErrorCode.INVALID_REQUEST] * 50
    with pytest.raises(ProviderError) as raised:
        complete(MockProvider(failure_rate=1.0), make_request())
    assert raised.value.message == "mock provider: injected failure"
    assert raised.value.status_code == 400
    assert not raised.value.retryable


def test_rate_limit_is_retryable_with_a_hint() -> None:
    with pytest.raises(ProviderError) as raised:
        complete(MockProvider(rate_limit_rate=1.0), make_request())

    assert raised.value.code is ErrorCode.RATE_LIMITED
    assert raised.value.status_code == 429
    assert raised.value.retry_after == 1.0
    assert raised.value.retryable


def test_fault_rates_are_respected_over_many_calls() -> None:
    codes = outcomes(MockProvider(failure_rate=0.3, rate_limit_rate=0.2, seed=42), 1000)

    assert 240 <= codes.count(ErrorCode.INVALID_REQUEST) <= 360
    assert 150 <= codes.count(ErrorCode.RATE_LIMITED) <= 250


def test_seed_reproduces_the_fault_sequence() -> None:
    first = outcomes(MockProvider(failure_rate=0.5, seed=3), 100)
    second = outcomes(MockProvider(failure_rate=0.5, seed=3), 100)

    assert first == second
    assert None in first and ErrorCode.INVALID_REQUEST in first


def test_faults_are_per_call_so_a_retry_can_succeed() -> None:
    provider = MockProvider(failure_rate=0.5, seed=11)

    async def same_request_repeatedly() -> list[bool]:
        succeeded: list[bool] = []
        for _ in range(40):
            try:
                await provider.complete(make_request())
                succeeded.append(True)
            except ProviderError:
                succeeded.append(False)
        return succeeded

    results = asyncio.run(same_request_repeatedly())
    assert True in results and False in results


def test_latency_is_applied() -> None:
    provider = MockProvider(latency_ms=50, seed=5)

    started = time.perf_counter()
    complete(provider, make_request())
    elapsed = time.perf_counter() - started

    assert elapsed >= 0.05 * 0.8


def test_calls_are_counted_per_model() -> None:
    model = "mock-counted-model"
    before = MockProvider.calls[model]

    complete(MockProvider(), make_request(model=model))
    with pytest.raises(ProviderError):
        complete(MockProvider(failure_rate=1.0), make_request(model=model))

    assert MockProvider.calls[model] - before == 2


@pytest.mark.parametrize(
    ("latency_ms", "failure_rate", "rate_limit_rate"),
    [(-1, 0, 0), (0, 1.5, 0), (0, 0, -0.1)],
)
def test_invalid_settings_are_refused(
    latency_ms: float, failure_rate: float, rate_limit_rate: float
) -> None:
    with pytest.raises(ValueError):
        MockProvider(latency_ms, failure_rate, rate_limit_rate)
