"""OpenAI-style chat completions: OpenAI, xAI, DeepSeek, Mistral and local servers by base URL.

One call, one HTTP request: every failure is classified into a `ProviderError` (with the
server's retry hint when it gives one) and the caller decides whether and when to retry.
`ChatCompletionsProvider` holds what every chat completions API shares (the body, the answer,
the error body and the rate-limit headers) so Azure OpenAI, which differs only in its URLs and
key header, reuses it.
"""

from __future__ import annotations

from abc import abstractmethod
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
    parse_duration,
    retry_after_header,
)
from evalruns.providers.http_provider import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpProvider,
    text_field,
    token_count,
)

DEFAULT_PROVIDER_NAME = "openai-compatible"
COMPLETIONS_PATH = "/chat/completions"
MODELS_PATH = "/models"
RESET_HEADERS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")

_FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}
# Error codes (or types) whose status alone misleads: OpenAI answers an account without credit
# with 429 `insufficient_quota`, which no retry fixes, like Anthropic's billing_error or
# DeepSeek's 402.
_ERROR_CODES = {
    "insufficient_quota": ErrorCode.AUTHENTICATION,
}


class ChatCompletionsProvider(HttpProvider):
    """The chat completions protocol; subclasses say where to send it and how to authenticate."""

    @abstractmethod
    def _completions_url(self, request: CompletionRequest) -> httpx.URL: ...

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        response = await self._send(
            "POST", self._completions_url(request), body=self._body(request)
        )
        return self._parse(response)

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        return {
            "model": request.model,
            "messages": [message.model_dump() for message in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }

    def _parse(self, response: httpx.Response) -> CompletionResult:
        data = self._json_object(response)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            self._malformed(f"no choices ({error_detail(data) or 'no error given'})", response)
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            self._malformed("choices[0].message is missing", response)
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            self._malformed("choices[0].message.content is not text", response)
        usage = data.get("usage")
        return CompletionResult(
            text=content or "",
            input_tokens=token_count(usage, "prompt_tokens"),
            output_tokens=token_count(usage, "completion_tokens"),
            provider_model=text_field(data, "model"),
            finish_reason=_FINISH_REASONS.get(text_field(choice, "finish_reason") or "")
            or FinishReason.OTHER,
        )

    def _classify(self, status: int, data: Any, text: str) -> ErrorCode:
        error = error_object(data)
        for field in ("code", "type"):
            code = _ERROR_CODES.get(text_field(error, field) or "")
            if code is not None:
                return code
        return classify_status(status, text)

    def _retry_after(self, response: httpx.Response, data: Any) -> float | None:
        return parse_retry_after(response.headers)


class OpenAICompatibleProvider(ChatCompletionsProvider):
    """A `Provider` for any server that implements `POST {base_url}/chat/completions`.

    The key, when there is one, goes in `Authorization: Bearer`; local servers may need none.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
        *,
        name: str = DEFAULT_PROVIDER_NAME,
    ) -> None:
        super().__init__(api_key, base_url, timeout_seconds, client, name=name)
        self._url = httpx.URL(self.base_url + COMPLETIONS_PATH)
        self._models_url = httpx.URL(self.base_url + MODELS_PATH)

    @property
    def url(self) -> str:
        """The chat completions endpoint this provider posts to."""
        return str(self._url)

    def _completions_url(self, request: CompletionRequest) -> httpx.URL:
        return self._url

    def _listing_url(self) -> httpx.URL:
        return self._models_url

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait before retrying, from the headers OpenAI-compatible servers send:
    `retry-after-ms`, then `Retry-After`, then the longer of the `x-ratelimit-reset-*` durations.

    `headers` should be case-insensitive (httpx.Headers) or use lower-case names.
    """
    standard = retry_after_header(headers, now)
    if standard is not None:
        return standard
    return longest_wait([parse_duration(headers.get(name)) for name in RESET_HEADERS])
