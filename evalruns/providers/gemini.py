"""Google's Gemini API: `POST {base}/v1beta/models/{model}:generateContent`.

Gemini calls the assistant `model`, takes the system prompt as a separate `systemInstruction`,
and reports safety blocks in the body of a successful response: a prompt it refuses to answer
comes back with no candidates and a `promptFeedback.blockReason` (a CONTENT_FILTERED error, as
nothing was generated), while an answer stopped for safety is a candidate whose finish reason
says so (a result ending in CONTENT_FILTER, its text possibly empty). Errors are Google API
errors whose `status` classifies them and whose `RetryInfo` detail says when to retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from evalruns.providers.base import CompletionRequest, CompletionResult, ErrorCode, FinishReason
from evalruns.providers.http_errors import (
    classify_status,
    error_detail,
    error_object,
    parse_duration,
    retry_after_header,
)
from evalruns.providers.http_provider import HttpProvider, split_system, text_field, token_count

DEFAULT_PROVIDER_NAME = "google"
API_PREFIX = "/v1beta"
KEY_HEADER = "x-goog-api-key"
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
# Gemini answers a bad key with 400 INVALID_ARGUMENT; only the ErrorInfo reason tells.
BAD_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
# Thinking tokens are billed as output, so they count as output here.
OUTPUT_TOKEN_FIELDS = ("candidatesTokenCount", "thoughtsTokenCount")

_ROLES = {"user": "user", "assistant": "model"}
_FINISH_REASONS = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
}
_STATUSES = {
    "INVALID_ARGUMENT": ErrorCode.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorCode.INVALID_REQUEST,
    "OUT_OF_RANGE": ErrorCode.INVALID_REQUEST,
    "UNAUTHENTICATED": ErrorCode.AUTHENTICATION,
    "PERMISSION_DENIED": ErrorCode.AUTHENTICATION,
    "NOT_FOUND": ErrorCode.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorCode.RATE_LIMITED,
    "INTERNAL": ErrorCode.SERVER_ERROR,
    "UNAVAILABLE": ErrorCode.SERVER_ERROR,
    "UNKNOWN": ErrorCode.SERVER_ERROR,
    "DEADLINE_EXCEEDED": ErrorCode.TIMEOUT,
}


class GeminiProvider(HttpProvider):
    """A `Provider` for the Gemini API's `generateContent`."""

    listing_field = "models"
    default_name = DEFAULT_PROVIDER_NAME

    def url_for(self, model: str) -> str:
        """The generateContent endpoint of one model."""
        return str(self._generate_url(model))

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        response = await self._send("POST", self._generate_url(request.model), body=_body(request))
        return self._parse(response)

    def _generate_url(self, model: str) -> httpx.URL:
        return httpx.URL(
            f"{self.base_url}{API_PREFIX}/models/{quote(model, safe='')}:generateContent"
        )

    def _headers(self) -> dict[str, str]:
        return {KEY_HEADER: self._api_key} if self._api_key else {}

    def _listing_url(self) -> httpx.URL:
        return httpx.URL(f"{self.base_url}{API_PREFIX}/models", params={"pageSize": 1})

    def _parse(self, response: httpx.Response) -> CompletionResult:
        data = self._json_object(response)
        candidates = data.get("candidates")
        if not candidates:
            self._no_candidates(data, response)
        if not isinstance(candidates, list) or not isinstance(candidates[0], dict):
            self._malformed("candidates is not a list of objects", response)
        candidate = candidates[0]
        finish = text_field(candidate, "finishReason")
        content = candidate.get("content")
        if content is None and finish is None:
            self._malformed("candidates[0] has neither content nor finishReason", response)
        usage = data.get("usageMetadata")
        return CompletionResult(
            text=self._text(content, response),
            input_tokens=token_count(usage, "promptTokenCount"),
            output_tokens=token_count(usage, *OUTPUT_TOKEN_FIELDS),
            provider_model=text_field(data, "modelVersion"),
            finish_reason=_FINISH_REASONS.get(finish or "") or FinishReason.OTHER,
        )

    def _text(self, content: Any, response: httpx.Response) -> str:
        """The answer's text parts joined; a candidate stopped for safety may have none."""
        if content is None:
            return ""
        parts = content.get("parts", []) if isinstance(content, dict) else None
        if not isinstance(parts, list):
            self._malformed("candidates[0].content.parts is not a list", response)
        texts: list[str] = []
        for part in parts:
            if not isinstance(part, dict):
                self._malformed("a content part is not an object", response)
            text = part.get("text")
            if text is not None and not isinstance(text, str):
                self._malformed("a content part's text is not text", response)
            if text and not part.get("thought"):
                texts.append(text)
        return "".join(texts)

    def _no_candidates(self, data: dict[str, Any], response: httpx.Response) -> NoReturn:
        feedback = data.get("promptFeedback")
        if not isinstance(feedback, dict) or text_field(feedback, "blockReason") is None:
            self._malformed(f"no candidates ({error_detail(data) or 'no error given'})", response)
        explanation = text_field(feedback, "blockReasonMessage")
        raise self._error(
            f"prompt blocked ({feedback['blockReason']})"
            + (f": {explanation}" if explanation else ""),
            code=ErrorCode.CONTENT_FILTERED,
            status_code=response.status_code,
        )

    def _classify(self, status: int, data: Any, text: str) -> ErrorCode:
        error = error_object(data)
        if any(
            detail.get("@type") == ERROR_INFO_TYPE and detail.get("reason") in BAD_KEY_REASONS
            for detail in _details(error)
        ):
            return ErrorCode.AUTHENTICATION
        return _STATUSES.get(text_field(error, "status") or "") or classify_status(status, text)

    def _retry_after(self, response: httpx.Response, data: Any) -> float | None:
        return parse_retry_after(response.headers, data)


def parse_retry_after(
    headers: Mapping[str, str], data: Any, now: datetime | None = None
) -> float | None:
    """Seconds to wait from `Retry-After`, else the `retryDelay` (e.g. `"39s"`) of the error's
    `google.rpc.RetryInfo` detail."""
    standard = retry_after_header(headers, now)
    if standard is not None:
        return standard
    for detail in _details(error_object(data)):
        if detail.get("@type") == RETRY_INFO_TYPE:
            delay = detail.get("retryDelay")
            return parse_duration(delay) if isinstance(delay, str) else None
    return None


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [detail for detail in details if isinstance(detail, dict)]


def _body(request: CompletionRequest) -> dict[str, Any]:
    system, conversation = split_system(request.messages)
    body: dict[str, Any] = {
        "contents": [
            {"role": _ROLES[message.role], "parts": [{"text": message.content}]}
            for message in conversation
        ],
        "generationConfig": {
            "temperature": request.temperature,
            "maxOutputTokens": request.max_tokens,
        },
    }
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    return body
