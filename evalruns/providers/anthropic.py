"""Anthropic's Messages API: `POST {base}/v1/messages`.

Anthropic takes the system prompt apart from the conversation and wants an `anthropic-version`
header on every request. Its error bodies name a type (`rate_limit_error`, `overloaded_error`,
...), which classifies a failure more exactly than the status alone; a refusal is a stop reason,
so it is data on the result like any other ending.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from evalruns.providers.base import CompletionRequest, CompletionResult, ErrorCode, FinishReason
from evalruns.providers.http_errors import (
    classify_status,
    error_detail,
    error_object,
    longest_wait,
    retry_after_header,
    seconds_until,
)
from evalruns.providers.http_provider import HttpProvider, split_system, text_field, token_count

DEFAULT_PROVIDER_NAME = "anthropic"
# The API version this module speaks; Anthropic keeps old versions working, so it is pinned.
ANTHROPIC_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"
SYSTEM_SEPARATOR = "\n\n"
# Input tokens are reported in three parts when prompt caching is involved; all are input.
INPUT_TOKEN_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
RESET_HEADERS = (
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)

_STOP_REASONS = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "refusal": FinishReason.CONTENT_FILTER,
}
_ERROR_TYPES = {
    "invalid_request_error": ErrorCode.INVALID_REQUEST,
    "request_too_large": ErrorCode.INVALID_REQUEST,
    "authentication_error": ErrorCode.AUTHENTICATION,
    "permission_error": ErrorCode.AUTHENTICATION,
    "billing_error": ErrorCode.AUTHENTICATION,
    "not_found_error": ErrorCode.NOT_FOUND,
    "rate_limit_error": ErrorCode.RATE_LIMITED,
    "api_error": ErrorCode.SERVER_ERROR,
    "overloaded_error": ErrorCode.SERVER_ERROR,
    "timeout_error": ErrorCode.TIMEOUT,
}


class AnthropicProvider(HttpProvider):
    """A `Provider` for Anthropic's Messages API (or a gateway that speaks it)."""

    default_name = DEFAULT_PROVIDER_NAME

    @property
    def url(self) -> str:
        """The Messages endpoint this provider posts to."""
        return self.base_url + MESSAGES_PATH

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        response = await self._send("POST", httpx.URL(self.url), body=_body(request))
        return self._parse(response)

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def _listing_url(self) -> httpx.URL:
        return httpx.URL(self.base_url + MODELS_PATH, params={"limit": 1})

    def _parse(self, response: httpx.Response) -> CompletionResult:
        data = self._json_object(response)
        content = data.get("content")
        if not isinstance(content, list):
            self._malformed(f"no content ({error_detail(data) or 'no error given'})", response)
        texts: list[str] = []
        for block in content:
            if not isinstance(block, dict):
                self._malformed("a content block is not an object", response)
            if block.get("type") != "text":
                continue  # thinking and tool blocks are not part of the answer
            text = block.get("text")
            if not isinstance(text, str):
                self._malformed("a text block has no text", response)
            texts.append(text)
        usage = data.get("usage")
        return CompletionResult(
            text="".join(texts),
            input_tokens=token_count(usage, *INPUT_TOKEN_FIELDS),
            output_tokens=token_count(usage, "output_tokens"),
            provider_model=text_field(data, "model"),
            finish_reason=_STOP_REASONS.get(text_field(data, "stop_reason") or "")
            or FinishReason.OTHER,
        )

    def _classify(self, status: int, data: Any, text: str) -> ErrorCode:
        kind = text_field(error_object(data), "type")
        return _ERROR_TYPES.get(kind or "") or classify_status(status, text)

    def _retry_after(self, response: httpx.Response, data: Any) -> float | None:
        return parse_retry_after(response.headers)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after`, else the latest `anthropic-ratelimit-*-reset`
    (RFC 3339 timestamps of when each limit is fully replenished)."""
    standard = retry_after_header(headers, now)
    if standard is not None:
        return standard
    return longest_wait([seconds_until(headers.get(name), now) for name in RESET_HEADERS])


def _body(request: CompletionRequest) -> dict[str, Any]:
    system, conversation = split_system(request.messages)
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "messages": [
            {"role": message.role, "content": message.content} for message in conversation
        ],
    }
    if system:
        body["system"] = SYSTEM_SEPARATOR.join(system)
    return body
