"""The provider interface: one async call, errors classified into a retry decision.

Providers never retry or sleep themselves; the scheduler (`evalruns.domain.scheduler`) decides
when a call is tried again, and lanes wait on durable timers, so an activity never sits idle
waiting out a rate limit.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from evalruns.domain.scheduler import Retry


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class CompletionRequest(BaseModel):
    """What one provider call needs; `model` is the provider's own name for the version."""

    model_config = ConfigDict(frozen=True)

    model: str
    messages: list[Message]
    temperature: float = 0.7
    max_tokens: int = 1024
    correlation_id: str | None = Field(
        default=None, description="our id of the call (run and job), for logs; never sent"
    )


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    OTHER = "other"


class CompletionResult(BaseModel):
    """A provider's answer. Length and content-filter endings are data, not errors."""

    text: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    provider_model: str | None = None
    finish_reason: FinishReason = FinishReason.STOP


class ErrorCode(StrEnum):
    RATE_LIMITED = "RATE_LIMITED"
    AUTHENTICATION = "AUTHENTICATION"
    NOT_FOUND = "NOT_FOUND"
    INVALID_REQUEST = "INVALID_REQUEST"
    CONTENT_FILTERED = "CONTENT_FILTERED"
    SERVER_ERROR = "SERVER_ERROR"
    TIMEOUT = "TIMEOUT"
    NETWORK = "NETWORK"
    MALFORMED_RESPONSE = "MALFORMED_RESPONSE"


RETRYABLE_CODES = frozenset(
    {
        ErrorCode.RATE_LIMITED,
        ErrorCode.SERVER_ERROR,
        ErrorCode.TIMEOUT,
        ErrorCode.NETWORK,
    }
)


class ProviderError(Exception):
    """A classified provider failure. The message is safe to show: never a key or a request."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES

    @property
    def retry(self) -> Retry | None:
        """The retry decision: None when trying again cannot help."""
        if not self.retryable:
            return None
        return Retry(rate_limited=self.code == ErrorCode.RATE_LIMITED, after=self.retry_after)


class Provider(Protocol):
    """One API family. Implementations classify every failure as a ProviderError."""

    async def complete(self, request: CompletionRequest) -> CompletionResult: ...

    async def check(self) -> None:
        """Raise a ProviderError unless the provider answers the cheapest authenticated call
        its API allows (for health checks; it costs no tokens)."""
        ...

    async def aclose(self) -> None: ...
