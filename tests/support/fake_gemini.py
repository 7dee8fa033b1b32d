"""A fake Gemini API over real HTTP, for testing the Gemini provider end to end.

Unscripted, it answers like the real API: `generateContent` with a candidate and usage metadata
reporting the requested model, `GET /v1beta/models` with a page of models, and Google's own
error bodies for a missing key and unknown routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fake_http import FakeHttpServer, RecordedRequest, json_bytes

API_PREFIX = "/v1beta"
MODELS_PATH = f"{API_PREFIX}/models"
GENERATE = re.compile(rf"{API_PREFIX}/models/([^/:]+):generateContent")
DEFAULT_MODEL = "gemini-2.5-flash"
DEFAULT_TEXT = "Rating: 2\nA careful, restrained response seems most appropriate."
DEFAULT_PROMPT_TOKENS = 38
DEFAULT_CANDIDATES_TOKENS = 15
DEFAULT_THOUGHTS_TOKENS = 120
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
SAFE_RATINGS = [
    {"category": category, "probability": "NEGLIGIBLE"}
    for category in (
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    )
]


def usage_metadata(
    prompt: int = DEFAULT_PROMPT_TOKENS,
    candidates: int | None = DEFAULT_CANDIDATES_TOKENS,
    thoughts: int | None = DEFAULT_THOUGHTS_TOKENS,
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "totalTokenCount": prompt + (candidates or 0) + (thoughts or 0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if candidates is not None:
        usage["candidatesTokenCount"] = candidates
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def generate_body(
    *,
    model: str = DEFAULT_MODEL,
    parts: list[dict[str, Any]] | None = None,
    finish_reason: str | None = "STOP",
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A generateContent response; `parts=[]` leaves the candidate without content, as Gemini
    does for an answer stopped for safety."""
    candidate: dict[str, Any] = {"index": 0, "safetyRatings": SAFE_RATINGS}
    if parts is None:
        parts = [{"text": DEFAULT_TEXT}]
    if parts:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    return {
        "candidates": [candidate],
        "usageMetadata": usage_metadata() if usage is None else usage,
        "modelVersion": model,
        "responseId": "fakeResponse0001",
    }


def blocked_body(reason: str = "SAFETY") -> dict[str, Any]:
    """The answer to a prompt Gemini refuses: no candidates, a block reason."""
    return {
        "promptFeedback": {"blockReason": reason, "safetyRatings": SAFE_RATINGS},
        "usageMetadata": usage_metadata(candidates=None, thoughts=None),
        "modelVersion": DEFAULT_MODEL,
        "responseId": "fakeResponse0002",
    }


def error_body(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    """A Google API error: `{"error": {"code", "message", "status", "details"}}`."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json_bytes({"error": error})


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


class FakeGeminiServer(FakeHttpServer):
    """`base_url` is the API root, as the provider's base URL is (it adds `/v1beta`)."""

    thread_name = "fake-gemini"

    def default_answer(self, request: RecordedRequest, status: int) -> tuple[int, bytes]:
        generate = GENERATE.fullmatch(request.route)
        listing = (request.method, request.route) == ("GET", MODELS_PATH)
        if not listing and (request.method != "POST" or generate is None):
            message = f"The requested URL {request.route} was not found on this server."
            return 404, error_body(404, "NOT_FOUND", message)
        if not request.headers.get("x-goog-api-key"):
            return 403, error_body(403, "PERMISSION_DENIED", NO_KEY_MESSAGE)
        if generate is None:
            return status, json_bytes(_listing())
        return status, json_bytes(generate_body(model=generate.group(1)))


def _listing() -> dict[str, Any]:
    model = {
        "name": f"models/{DEFAULT_MODEL}",
        "version": "001",
        "displayName": "Gemini 2.5 Flash",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    return {"models": [model], "nextPageToken": "fakePageToken"}


@pytest.fixture
def fake_gemini() -> Iterator[FakeGeminiServer]:
    """A running fake Gemini API, stopped after the test."""
    with FakeGeminiServer() as server:
        yield server
