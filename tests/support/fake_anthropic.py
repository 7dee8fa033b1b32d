"""A fake Anthropic Messages API over real HTTP, for testing the Anthropic provider end to end.

Unscripted, it answers like the real API: `POST /v1/messages` with a message echoing the
requested model, `GET /v1/models` with a page of models, and Anthropic's own error bodies for a
missing key or version header and for unknown routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fake_http import FakeHttpServer, RecordedRequest, json_bytes

MESSAGES_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"
DEFAULT_MODEL = "claude-sonnet-4-20250514"
DEFAULT_TEXT = "Rating: 4\nA fairly strong response seems justified."
DEFAULT_INPUT_TOKENS = 51
DEFAULT_OUTPUT_TOKENS = 19
REQUEST_ID = "req_011CQfakeRequest0001"


def message_body(
    *,
    model: str = DEFAULT_MODEL,
    content: list[dict[str, Any]] | None = None,
    stop_reason: str | None = "end_turn",
    input_tokens: int = DEFAULT_INPUT_TOKENS,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    cache_read_input_tokens: int = 0,
) -> dict[str, Any]:
    """A Messages API response body; `content` defaults to one text block."""
    return {
        "id": "msg_01FakeMessage000000000001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": DEFAULT_TEXT}] if content is None else content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cache_read_input_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def error_body(type_: str, message: str) -> bytes:
    """An Anthropic error body: `{"type": "error", "error": {"type", "message"}, "request_id"}`."""
    return json_bytes(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": REQUEST_ID}
    )


class FakeAnthropicServer(FakeHttpServer):
    """`base_url` is the API root, as `ANTHROPIC_BASE_URL` is."""

    thread_name = "fake-anthropic"

    def default_answer(self, request: RecordedRequest, status: int) -> tuple[int, bytes]:
        route = (request.method, request.route)
        if route not in {("POST", MESSAGES_PATH), ("GET", MODELS_PATH)}:
            return 404, error_body("not_found_error", "Not found")
        if not request.headers.get("x-api-key"):
            return 401, error_body("authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return 400, error_body("invalid_request_error", "anthropic-version: header is required")
        if route == ("GET", MODELS_PATH):
            return status, json_bytes(_listing())
        model = request.body.get("model") if isinstance(request.body, dict) else None
        return status, json_bytes(message_body(model=str(model)))


def _listing() -> dict[str, Any]:
    model = {
        "type": "model",
        "id": DEFAULT_MODEL,
        "display_name": "Claude Sonnet 4",
        "created_at": "2025-05-22T00:00:00Z",
    }
    return {"data": [model], "has_more": True, "first_id": model["id"], "last_id": model["id"]}


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    """A running fake Anthropic API, stopped after the test."""
    with FakeAnthropicServer() as server:
        yield server
