"""The OpenAI-compatible provider against a fake OpenAI API over real HTTP: what is particular
to chat completions (what the family-wide cases in test_all_families do not cover)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from evalruns.providers.base import CompletionResult, ErrorCode, FinishReason
from evalruns.providers.catalog import load_catalog
from evalruns.providers.http_provider import HttpProvider
from evalruns.providers.openai_compat import OpenAICompatibleProvider
from evalruns.providers.registry import open_provider
from evalruns.settings import Settings
from tests.integration.providers.calls import check, complete, raised, request_for
from tests.integration.providers.families import OPENAI
from tests.support.fake_http import ScriptedResponse, json_bytes
from tests.support.fake_openai import (
    COMPLETIONS_PATH,
    DEFAULT_CONTENT,
    MODELS_PATH,
    FakeOpenAIServer,
    completion_body,
    error_body,
)

API_KEY = OPENAI.key
# OpenAI's answer to a key whose account has no credit left, as the API sends it.
INSUFFICIENT_QUOTA = error_body(
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota",
    "insufficient_quota",
)


def test_success_sends_the_request_and_parses_the_answer(fake_openai: FakeOpenAIServer) -> None:
    result = OPENAI.call(fake_openai)

    assert result == CompletionResult(
        text=DEFAULT_CONTENT,
        input_tokens=42,
        output_tokens=17,
        provider_model="gpt-4o-mini-2024-07-18",
        finish_reason=FinishReason.STOP,
    )
    [sent] = fake_openai.requests
    assert sent.method == "POST"
    assert sent.path == COMPLETIONS_PATH
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "model": "gpt-4o-mini-2024-07-18",
        "messages": [
            {"role": "system", "content": "Answer with a rating from 1 to 5."},
            {
                "role": "user",
                "content": "A driver sees a red light at 3am. Rate the urge to stop.",
            },
        ],
        "temperature": 0.2,
        "max_tokens": 256,
    }


def test_no_key_sends_no_authorization(fake_openai: FakeOpenAIServer) -> None:
    complete(OpenAICompatibleProvider(fake_openai.base_url + "/", None), request_for(OPENAI.model))

    [sent] = fake_openai.requests
    assert "authorization" not in sent.headers
    assert sent.path == COMPLETIONS_PATH


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("content_filter", FinishReason.CONTENT_FILTER),
        ("tool_calls", FinishReason.OTHER),
        (None, FinishReason.OTHER),
    ],
)
def test_finish_reasons_are_data(
    fake_openai: FakeOpenAIServer, finish_reason: str | None, expected: FinishReason
) -> None:
    fake_openai.enqueue(
        ScriptedResponse(body=json_bytes(completion_body(finish_reason=finish_reason)))
    )

    assert OPENAI.call(fake_openai).finish_reason is expected


def test_null_content_and_missing_usage_are_tolerated(fake_openai: FakeOpenAIServer) -> None:
    body = completion_body(content=None, finish_reason="content_filter")
    del body["usage"]
    del body["model"]
    result = OPENAI.answer(fake_openai, body)

    assert (result.text, result.input_tokens, result.output_tokens) == ("", 0, 0)
    assert result.provider_model is None
    assert result.finish_reason is FinishReason.CONTENT_FILTER


def test_invalid_request(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("Invalid value for 'temperature'.", code="invalid_value")

    error = OPENAI.fail(fake_openai, ScriptedResponse(status=400, body=body))

    assert error.code is ErrorCode.INVALID_REQUEST
    assert error.status_code == 400
    assert not error.retryable
    assert error.retry_after is None
    assert "Invalid value for 'temperature'." in error.message
    assert "invalid_request_error" in error.message and "invalid_value" in error.message
    assert "A driver sees a red light" not in error.message


@pytest.mark.parametrize(
    "body",
    [
        error_body("The response was filtered.", code="content_filter"),
        error_body("Your request was rejected by our safety system.", "content_policy_violation"),
    ],
)
def test_content_filter(fake_openai: FakeOpenAIServer, body: bytes) -> None:
    error = OPENAI.fail(fake_openai, ScriptedResponse(status=400, body=body))

    assert error.code is ErrorCode.CONTENT_FILTERED
    assert not error.retryable


def test_authentication_error_never_echoes_the_key(fake_openai: FakeOpenAIServer) -> None:
    body = error_body(f"Incorrect API key provided: {API_KEY}.", code="invalid_api_key")

    error = OPENAI.fail(fake_openai, ScriptedResponse(status=401, body=body))

    assert error.code is ErrorCode.AUTHENTICATION
    assert error.status_code == 401
    assert "Incorrect API key provided: [redacted]" in error.message


def test_not_found(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("The model `gpt-9` does not exist.", code="model_not_found")

    error = OPENAI.fail(fake_openai, ScriptedResponse(status=404, body=body))

    assert error.code is ErrorCode.NOT_FOUND
    assert "gpt-9" in error.message


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"retry-after-ms": "1500"}, 1.5, 1.5),
        ({"x-ratelimit-reset-requests": "1s"}, 1, 1),
        ({"x-ratelimit-reset-tokens": "250ms"}, 0.25, 0.25),
        ({"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-reset-tokens": "6s"}, 90, 90),
    ],
)
def test_rate_limit_carries_the_retry_hint(
    fake_openai: FakeOpenAIServer, headers: dict[str, str], low: float, high: float
) -> None:
    body = error_body("Rate limit reached for gpt-4o-mini.", "requests", "rate_limit_exceeded")

    error = OPENAI.fail(fake_openai, ScriptedResponse(status=429, body=body, headers=headers))

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retryable
    assert error.retry_after is not None
    assert low <= error.retry_after <= high
    assert "Rate limit reached" in error.message


def test_an_account_without_credit_is_not_retried(fake_openai: FakeOpenAIServer) -> None:
    response = ScriptedResponse(status=429, body=INSUFFICIENT_QUOTA, headers={"Retry-After": "20"})

    error = OPENAI.fail(fake_openai, response)

    assert error.code is ErrorCode.AUTHENTICATION
    assert not error.retryable
    assert error.status_code == 429
    assert error.retry_after is None
    assert "You exceeded your current quota" in error.message
    assert "type=insufficient_quota" in error.message


def test_rate_limit_without_hint(fake_openai: FakeOpenAIServer) -> None:
    error = OPENAI.fail(fake_openai, ScriptedResponse(status=429, body=b""))

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retry_after is None


def test_server_error(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("The server had an error while processing your request.", "server_error")

    error = OPENAI.fail(fake_openai, ScriptedResponse(status=500, body=body))

    assert error.code is ErrorCode.SERVER_ERROR
    assert error.status_code == 500
    assert error.retryable
    assert error.retry_after is None
    assert "server had an error" in error.message


def test_unavailable_with_retry_after(fake_openai: FakeOpenAIServer) -> None:
    response = ScriptedResponse(
        status=503,
        body=b"<html><body>" + b"Service Unavailable " * 200 + b"</body></html>",
        headers={"Content-Type": "text/html", "Retry-After": "30"},
    )

    error = OPENAI.fail(fake_openai, response)

    assert error.code is ErrorCode.SERVER_ERROR
    assert error.retry_after == 30
    assert "Service Unavailable" in error.message
    assert len(error.message) < 400


@pytest.mark.parametrize(
    "body",
    [
        [1, 2, 3],
        {"choices": []},
        {"object": "chat.completion"},
        {"choices": [{"index": 0}]},
        {"choices": [{"message": {"role": "assistant", "content": ["part"]}}]},
        {"error": {"message": "upstream overloaded", "type": "server_error"}},
    ],
)
def test_wrong_shaped_json(fake_openai: FakeOpenAIServer, body: object) -> None:
    error = OPENAI.fail(fake_openai, ScriptedResponse(body=json.dumps(body).encode()))

    assert error.code is ErrorCode.MALFORMED_RESPONSE
    assert error.status_code == 200


def test_error_message_from_a_200_error_body_is_kept(fake_openai: FakeOpenAIServer) -> None:
    body = json_bytes({"error": {"message": "upstream overloaded", "type": "server_error"}})

    error = OPENAI.fail(fake_openai, ScriptedResponse(body=body))

    assert "upstream overloaded" in error.message


def test_long_provider_messages_are_trimmed(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("This model's maximum context length is 128000 tokens. " * 40)

    error = OPENAI.fail(fake_openai, ScriptedResponse(status=400, body=body))

    assert "maximum context length" in error.message
    assert len(error.message) <= 400


def test_registry_provider_reaches_a_local_server(fake_openai: FakeOpenAIServer) -> None:
    settings = Settings(provider_env={"EVALRUNS_LOCAL_OPENAI_BASE_URL": fake_openai.base_url})
    model = load_catalog().resolve("local:local-model")

    async def run() -> CompletionResult:
        async with open_provider(model, settings) as provider:
            return await provider.complete(request_for(model.version))

    result = asyncio.run(run())

    assert result.provider_model == "local-model"
    [sent] = fake_openai.requests
    assert sent.body["model"] == "local-model"
    assert "authorization" not in sent.headers


def test_registry_providers_on_one_loop_share_a_client_closed_with_the_loop(
    fake_openai: FakeOpenAIServer,
) -> None:
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_openai.base_url}
    model = load_catalog().resolve("gpt-4o-mini")

    async def run() -> list[httpx.AsyncClient]:
        clients = []
        for _ in range(2):
            async with open_provider(model, Settings(provider_env=env)) as provider:
                assert isinstance(provider, HttpProvider)
                await provider.complete(request_for(model.version))
                clients.append(provider._client)
        return clients

    first, second = asyncio.run(run())

    assert first is second
    assert first.is_closed
    assert [sent.headers["authorization"] for sent in fake_openai.requests] == [
        f"Bearer {API_KEY}"
    ] * 2


def test_check_of_a_local_server_without_a_key(fake_openai: FakeOpenAIServer) -> None:
    settings = Settings(provider_env={"EVALRUNS_LOCAL_OPENAI_BASE_URL": fake_openai.base_url})
    model = load_catalog().resolve("local-model")

    async def run() -> None:
        async with open_provider(model, settings) as provider:
            await provider.check()

    asyncio.run(run())

    [sent] = fake_openai.requests
    assert sent.path == MODELS_PATH
    assert "authorization" not in sent.headers


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (401, error_body("Incorrect API key.", code="invalid_api_key"), ErrorCode.AUTHENTICATION),
        (403, error_body("No access.", code="unsupported_country"), ErrorCode.AUTHENTICATION),
        (429, error_body("Exceeded your quota.", "insufficient_quota"), ErrorCode.AUTHENTICATION),
        (429, INSUFFICIENT_QUOTA, ErrorCode.AUTHENTICATION),
        (
            429,
            error_body("Rate limit reached.", "requests", "rate_limit_exceeded"),
            ErrorCode.RATE_LIMITED,
        ),
        (503, error_body("Overloaded.", "server_error"), ErrorCode.SERVER_ERROR),
    ],
)
def test_check_classifies_errors(
    fake_openai: FakeOpenAIServer, status: int, body: bytes, code: ErrorCode
) -> None:
    fake_openai.enqueue(ScriptedResponse(status=status, body=body))

    error = raised(lambda: check(OPENAI.provider(fake_openai.base_url)), *OPENAI.secrets)

    assert error.code is code
    assert error.status_code == status
