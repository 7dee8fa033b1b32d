"""Fake OpenAI-compatible and Azure OpenAI servers over real HTTP, for testing provider clients.

Both answer from a scripted queue (see `tests.support.fake_http`); unscripted, they answer like
healthy servers: chat completions with realistic usage, model listings for health checks, and
each API's own not-found error for anything else.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.support.fake_http import FakeHttpServer, RecordedRequest, json_bytes

__all__ = [
    "COMPLETIONS_PATH",
    "DEFAULT_CONTENT",
    "MODELS_PATH",
    "FakeAzureOpenAIServer",
    "FakeOpenAIServer",
    "azure_error_body",
    "completion_body",
    "error_body",
    "fake_azure_openai",
    "fake_openai",
]

API_PREFIX = "/v1"
COMPLETIONS_PATH = f"{API_PREFIX}/chat/completions"
MODELS_PATH = f"{API_PREFIX}/models"
DEFAULT_CONTENT = "Rating: 3\nThe considerations on each side are roughly even."
DEFAULT_PROMPT_TOKENS = 42
DEFAULT_COMPLETION_TOKENS = 17
AZURE_API_VERSIONS = frozenset({"2024-06-01", "2024-10-21", "2025-01-01-preview"})
AZURE_DEPLOYMENTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-11-20"}
AZURE_COMPLETIONS = re.compile(r"/openai/deployments/([^/]+)/chat/completions")
AZURE_MODELS_PATH = "/openai/models"
AZURE_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def completion_body(
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    content: str | None = DEFAULT_CONTENT,
    finish_reason: str | None = "stop",
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
) -> dict[str, Any]:
    """A chat.completion body shaped like OpenAI's."""
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(
    message: str, type_: str = "invalid_request_error", code: str | None = None
) -> bytes:
    """An error body shaped like OpenAI's: `{"error": {"message", "type", "param", "code"}}`."""
    return json_bytes({"error": {"message": message, "type": type_, "param": None, "code": code}})


def azure_error_body(code: str, message: str, **extra: Any) -> bytes:
    """An error body shaped like Azure OpenAI's: `{"error": {"code", "message", ...}}`."""
    return json_bytes({"error": {"code": code, "message": message, **extra}})


def model_listing(ids: list[str]) -> bytes:
    return json_bytes(
        {
            "object": "list",
            "data": [{"id": id_, "object": "model", "created": 1721172741} for id_ in ids],
        }
    )


class FakeOpenAIServer(FakeHttpServer):
    """`POST /v1/chat/completions` echoing the requested model, and `GET /v1/models`."""

    thread_name = "fake-openai"
    base_path = API_PREFIX

    def default_answer(self, request: RecordedRequest, status: int) -> tuple[int, bytes]:
        if request.method == "POST" and request.route == COMPLETIONS_PATH:
            model = request.body.get("model") if isinstance(request.body, dict) else None
            return status, json_bytes(completion_body(model=str(model)))
        if request.method == "GET" and request.route == MODELS_PATH:
            return status, model_listing(["gpt-4o-mini-2024-07-18", "gpt-4o-2024-11-20"])
        message = f"Unknown request URL: {request.method} {request.route}"
        return 404, error_body(message, code="unknown_url")


class FakeAzureOpenAIServer(FakeHttpServer):
    """An Azure OpenAI resource: deployments by name (each backed by a model version), the
    `api-version` query parameter and the `api-key` header are required, as on Azure."""

    thread_name = "fake-azure-openai"

    def __init__(self, deployments: Mapping[str, str] = AZURE_DEPLOYMENTS) -> None:
        super().__init__()
        self.deployments = dict(deployments)

    def default_answer(self, request: RecordedRequest, status: int) -> tuple[int, bytes]:
        completions = AZURE_COMPLETIONS.fullmatch(request.route)
        known = (request.method, request.route) == ("GET", AZURE_MODELS_PATH) or (
            request.method == "POST" and completions is not None
        )
        if not known or request.query.get("api-version") not in AZURE_API_VERSIONS:
            return 404, azure_error_body("404", "Resource not found")
        if not request.headers.get("api-key"):
            return 401, azure_error_body("401", AZURE_BAD_KEY)
        if completions is None:
            return status, model_listing(sorted(set(self.deployments.values())))
        model = self.deployments.get(completions.group(1))
        if model is None:
            message = (
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again."
            )
            return 404, azure_error_body("DeploymentNotFound", message)
        body = completion_body(model=model)
        filtered = {"hate": {"filtered": False, "severity": "safe"}}
        body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": filtered}]
        body["choices"][0]["content_filter_results"] = filtered
        return status, json_bytes(body)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A running fake OpenAI-compatible server, stopped after the test."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_azure_openai() -> Iterator[FakeAzureOpenAIServer]:
    """A running fake Azure OpenAI resource, stopped after the test."""
    with FakeAzureOpenAIServer() as server:
        yield server
