"""The Azure OpenAI provider against a fake Azure OpenAI resource over real HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest

from evalruns.providers.azure_openai import DEFAULT_API_VERSION, AzureOpenAIProvider
from evalruns.providers.base import (
    CompletionResult,
    ErrorCode,
    FinishReason,
)
from evalruns.providers.catalog import load_catalog
from evalruns.settings import Settings
from tests.integration.providers.calls import (
    SYSTEM_PROMPT,
    USER_PROMPT,
    check,
    check_and_complete,
    complete,
    raised,
    request_for,
)
from tests.integration.providers.families import AZURE_OPENAI
from tests.support.fake_http import ScriptedResponse, json_bytes
from tests.support.fake_openai import (
    DEFAULT_CONTENT,
    FakeAzureOpenAIServer,
    azure_error_body,
    completion_body,
)

API_KEY = AZURE_OPENAI.key
DEPLOYMENT = AZURE_OPENAI.model


def provider_for(
    server: FakeAzureOpenAIServer, api_version: str = DEFAULT_API_VERSION
) -> AzureOpenAIProvider:
    return AzureOpenAIProvider(server.base_url, API_KEY, api_version)


def test_success_posts_to_the_deployment(fake_azure_openai: FakeAzureOpenAIServer) -> None:
    result = AZURE_OPENAI.call(fake_azure_openai)

    assert result == CompletionResult(
        text=DEFAULT_CONTENT,
        input_tokens=42,
        output_tokens=17,
        provider_model="gpt-4o-mini-2024-07-18",  # the model behind the deployment
        finish_reason=FinishReason.STOP,
    )
    [sent] = fake_azure_openai.requests
    assert sent.method == "POST"
    assert sent.route == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == API_KEY
    assert "authorization" not in sent.headers
    assert sent.body == {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
    }


def test_the_configured_api_version_is_sent(fake_azure_openai: FakeAzureOpenAIServer) -> None:
    provider = provider_for(fake_azure_openai, "2025-01-01-preview")

    complete(provider, request_for(DEPLOYMENT))
    check(provider_for(fake_azure_openai, "2025-01-01-preview"))

    assert [r.query for r in fake_azure_openai.requests] == [
        {"api-version": "2025-01-01-preview"}
    ] * 2


def test_an_unsupported_api_version_is_not_found(
    fake_azure_openai: FakeAzureOpenAIServer,
) -> None:
    provider = provider_for(fake_azure_openai, "1999-01-01")

    error = raised(lambda: complete(provider, request_for(DEPLOYMENT)), API_KEY)

    assert error.code is ErrorCode.NOT_FOUND
    assert "Resource not found" in error.message


def test_an_unknown_deployment_is_not_found(fake_azure_openai: FakeAzureOpenAIServer) -> None:
    error = raised(
        lambda: AZURE_OPENAI.call(fake_azure_openai, request_for("gpt-5-nowhere")), API_KEY
    )

    assert error.code is ErrorCode.NOT_FOUND
    assert "DeploymentNotFound" in error.message


def test_a_wrong_key_is_an_authentication_error(
    fake_azure_openai: FakeAzureOpenAIServer,
) -> None:
    provider = AzureOpenAIProvider(fake_azure_openai.base_url, None)

    error = raised(lambda: complete(provider, request_for(DEPLOYMENT)))

    assert error.code is ErrorCode.AUTHENTICATION
    assert "Access denied due to invalid subscription key" in error.message


def test_a_filtered_prompt_is_a_content_filter_error(
    fake_azure_openai: FakeAzureOpenAIServer,
) -> None:
    body = azure_error_body(
        "content_filter",
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry.",
        param="prompt",
        status=400,
        innererror={
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {"violence": {"filtered": True, "severity": "high"}},
        },
    )

    error = AZURE_OPENAI.fail(fake_azure_openai, ScriptedResponse(status=400, body=body))

    assert error.code is ErrorCode.CONTENT_FILTERED
    assert not error.retryable
    assert "content management policy" in error.message
    assert "ResponsibleAIPolicyViolation" not in error.message  # nested detail is left out


def test_a_filtered_answer_is_data(fake_azure_openai: FakeAzureOpenAIServer) -> None:
    body = completion_body(content=None, finish_reason="content_filter")
    fake_azure_openai.enqueue(ScriptedResponse(body=json_bytes(body)))

    result = AZURE_OPENAI.call(fake_azure_openai)

    assert (result.text, result.finish_reason) == ("", FinishReason.CONTENT_FILTER)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "6", "retry-after-ms": "6000"}, 6),
        ({"retry-after": "6"}, 6),
        ({"x-ratelimit-reset-tokens": "12s"}, 12),
    ],
)
def test_rate_limit_carries_the_retry_hint(
    fake_azure_openai: FakeAzureOpenAIServer, headers: dict[str, str], expected: float
) -> None:
    body = azure_error_body(
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after 6 seconds.",
    )

    error = AZURE_OPENAI.fail(
        fake_azure_openai, ScriptedResponse(status=429, body=body, headers=headers)
    )

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retry_after == expected
    assert "exceeded token rate limit" in error.message


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ErrorCode.INVALID_REQUEST),
        (401, ErrorCode.AUTHENTICATION),
        (403, ErrorCode.AUTHENTICATION),
        (404, ErrorCode.NOT_FOUND),
        (408, ErrorCode.TIMEOUT),
        (429, ErrorCode.RATE_LIMITED),
        (500, ErrorCode.SERVER_ERROR),
        (503, ErrorCode.SERVER_ERROR),
    ],
)
def test_every_status_is_classified(
    fake_azure_openai: FakeAzureOpenAIServer, status: int, code: ErrorCode
) -> None:
    body = azure_error_body(str(status), f"Azure says {status}.")

    error = AZURE_OPENAI.fail(fake_azure_openai, ScriptedResponse(status=status, body=body))

    assert error.code is code
    assert f"Azure says {status}. (code={status})" in error.message


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": [{"index": 0, "finish_reason": "stop"}]},
        {"error": {"code": "500", "message": "Internal server error"}},
    ],
)
def test_wrong_shaped_answers_are_malformed(
    fake_azure_openai: FakeAzureOpenAIServer, body: object
) -> None:
    error = AZURE_OPENAI.fail(fake_azure_openai, ScriptedResponse(body=json.dumps(body).encode()))

    assert error.code is ErrorCode.MALFORMED_RESPONSE


def test_deployment_names_are_escaped_in_the_path() -> None:
    provider = AzureOpenAIProvider("https://res.openai.azure.com/", "k")

    assert provider.url_for("my/deployment") == (
        "https://res.openai.azure.com/openai/deployments/my%2Fdeployment/chat/completions"
        f"?api-version={DEFAULT_API_VERSION}"
    )
    asyncio.run(provider.aclose())


def test_registry_provider_reaches_the_configured_resource(
    fake_azure_openai: FakeAzureOpenAIServer,
) -> None:
    env = {
        "AZURE_OPENAI_API_KEY": API_KEY,
        "AZURE_OPENAI_ENDPOINT": fake_azure_openai.base_url + "/",
        "AZURE_OPENAI_API_VERSION": "2024-06-01",
    }
    model = load_catalog().resolve("azure-openai:azure-gpt-4o")

    result = check_and_complete(model, Settings(provider_env=env))

    assert result.provider_model == "gpt-4o-2024-11-20"
    assert [(r.route, r.query) for r in fake_azure_openai.requests] == [
        ("/openai/models", {"api-version": "2024-06-01"}),
        ("/openai/deployments/gpt-4o/chat/completions", {"api-version": "2024-06-01"}),
    ]
