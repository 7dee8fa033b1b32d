"""How HTTP failures become classified, safe `ProviderError`s, and when a server says to retry.

Every provider family speaks HTTP and fails the same few ways (no answer in time, no connection,
an error status, a body that is not what the API promises), so the translation lives here once.
What differs per API (the error body's shape, which headers carry the retry hint) stays in the
provider's module and builds on these functions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from evalruns.providers.base import ErrorCode

if TYPE_CHECKING:
    import httpx

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
# Fields of an error object worth quoting after its message: OpenAI and Anthropic name a `type`,
# OpenAI and Google a `code`, Google a `status`.
ERROR_DETAIL_FIELDS = ("type", "code", "status")

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def classify_status(status: int, body: str) -> ErrorCode:
    """The error code for a non-success HTTP status (and, for a 4xx, the body's wording).

    Providers with a typed error body classify by its type first and fall back on this.
    """
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


def transport_failure(
    exc: httpx.HTTPError, host: str, timeout_seconds: float
) -> tuple[ErrorCode, str]:
    """The code and message for a request that got no HTTP response at all.

    A URL without a scheme is a configuration mistake that no retry can fix, so it is an
    invalid request rather than a network error.
    """
    import httpx  # here, not at the top: services.health imports this module, not httpx

    if isinstance(exc, httpx.TimeoutException):
        return ErrorCode.TIMEOUT, f"no response from {host} within {timeout_seconds:g}s"
    if isinstance(exc, httpx.DecodingError):
        return ErrorCode.MALFORMED_RESPONSE, f"undecodable response from {host}: {exc}"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ErrorCode.INVALID_REQUEST, f"cannot call {host or 'the provider'}: {exc}"
    return ErrorCode.NETWORK, f"cannot reach {host}: {type(exc).__name__}: {exc}"


def safe_detail(detail: str, secret: str | None) -> str:
    """`detail` with the key redacted and trimmed short enough to store in a transcript."""
    if secret and len(secret) >= MIN_REDACTED_KEY_LENGTH:
        detail = detail.replace(secret, REDACTED)
    if len(detail) > ERROR_DETAIL_LIMIT:
        detail = detail[: ERROR_DETAIL_LIMIT - 1] + "…"
    return detail


def error_object(data: Any) -> dict[str, Any]:
    """The `error` object of an `{"error": {...}}` body (OpenAI, Anthropic, Google), or `{}`,
    so typed classifications read its fields without checking the shape each time."""
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def error_detail(data: Any) -> str | None:
    """The provider's explanation from an `{"error": {...}}` body (OpenAI, Anthropic, Google)
    or a flat one (`{"message": ...}`, `{"detail": ...}` from local servers)."""
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
    extras = [
        f"{key}={source[key]}"
        for key in ERROR_DETAIL_FIELDS
        if source.get(key) is not None and not isinstance(source[key], dict | list)
    ]
    return f"{text} ({', '.join(extras)})" if extras else text


def retry_after_header(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from the standard `Retry-After` (seconds or an HTTP date) or the
    millisecond `retry-after-ms` that OpenAI and Azure add; the finer one wins.

    `headers` should be case-insensitive (httpx.Headers) or use lower-case names.
    """
    millis = number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    retry_after = headers.get("retry-after")
    if not retry_after:
        return None
    seconds = number(retry_after)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_duration(text: str | None) -> float | None:
    """Seconds from a duration such as `1s`, `250ms`, `1m30s`, `0.5s` or a bare number.

    This covers OpenAI's `x-ratelimit-reset-*` headers and Google's protobuf durations.
    """
    if not text:
        return None
    text = text.strip()
    plain = number(text)
    if plain is not None:
        return plain
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(value) * _DURATION_UNITS[unit] for value, unit in _DURATION_PART.findall(text))


def seconds_until(timestamp: str | None, now: datetime | None = None) -> float | None:
    """Seconds from now until an RFC 3339 timestamp (0 once it has passed; None if unreadable)."""
    if not timestamp:
        return None
    try:
        when = datetime.fromisoformat(timestamp.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def longest_wait(waits: list[float | None]) -> float | None:
    """The longest of several known waits: with more than one limit reported and no saying
    which one was hit, waiting for the last to reset is the only wait sure to be enough."""
    known = [seconds for seconds in waits if seconds is not None]
    return max(known) if known else None


def number(text: str | None) -> float | None:
    """A finite, non-negative number from a header value, or None."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
