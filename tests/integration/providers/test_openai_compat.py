from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from evalruns.providers.base import (
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    FinishReason,
    Message,
    ProviderError,
)
from evalruns.providers.catalog import load_catalog
from evalruns.providers.openai_compat import OpenAICompatibleProvider
from evalruns.providers.registry import open_provider
from evalruns.settings import Settings
from tests.integration.providers.calls import (
    SHORT_TIMEOUT_SECONDS,
    check,
    complete,
    http_date_in,
    raised,
    refused_url,
)
from tests.support.fake_openai import (
    COMPLETIONS_PATH,
    DEFAULT_CONTENT,
    MODELS_PATH,
    FakeOpenAIServer,
    ScriptedResponse,
    completion_body,
    error_body,
    json_bytes,
)

API_KEY = "sk-proj-TESTKEY-5c1b7e2d9a4f"

REQUEST = CompletionRequest(
    model="gpt-4o-mini-2024-07-18",
    messages=[
        Message(role="system", content="Answer with a rating from 1 to 5."),
        Message(role="user", content="A driver sees a red light at 3am. Rate the urge to stop."),
    ],
    temperature=0.2,
    max_tokens=256,
)


def in_an_hour() -> str:
    """An HTTP date an hour ahead, made when the test runs (not when it is collected)."""
    return http_date_in(3600)


def call(
    base_url: str,
    api_key: str | None = API_KEY,
    timeout_seconds: float = 5.0,
) -> CompletionResult:
    return complete(OpenAICompatibleProvider(base_url, api_key, timeout_seconds), REQUEST)


def call_error(base_url: str, timeout_seconds: float = 5.0) -> ProviderError:
    """The ProviderError a call raises, checked for leaks of the key."""
    error = raised(lambda: call(base_url, timeout_seconds=timeout_seconds), API_KEY)
    assert "Bearer" not in str(error)
    return error


def fail_with(server: FakeOpenAIServer, response: ScriptedResponse) -> ProviderError:
    server.enqueue(response)
    return call_error(server.base_url)


def test_success_sends_the_request_and_parses_the_answer(fake_openai: FakeOpenAIServer) -> None:
    result = call(fake_openai.base_url)

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
    call(fake_openai.base_url + "/", api_key=None)

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

    assert call(fake_openai.base_url).finish_reason is expected


def test_null_content_and_missing_usage_are_tolerated(fake_openai: FakeOpenAIServer) -> None:
    body = completion_body(content=None, finish_reason="content_filter")
    del body["usage"]
    del body["model"]
    fake_openai.enqueue(ScriptedResponse(body=json_bytes(body)))

    result = call(fake_openai.base_url)

    assert (result.text, result.input_tokens, result.output_tokens) == ("", 0, 0)
    assert result.provider_model is None
    assert result.finish_reason is FinishReason.CONTENT_FILTER


def test_invalid_request(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("Invalid value for 'temperature'.", code="invalid_value")

    error = fail_with(fake_openai, ScriptedResponse(status=400, body=body))

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
    error = fail_with(fake_openai, ScriptedResponse(status=400, body=body))

    assert error.code is ErrorCode.CONTENT_FILTERED
    assert not error.retryable


def test_authentication_error_never_echoes_the_key(fake_openai: FakeOpenAIServer) -> None:
    body = error_body(f"Incorrect API key provided: {API_KEY}.", code="invalid_api_key")

    error = fail_with(fake_openai, ScriptedResponse(status=401, body=body))

    assert error.code is ErrorCode.AUTHENTICATION
    assert error.status_code == 401
    assert "Incorrect API key provided: [redacted]" in error.message


def test_not_found(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("The model `gpt-9` does not exist.", code="model_not_found")

    error = fail_with(fake_openai, ScriptedResponse(status=404, body=body))

    assert error.code is ErrorCode.NOT_FOUND
    assert "gpt-9" in error.message


def test_wrong_path_is_not_found(fake_openai: FakeOpenAIServer) -> None:
    error = call_error(fake_openai.base_url.removesuffix("/v1") + "/api")

    assert error.code is ErrorCode.NOT_FOUND


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"retry-after-ms": "1500"}, 1.5, 1.5),
        ({"Retry-After": "7"}, 7, 7),
        ({"Retry-After": in_an_hour}, 3500, 3600),
        ({"x-ratelimit-reset-requests": "1s"}, 1, 1),
        ({"x-ratelimit-reset-tokens": "250ms"}, 0.25, 0.25),
        ({"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-reset-tokens": "6s"}, 90, 90),
    ],
)
def test_rate_limit_carries_the_retry_hint(
    fake_openai: FakeOpenAIServer, headers: dict[str, Any], low: float, high: float
) -> None:
    body = error_body("Rate limit reached for gpt-4o-mini.", "requests", "rate_limit_exceeded")

    headers = {name: value() if callable(value) else value for name, value in headers.items()}
    error = fail_with(fake_openai, ScriptedResponse(status=429, body=body, headers=headers))

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retryable
    assert error.retry_after is not None
    assert low <= error.retry_after <= high
    assert "Rate limit reached" in error.message


def test_rate_limit_without_hint(fake_openai: FakeOpenAIServer) -> None:
    error = fail_with(fake_openai, ScriptedResponse(status=429, body=b""))

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retry_after is None


def test_server_error(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("The server had an error while processing your request.", "server_error")

    error = fail_with(fake_openai, ScriptedResponse(status=500, body=body))

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

    error = fail_with(fake_openai, response)

    assert error.code is ErrorCode.SERVER_ERROR
    assert error.retry_after == 30
    assert "Service Unavailable" in error.message
    assert len(error.message) < 400


def test_malformed_json_body(fake_openai: FakeOpenAIServer) -> None:
    response = ScriptedResponse(body=b"{not json", headers={"Content-Type": "application/json"})

    error = fail_with(fake_openai, response)

    assert error.code is ErrorCode.MALFORMED_RESPONSE
    assert not error.retryable
    assert "not JSON" in error.message


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
    error = fail_with(fake_openai, ScriptedResponse(body=json.dumps(body).encode()))

    assert error.code is ErrorCode.MALFORMED_RESPONSE
    assert error.status_code == 200


def test_error_message_from_a_200_error_body_is_kept(fake_openai: FakeOpenAIServer) -> None:
    body = json_bytes({"error": {"message": "upstream overloaded", "type": "server_error"}})

    error = fail_with(fake_openai, ScriptedResponse(body=body))

    assert "upstream overloaded" in error.message


def test_timeout(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.enqueue(ScriptedResponse(delay=10.0))

    error = call_error(fake_openai.base_url, timeout_seconds=SHORT_TIMEOUT_SECONDS)

    assert error.code is ErrorCode.TIMEOUT
    assert error.retryable
    assert isinstance(error.__cause__, httpx.TimeoutException)
    assert "0.2s" in error.message


def test_connection_refused_is_a_network_error() -> None:
    error = call_error(refused_url("/v1"))

    assert error.code is ErrorCode.NETWORK
    assert error.retryable
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert "127.0.0.1" in error.message


def test_long_provider_messages_are_trimmed(fake_openai: FakeOpenAIServer) -> None:
    body = error_body("This model's maximum context length is 128000 tokens. " * 40)

    error = fail_with(fake_openai, ScriptedResponse(status=400, body=body))

    assert "maximum context length" in error.message
    assert len(error.message) <= 400


def test_injected_client_is_used_and_left_open(fake_openai: FakeOpenAIServer) -> None:
    async def run() -> bool:
        async with httpx.AsyncClient() as client:
            provider = OpenAICompatibleProvider(fake_openai.base_url, API_KEY, client=client)
            await provider.complete(REQUEST)
            await provider.aclose()
            return client.is_closed

    assert asyncio.run(run()) is False
    assert len(fake_openai.requests) == 1


def test_registry_provider_reaches_a_local_server(fake_openai: FakeOpenAIServer) -> None:
    settings = Settings(provider_env={"EVALRUNS_LOCAL_OPENAI_BASE_URL": fake_openai.base_url})
    model = load_catalog().resolve("local:local-model")

    async def run() -> CompletionResult:
        async with open_provider(model, settings) as provider:
            return await provider.complete(REQUEST.model_copy(update={"model": model.version}))

    result = asyncio.run(run())

    assert result.provider_model == "local-model"
    [sent] = fake_openai.requests
    assert sent.body["model"] == "local-model"
    assert "authorization" not in sent.headers


def test_check_lists_models_with_the_key(fake_openai: FakeOpenAIServer) -> None:
    check(OpenAICompatibleProvider(fake_openai.base_url, API_KEY))

    [sent] = fake_openai.requests
    assert (sent.method, sent.path) == ("GET", MODELS_PATH)
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


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
        (429, error_body("Exceeded your quota.", "insufficient_quota"), ErrorCode.RATE_LIMITED),
        (503, error_body("Overloaded.", "server_error"), ErrorCode.SERVER_ERROR),
    ],
)
def test_check_classifies_errors(
    fake_openai: FakeOpenAIServer, status: int, body: bytes, code: ErrorCode
) -> None:
    fake_openai.enqueue(ScriptedResponse(status=status, body=body))

    error = raised(lambda: check(OpenAICompatibleProvider(fake_openai.base_url, API_KEY)), API_KEY)

    assert error.code is code
    assert error.status_code == status
