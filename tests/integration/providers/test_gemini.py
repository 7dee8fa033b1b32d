"""The Gemini provider against a fake Gemini API over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from evalruns.providers.base import (
    CompletionResult,
    ErrorCode,
    FinishReason,
    Message,
)
from evalruns.providers.catalog import load_catalog
from evalruns.providers.gemini import GeminiProvider
from evalruns.providers.registry import check_provider
from evalruns.settings import Settings
from tests.integration.providers.calls import (
    CONVERSATION,
    SYSTEM_PROMPT,
    USER_PROMPT,
    check_and_complete,
    complete,
    raised,
    request_for,
)
from tests.integration.providers.families import GEMINI
from tests.support.fake_gemini import (
    DEFAULT_TEXT,
    FakeGeminiServer,
    blocked_body,
    error_body,
    error_info,
    generate_body,
    retry_info,
    usage_metadata,
)
from tests.support.fake_http import ScriptedResponse, json_bytes

API_KEY = GEMINI.key
MODEL = GEMINI.model
GENERATE_PATH = f"/v1beta/models/{MODEL}:generateContent"


def test_success_sends_a_generate_content_request(fake_gemini: FakeGeminiServer) -> None:
    result = GEMINI.call(fake_gemini)

    assert result == CompletionResult(
        text=DEFAULT_TEXT,
        input_tokens=38,
        output_tokens=15 + 120,  # thinking tokens are billed as output
        provider_model=MODEL,
        finish_reason=FinishReason.STOP,
    )
    [sent] = fake_gemini.requests
    assert (sent.method, sent.path) == ("POST", GENERATE_PATH)
    assert sent.query == {}  # the key goes in a header, never in the URL
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": USER_PROMPT}]}],
        "systemInstruction": {"parts": [{"text": SYSTEM_PROMPT}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256},
    }


def test_roles_and_system_instruction(fake_gemini: FakeGeminiServer) -> None:
    request = request_for(MODEL, *CONVERSATION)

    GEMINI.call(fake_gemini, request)

    [sent] = fake_gemini.requests
    assert sent.body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Use digits."}]
    }
    assert sent.body["contents"] == [
        {"role": "user", "parts": [{"text": "Rate 1."}]},
        {"role": "model", "parts": [{"text": "Rating: 1"}]},
        {"role": "user", "parts": [{"text": "Rate 2."}]},
    ]


def test_no_system_prompt_sends_no_instruction(fake_gemini: FakeGeminiServer) -> None:
    GEMINI.call(fake_gemini, request_for(MODEL, Message(role="user", content="Hi")))

    assert "systemInstruction" not in fake_gemini.requests[0].body


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [
        ("STOP", FinishReason.STOP),
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("BLOCKLIST", FinishReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
        ("SPII", FinishReason.CONTENT_FILTER),
        ("LANGUAGE", FinishReason.OTHER),
        ("MALFORMED_FUNCTION_CALL", FinishReason.OTHER),
        ("OTHER", FinishReason.OTHER),
        (None, FinishReason.OTHER),
    ],
)
def test_finish_reasons_are_data(
    fake_gemini: FakeGeminiServer, finish_reason: str | None, expected: FinishReason
) -> None:
    result = GEMINI.answer(fake_gemini, generate_body(finish_reason=finish_reason))

    assert result.finish_reason is expected


def test_an_answer_stopped_for_safety_is_a_result(fake_gemini: FakeGeminiServer) -> None:
    body = generate_body(parts=[], finish_reason="SAFETY", usage=usage_metadata(thoughts=None))

    result = GEMINI.answer(fake_gemini, body)

    assert result.text == ""
    assert result.finish_reason is FinishReason.CONTENT_FILTER
    assert (result.input_tokens, result.output_tokens) == (38, 15)


def test_thinking_that_uses_every_token_leaves_no_parts(fake_gemini: FakeGeminiServer) -> None:
    body = generate_body(finish_reason="MAX_TOKENS")
    body["candidates"][0]["content"] = {"role": "model"}

    result = GEMINI.answer(fake_gemini, body)

    assert (result.text, result.finish_reason) == ("", FinishReason.LENGTH)


def test_thought_parts_are_not_the_answer(fake_gemini: FakeGeminiServer) -> None:
    parts: list[dict[str, Any]] = [
        {"text": "Weighing it up...", "thought": True},
        {"text": "Rating: 5\n"},
        {"text": "Clearly warranted."},
    ]

    result = GEMINI.answer(fake_gemini, generate_body(parts=parts))

    assert result.text == "Rating: 5\nClearly warranted."


def test_missing_counts_and_model_version_are_tolerated(fake_gemini: FakeGeminiServer) -> None:
    body = generate_body(usage={"promptTokenCount": 9})
    del body["modelVersion"]

    result = GEMINI.answer(fake_gemini, body)

    assert (result.input_tokens, result.output_tokens, result.provider_model) == (9, 0, None)


@pytest.mark.parametrize("reason", ["SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "OTHER"])
def test_a_blocked_prompt_is_a_content_filter_error(
    fake_gemini: FakeGeminiServer, reason: str
) -> None:
    error = GEMINI.fail(fake_gemini, ScriptedResponse(body=json_bytes(blocked_body(reason))))

    assert error.code is ErrorCode.CONTENT_FILTERED
    assert not error.retryable
    assert error.status_code == 200
    assert f"prompt blocked ({reason})" in error.message


def test_a_block_reason_message_is_quoted(fake_gemini: FakeGeminiServer) -> None:
    body = blocked_body("PROHIBITED_CONTENT")
    body["promptFeedback"]["blockReasonMessage"] = "The prompt may contain prohibited content."
    body["candidates"] = []

    error = GEMINI.fail(fake_gemini, ScriptedResponse(body=json_bytes(body)))

    assert error.code is ErrorCode.CONTENT_FILTERED
    assert "prohibited content" in error.message


@pytest.mark.parametrize(
    ("status", "grpc_status", "message", "code"),
    [
        (400, "INVALID_ARGUMENT", "contents is not specified", ErrorCode.INVALID_REQUEST),
        (400, "FAILED_PRECONDITION", "User location is not supported.", ErrorCode.INVALID_REQUEST),
        (401, "UNAUTHENTICATED", "Invalid credentials.", ErrorCode.AUTHENTICATION),
        (403, "PERMISSION_DENIED", "The caller does not have permission", ErrorCode.AUTHENTICATION),
        (404, "NOT_FOUND", "models/gemini-9 is not found", ErrorCode.NOT_FOUND),
        (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", ErrorCode.RATE_LIMITED),
        (500, "INTERNAL", "An internal error has occurred.", ErrorCode.SERVER_ERROR),
        (503, "UNAVAILABLE", "The model is overloaded.", ErrorCode.SERVER_ERROR),
        (504, "DEADLINE_EXCEEDED", "Deadline expired.", ErrorCode.TIMEOUT),
        (502, "SOMETHING_NEW", "Bad gateway.", ErrorCode.SERVER_ERROR),
    ],
)
def test_every_error_status_is_classified(
    fake_gemini: FakeGeminiServer, status: int, grpc_status: str, message: str, code: ErrorCode
) -> None:
    body = error_body(status, grpc_status, message)

    error = GEMINI.fail(fake_gemini, ScriptedResponse(status=status, body=body))

    assert error.code is code
    assert error.status_code == status
    assert f"{message} (code={status}, status={grpc_status})" in error.message
    assert error.message.startswith(f"google: HTTP {status}")


def test_an_invalid_key_is_an_authentication_error(fake_gemini: FakeGeminiServer) -> None:
    body = error_body(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [error_info("API_KEY_INVALID")],
    )

    error = GEMINI.fail(fake_gemini, ScriptedResponse(status=400, body=body))

    assert error.code is ErrorCode.AUTHENTICATION
    assert not error.retryable


def test_a_missing_key_is_an_authentication_error(fake_gemini: FakeGeminiServer) -> None:
    provider = GeminiProvider(None, fake_gemini.base_url)

    error = raised(lambda: complete(provider, request_for(MODEL)))

    assert error.code is ErrorCode.AUTHENTICATION
    assert error.status_code == 403
    assert "x-goog-api-key" not in fake_gemini.requests[0].headers


def test_a_key_quoted_by_the_server_is_redacted(fake_gemini: FakeGeminiServer) -> None:
    body = error_body(400, "INVALID_ARGUMENT", f"API key {API_KEY} not valid.")

    error = GEMINI.fail(fake_gemini, ScriptedResponse(status=400, body=body))

    assert "API key [redacted] not valid." in error.message


QUOTA_FAILURE = {
    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
    "violations": [
        {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaValue": "10",
        }
    ],
}
HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {"description": "Learn more", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}
    ],
}


@pytest.mark.parametrize(
    ("details", "headers", "expected"),
    [
        ([QUOTA_FAILURE, HELP, retry_info("39s")], {}, 39),
        ([retry_info("0.500s")], {}, 0.5),
        ([retry_info("1m")], {}, 60),
        ([retry_info("39s")], {"Retry-After": "5"}, 5),
        ([QUOTA_FAILURE, HELP], {}, None),
        ([retry_info("soon")], {}, None),
    ],
)
def test_rate_limit_carries_the_retry_info(
    fake_gemini: FakeGeminiServer,
    details: list[dict[str, Any]],
    headers: dict[str, str],
    expected: float | None,
) -> None:
    body = error_body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", details)

    error = GEMINI.fail(fake_gemini, ScriptedResponse(status=429, body=body, headers=headers))

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retryable
    assert error.retry_after == expected


@pytest.mark.parametrize(
    "body",
    [
        {"candidates": "none"},
        {"candidates": [1]},
        {"candidates": [{"index": 0}]},
        {"candidates": [{"content": {"parts": "Rating: 3"}, "finishReason": "STOP"}]},
        {"candidates": [{"content": {"parts": ["Rating: 3"]}, "finishReason": "STOP"}]},
        {"candidates": [{"content": {"parts": [{"text": 3}]}, "finishReason": "STOP"}]},
        {"candidates": [{"content": "Rating: 3", "finishReason": "STOP"}]},
        {"promptFeedback": {"safetyRatings": []}},
        {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}},
    ],
)
def test_wrong_shaped_answers_are_malformed(
    fake_gemini: FakeGeminiServer, body: dict[str, Any]
) -> None:
    error = GEMINI.fail(fake_gemini, ScriptedResponse(body=json.dumps(body).encode()))

    assert error.code is ErrorCode.MALFORMED_RESPONSE
    assert error.status_code == 200


def test_registry_provider_reaches_the_configured_base_url(fake_gemini: FakeGeminiServer) -> None:
    env = {"GEMINI_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": fake_gemini.base_url}
    model = load_catalog().resolve("google:gemini-2.5-pro")

    result = check_and_complete(model, Settings(provider_env=env))

    assert result.provider_model == "gemini-2.5-pro"
    assert [r.route for r in fake_gemini.requests] == [
        "/v1beta/models",
        "/v1beta/models/gemini-2.5-pro:generateContent",
    ]


def test_check_provider_reports_the_failure(fake_gemini: FakeGeminiServer) -> None:
    env = {"GEMINI_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": fake_gemini.base_url}
    body = error_body(503, "UNAVAILABLE", "The service is currently unavailable.")
    fake_gemini.enqueue(ScriptedResponse(status=503, body=body))

    error = raised(
        lambda: asyncio.run(check_provider("google", Settings(provider_env=env))), API_KEY
    )

    assert error.code is ErrorCode.SERVER_ERROR
    assert "currently unavailable" in error.message
    asyncio.run(check_provider("google", Settings(provider_env=env)))  # healthy again
    assert [r.route for r in fake_gemini.requests] == ["/v1beta/models"] * 2
