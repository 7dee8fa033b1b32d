"""The part every provider over HTTP shares: one request per call, every failure classified.

A provider family subclasses `HttpProvider` and says only what is particular to its API: the
headers, the URLs, how its success body reads and how its error body is classified. Sending,
timeouts, JSON checks, retry hints and safe error messages are done here, the same way for all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NoReturn

import httpx

from evalruns.providers.base import (
    RETRYABLE_CODES,
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    Message,
    ProviderError,
)
from evalruns.providers.http_errors import (
    classify_status,
    error_detail,
    retry_after_header,
    safe_detail,
    transport_failure,
)

DEFAULT_TIMEOUT_SECONDS = 120.0


class HttpProvider(ABC):
    """A `Provider` over httpx. It owns its client unless one is passed in.

    `check()` makes the cheapest authenticated call the API has (listing models) and raises the
    same classified `ProviderError`s as `complete()`, within the same `timeout_seconds`: whoever
    builds a provider for health checks (`registry.check_provider`) decides how short that is.
    The base URL is always given: the catalog holds each provider's, so no module repeats it.
    """

    # The field of the model listing that `check()` expects to be a list.
    listing_field: ClassVar[str] = "data"
    # What errors are prefixed with, unless the caller says otherwise.
    default_name: ClassVar[str] = "provider"

    def __init__(
        self,
        api_key: str | None,
        base_url: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if not base_url:
            raise ValueError(f"{type(self).__name__} needs a base URL")
        self.base_url = base_url.rstrip("/")
        self.name = name or self.default_name
        self._api_key = api_key or None
        try:
            httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            # A configuration mistake: fail the job with a reason rather than crash the call.
            raise self._error(f"invalid base URL: {exc}", code=ErrorCode.INVALID_REQUEST) from exc
        self.timeout_seconds = timeout_seconds
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout_seconds)

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> CompletionResult: ...

    @abstractmethod
    def _headers(self) -> dict[str, str]:
        """Authentication and version headers sent with every request."""

    @abstractmethod
    def _listing_url(self) -> httpx.URL:
        """Where `check()` lists models."""

    async def check(self) -> None:
        """Raise a ProviderError unless the API answers an authenticated model listing."""
        response = await self._send("GET", self._listing_url())
        listing = self._json_object(response)
        if not isinstance(listing.get(self.listing_field), list):
            self._malformed(f"the model listing has no {self.listing_field!r} list", response)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """The response to one request, which succeeded; anything else raises a ProviderError.

        The timeout goes with each request, so a client shared by providers with different
        timeouts (the registry's, one per event loop) applies each provider's own.
        """
        headers = {"Accept": "application/json", **self._headers()}
        timeout = httpx.Timeout(self.timeout_seconds)
        try:
            response = await self._client.request(
                method, url, json=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            code, detail = transport_failure(exc, url.host, self.timeout_seconds)
            raise self._error(detail, code=code) from exc
        if not response.is_success:
            raise self._status_error(response)
        return response

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        code = self._classify(status, data, response.text)
        detail = self._error_detail(data) or response.text.strip() or "(empty body)"
        return self._error(
            f"HTTP {status} {response.reason_phrase}".rstrip() + f": {detail}",
            code=code,
            status_code=status,
            retry_after=self._retry_after(response, data) if code in RETRYABLE_CODES else None,
        )

    def _classify(self, status: int, data: Any, text: str) -> ErrorCode:
        """The code for an error response; APIs with typed error bodies refine this."""
        return classify_status(status, text)

    def _error_detail(self, data: Any) -> str | None:
        """The provider's own explanation in an error body, if it gives one."""
        return error_detail(data)

    def _retry_after(self, response: httpx.Response, data: Any) -> float | None:
        """Seconds the server asks us to wait; APIs with their own hints extend this."""
        return retry_after_header(response.headers)

    def _json_object(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            self._malformed("body is not JSON", response, cause=exc)
        if not isinstance(data, dict):
            self._malformed("body is not a JSON object", response)
        return data

    def _malformed(
        self, reason: str, response: httpx.Response, cause: Exception | None = None
    ) -> NoReturn:
        snippet = response.text.strip() or "(empty body)"
        raise self._error(
            f"malformed response from {response.url.host}: {reason}; body: {snippet}",
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
        return ProviderError(
            f"{self.name}: {safe_detail(detail, self._api_key)}",
            code=code,
            status_code=status_code,
            retry_after=retry_after,
        )


def split_system(messages: Sequence[Message]) -> tuple[list[str], list[Message]]:
    """The system prompts' texts and the rest of the conversation, in order, for the APIs that
    take the system prompt apart from the messages (Anthropic, Gemini)."""
    system = [message.content for message in messages if message.role == "system"]
    return system, [message for message in messages if message.role != "system"]


def token_count(usage: object, *fields: str) -> int:
    """The sum of the named counts in a usage object; missing or nonsense counts are zero."""
    if not isinstance(usage, dict):
        return 0
    total = 0
    for field in fields:
        value = usage.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            total += value
    return total


def text_field(data: Mapping[str, Any], field: str) -> str | None:
    """A string field of a response, or None when it is missing or not a string."""
    value = data.get(field)
    return value if isinstance(value, str) else None
