"""The Anthropic provider against a fake Messages API over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evalruns.providers.anthropic import ANTHROPIC_VERSION, AnthropicProvider
from evalruns.providers.base import (
    CompletionResult,
    ErrorCode,
    FinishReason,
    Message,
)
from evalruns.providers.catalog import load_catalog
from evalruns.settings import Settings
from tests.integration.providers.calls import (
    CONVERSATION,
    SYSTEM_PROMPT,
    USER_PROMPT,
    check_and_complete,
    complete,
    raised,
    request_for,
    rfc3339_in,
)
from tests.integration.providers.families import ANTHROPIC
from tests.support.fake_anthropic import (
    DEFAULT_TEXT,
    MESSAGES_PATH,
    FakeAnthropicServer,
    error_body,
    message_body,
)
from tests.support.fake_http import ScriptedResponse, json_bytes

API_KEY = ANTHROPIC.key
MODEL = ANTHROPIC.model


def test_success_sends_a_messages_request(fake_anthropic: FakeAnthropicServer) -> None:
    result = ANTHROPIC.call(fake_anthropic)

    assert result == CompletionResult(
        text=DEFAULT_TEXT,
        input_tokens=51,
        output_tokens=19,
        provider_model=MODEL,
        finish_reason=FinishReason.STOP,
    )
    [sent] = fake_anthropic.requests
    assert (sent.method, sent.path) == ("POST", MESSAGES_PATH)
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": MODEL,
        "max_tokens": 256,
        "temperature": 0.2,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": USER_PROMPT}],
    }


def test_system_messages_are_joined_and_turns_kept(fake_anthropic: FakeAnthropicServer) -> None:
    request = request_for(MODEL, *CONVERSATION)

    ANTHROPIC.call(fake_anthropic, request)

    [sent] = fake_anthropic.requests
    assert sent.body["system"] == "Be brief.\n\nUse digits."
    assert sent.body["messages"] == [
        {"role": "user", "content": "Rate 1."},
        {"role": "assistant", "content": "Rating: 1"},
        {"role": "user", "content": "Rate 2."},
    ]


def test_no_system_prompt_sends_no_system_field(fake_anthropic: FakeAnthropicServer) -> None:
    ANTHROPIC.call(fake_anthropic, request_for(MODEL, Message(role="user", content="Hi")))

    assert "system" not in fake_anthropic.requests[0].body


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("tool_use", FinishReason.OTHER),
        ("pause_turn", FinishReason.OTHER),
        (None, FinishReason.OTHER),
    ],
)
def test_stop_reasons_are_data(
    fake_anthropic: FakeAnthropicServer, stop_reason: str | None, expected: FinishReason
) -> None:
    result = ANTHROPIC.answer(fake_anthropic, message_body(stop_reason=stop_reason))

    assert result.finish_reason is expected


def test_a_refusal_with_no_text_is_a_result(fake_anthropic: FakeAnthropicServer) -> None:
    result = ANTHROPIC.answer(fake_anthropic, message_body(content=[], stop_reason="refusal"))

    assert (result.text, result.finish_reason) == ("", FinishReason.CONTENT_FILTER)


def test_only_text_blocks_make_the_answer(fake_anthropic: FakeAnthropicServer) -> None:
    content = [
        {"type": "thinking", "thinking": "Let me weigh this.", "signature": "sig"},
        {"type": "text", "text": "Rating: 2\n"},
        {"type": "text", "text": "Restraint is best."},
    ]

    result = ANTHROPIC.answer(fake_anthropic, message_body(content=content))

    assert result.text == "Rating: 2\nRestraint is best."


def test_cached_input_tokens_count_as_input(fake_anthropic: FakeAnthropicServer) -> None:
    result = ANTHROPIC.answer(
        fake_anthropic, message_body(input_tokens=10, cache_read_input_tokens=1000)
    )

    assert (result.input_tokens, result.output_tokens) == (1010, 19)


def test_missing_usage_and_model_are_tolerated(fake_anthropic: FakeAnthropicServer) -> None:
    body = message_body()
    del body["usage"], body["model"]

    result = ANTHROPIC.answer(fake_anthropic, body)

    assert (result.input_tokens, result.output_tokens, result.provider_model) == (0, 0, None)


@pytest.mark.parametrize(
    ("status", "type_", "code"),
    [
        (400, "invalid_request_error", ErrorCode.INVALID_REQUEST),
        (401, "authentication_error", ErrorCode.AUTHENTICATION),
        (402, "billing_error", ErrorCode.AUTHENTICATION),
        (403, "permission_error", ErrorCode.AUTHENTICATION),
        (404, "not_found_error", ErrorCode.NOT_FOUND),
        (413, "request_too_large", ErrorCode.INVALID_REQUEST),
        (429, "rate_limit_error", ErrorCode.RATE_LIMITED),
        (500, "api_error", ErrorCode.SERVER_ERROR),
        (504, "timeout_error", ErrorCode.TIMEOUT),
        (529, "overloaded_error", ErrorCode.SERVER_ERROR),
        (418, "teapot_error", ErrorCode.INVALID_REQUEST),  # unknown type: the status decides
        (503, "some_new_error", ErrorCode.SERVER_ERROR),
    ],
)
def test_every_error_type_is_classified(
    fake_anthropic: FakeAnthropicServer, status: int, type_: str, code: ErrorCode
) -> None:
    body = error_body(type_, f"Anthropic says {type_}.")

    error = ANTHROPIC.fail(fake_anthropic, ScriptedResponse(status=status, body=body))

    assert error.code is code
    assert error.status_code == status
    assert f"Anthropic says {type_}. (type={type_})" in error.message
    assert error.message.startswith(f"anthropic: HTTP {status}")


def test_overloaded_is_retryable_without_a_hint(fake_anthropic: FakeAnthropicServer) -> None:
    body = error_body("overloaded_error", "Overloaded")

    error = ANTHROPIC.fail(fake_anthropic, ScriptedResponse(status=529, body=body))

    assert error.retryable
    assert error.retry_after is None


def test_authentication_error_never_echoes_the_key(fake_anthropic: FakeAnthropicServer) -> None:
    body = error_body("authentication_error", f"invalid x-api-key: {API_KEY}")

    error = ANTHROPIC.fail(fake_anthropic, ScriptedResponse(status=401, body=body))

    assert error.code is ErrorCode.AUTHENTICATION
    assert "invalid x-api-key: [redacted]" in error.message


def test_a_missing_key_is_an_authentication_error(fake_anthropic: FakeAnthropicServer) -> None:
    provider = AnthropicProvider(None, fake_anthropic.base_url)

    error = raised(lambda: complete(provider, request_for(MODEL)))

    assert error.code is ErrorCode.AUTHENTICATION
    assert "x-api-key header is required" in error.message
    assert "x-api-key" not in fake_anthropic.requests[0].headers


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"retry-after": "12"}, 12, 12),
        # Parameters are made when tests are collected: allow for the time until this one runs.
        ({"anthropic-ratelimit-requests-reset": rfc3339_in(3600)}, 3000, 3600),
        (
            {
                "anthropic-ratelimit-requests-reset": rfc3339_in(60),
                "anthropic-ratelimit-tokens-reset": rfc3339_in(3600),
                "anthropic-ratelimit-input-tokens-reset": rfc3339_in(1200),
                "anthropic-ratelimit-output-tokens-reset": rfc3339_in(1),
            },
            3000,
            3600,
        ),
        (
            {"retry-after": "3", "anthropic-ratelimit-tokens-reset": rfc3339_in(3600)},
            3,
            3,
        ),
        ({"anthropic-ratelimit-tokens-reset": "2000-01-01T00:00:00Z"}, 0, 0),
    ],
)
def test_rate_limit_carries_the_retry_hint(
    fake_anthropic: FakeAnthropicServer, headers: dict[str, str], low: float, high: float
) -> None:
    body = error_body("rate_limit_error", "Number of request tokens has exceeded your limit.")

    error = ANTHROPIC.fail(fake_anthropic, ScriptedResponse(status=429, body=body, headers=headers))

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retry_after is not None
    assert low <= error.retry_after <= high


@pytest.mark.parametrize(
    "body",
    [
        {"type": "message", "role": "assistant"},
        {"type": "message", "content": "Rating: 3"},
        {"type": "message", "content": ["Rating: 3"]},
        {"type": "message", "content": [{"type": "text"}]},
        {"type": "message", "content": [{"type": "text", "text": 3}]},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ],
)
def test_wrong_shaped_messages_are_malformed(
    fake_anthropic: FakeAnthropicServer, body: dict[str, Any]
) -> None:
    error = ANTHROPIC.fail(fake_anthropic, ScriptedResponse(body=json.dumps(body).encode()))

    assert error.code is ErrorCode.MALFORMED_RESPONSE
    assert error.status_code == 200


def test_an_error_in_a_200_body_is_quoted(fake_anthropic: FakeAnthropicServer) -> None:
    body = json_bytes({"type": "error", "error": {"type": "api_error", "message": "Internal"}})

    error = ANTHROPIC.fail(fake_anthropic, ScriptedResponse(body=body))

    assert "Internal (type=api_error)" in error.message


def test_registry_provider_reaches_the_configured_base_url(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake_anthropic.base_url}
    model = load_catalog().resolve("anthropic:claude-sonnet-4")

    result = check_and_complete(model, Settings(provider_env=env))

    assert result.provider_model == "claude-sonnet-4-20250514"
    assert [r.route for r in fake_anthropic.requests] == ["/v1/models", MESSAGES_PATH]
