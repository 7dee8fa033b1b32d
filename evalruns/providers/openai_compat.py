"""A client for OpenAI-compatible chat completions (OpenAI, xAI, DeepSeek, Mistral, local servers).

One call, one HTTP request: every failure is classified into a `ProviderError` (with the
server's retry hint when it gives one) and the caller decides whether and when to retry.
Error messages quote the provider's own explanation, trimmed, and never the key or the request.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import httpx

from evalruns.providers.base import (
    RETRYABLE_CODES,
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    FinishReason,
    ProviderError,
)

DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_PROVIDER_NAME = "openai-compatible"
COMPLETIONS_PATH = "/chat/completions"
ERROR_DETAIL_LIMIT = 300
REDACTED = "[redacted]"
# Shorter "keys" (placeholders for local servers) are not secrets, and redacting them would
# mangle ordinary words in messages.
MIN_REDACTED_KEY_LENGTH = 4
CONTENT_FILTER_MARKERS = (
    "content_filter",
    "content filter",
    "content_policy",
    "content policy",
    "content management policy",
)
RESET_HEADERS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")

_FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class OpenAICompatibleProvider:
    """A `Provider` for any server that implements `POST {base_url}/chat/completions`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
        *,
        name: str = DEFAULT_PROVIDER_NAME,
    ) -> None:
        self._url = httpx.URL(base_url.rstrip("/") + COMPLETIONS_PATH)
        self._api_key = api_key or None
        self.timeout_seconds = timeout_seconds
        self._timeout = httpx.Timeout(timeout_seconds)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=self._timeout)
        self.name = name

    @property
    def url(self) -> str:
        """The chat completions endpoint this provider posts to."""
        return str(self._url)

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = {
            "model": request.model,
            "messages": [message.model_dump() for message in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        host = self._url.host
        try:
            response = await self._client.post(
                self._url, json=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise self._error(
                f"no response from {host} within {self.timeout_seconds:g}s",
                code=ErrorCode.TIMEOUT,
            ) from exc
        except httpx.DecodingError as exc:
            raise self._error(
                f"undecodable response from {host}: {exc}", code=ErrorCode.MALFORMED_RESPONSE
            ) from exc
        except httpx.TransportError as exc:
            raise self._error(
                f"cannot reach {host}: {type(exc).__name__}: {exc}", code=ErrorCode.NETWORK
            ) from exc
        if not response.is_success:
            raise self._status_error(response)
        return self._parse(response)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _parse(self, response: httpx.Response) -> CompletionResult:
        try:
            data = response.json()
        except ValueError as exc:
            self._malformed("body is not JSON", response, cause=exc)
        if not isinstance(data, dict):
            self._malformed("body is not a JSON object", response)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            self._malformed(f"no choices ({_error_detail(data) or 'no error given'})", response)
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            self._malformed("choices[0].message is missing", response)
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            self._malformed("choices[0].message.content is not text", response)
        finish = choice.get("finish_reason")
        model = data.get("model")
        usage = data.get("usage")
        return CompletionResult(
            text=content or "",
            input_tokens=_token_count(usage, "prompt_tokens"),
            output_tokens=_token_count(usage, "completion_tokens"),
            provider_model=model if isinstance(model, str) else None,
            finish_reason=_FINISH_REASONS.get(finish, FinishReason.OTHER)
            if isinstance(finish, str)
            else FinishReason.OTHER,
        )

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        code = classify_status(status, response.text)
        try:
            detail = _error_detail(response.json())
        except ValueError:
            detail = None
        detail = detail or response.text.strip() or "(empty body)"
        return self._error(
            f"HTTP {status} {response.reason_phrase}".rstrip() + f": {detail}",
            code=code,
            status_code=status,
            retry_after=parse_retry_after(response.headers) if code in RETRYABLE_CODES else None,
        )

    def _malformed(
        self, reason: str, response: httpx.Response, cause: Exception | None = None
    ) -> NoReturn:
        snippet = response.text.strip() or "(empty body)"
        raise self._error(
            f"malformed response from {self._url.host}: {reason}; body: {snippet}",
            code=ErrorCode.MALFORMED_RESPONSE,
            status_code=response.status_code,
        ) from cause

    def _error(
        self,
        detail: str,
        *,
        code: ErrorCode,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        """A ProviderError whose message is redacted and short enough to store and show."""
        if self._api_key and len(self._api_key) >= MIN_REDACTED_KEY_LENGTH:
            detail = detail.replace(self._api_key, REDACTED)
        if len(detail) > ERROR_DETAIL_LIMIT:
            detail = detail[: ERROR_DETAIL_LIMIT - 1] + "…"
        return ProviderError(
            f"{self.name}: {detail}",
            code=code,
            status_code=status_code,
            retry_after=retry_after,
        )


def classify_status(status: int, body: str) -> ErrorCode:
    """The error code for a non-success HTTP status (and, for a 4xx, the body's wording)."""
    if status == 429:
        return ErrorCode.RATE_LIMITED
    if status in (401, 402, 403):  # 402: the account has no credit, as DeepSeek reports it
        return ErrorCode.AUTHENTICATION
    if status == 404:
        return ErrorCode.NOT_FOUND
    if status == 408:
        return ErrorCode.TIMEOUT
    if 400 <= status < 500:
        lowered = body.lower()
        if any(marker in lowered for marker in CONTENT_FILTER_MARKERS):
            return ErrorCode.CONTENT_FILTERED
        return ErrorCode.INVALID_REQUEST
    if status >= 500:
        return ErrorCode.SERVER_ERROR
    return ErrorCode.MALFORMED_RESPONSE  # a redirect or other status we never expect


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait before retrying, from the headers OpenAI-compatible servers send.

    `headers` should be case-insensitive (httpx.Headers) or use lower-case names.
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    retry_after = headers.get("retry-after")
    if retry_after:
        seconds = _number(retry_after)
        if seconds is not None:
            return seconds
        try:
            when = parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    resets = [parse_duration(headers.get(name)) for name in RESET_HEADERS]
    known = [seconds for seconds in resets if seconds is not None]
    return max(known) if known else None


def parse_duration(text: str | None) -> float | None:
    """Seconds from a rate-limit reset such as `1s`, `250ms`, `1m30s` or a bare number."""
    if not text:
        return None
    text = text.strip()
    plain = _number(text)
    if plain is not None:
        return plain
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(value) * _DURATION_UNITS[unit] for value, unit in _DURATION_PART.findall(text))


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _token_count(usage: object, field: str) -> int:
    value = usage.get(field) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _error_detail(data: Any) -> str | None:
    """The provider's explanation from an OpenAI (`{"error": {...}}`) or flat error body."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, str):
        return error
    source: dict[str, Any] = error if isinstance(error, dict) else data
    message = source.get("message") or source.get("detail")
    if message is None:
        return None
    text = message if isinstance(message, str) else json.dumps(message)
    extras = [f"{key}={source[key]}" for key in ("type", "code") if source.get(key) is not None]
    return f"{text} ({', '.join(extras)})" if extras else text
