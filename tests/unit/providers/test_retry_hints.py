from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from evalruns.providers.base import ErrorCode
from evalruns.providers.openai_compat import classify_status, parse_duration, parse_retry_after


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("6m0s", 360.0),
        ("1h2m3s", 3723.0),
        ("0.5s", 0.5),
        ("2", 2.0),
        (" 3s ", 3.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "1x", "s", "-1s", "1s garbage", "nan"])
def test_parse_duration_rejects_nonsense(text: str | None) -> None:
    assert parse_duration(text) is None


def test_retry_after_precedence() -> None:
    headers = httpx.Headers(
        {"Retry-After-Ms": "1500", "Retry-After": "9", "x-ratelimit-reset-requests": "20s"}
    )

    assert parse_retry_after(headers) == 1.5
    del headers["retry-after-ms"]
    assert parse_retry_after(headers) == 9
    del headers["retry-after"]
    assert parse_retry_after(headers) == 20


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    headers = httpx.Headers({"Retry-After": format_datetime(now + timedelta(seconds=45), True)})

    assert parse_retry_after(headers, now=now) == 45
    assert parse_retry_after(headers, now=now + timedelta(minutes=5)) == 0


def test_reset_headers_take_the_longer_wait() -> None:
    headers = httpx.Headers({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "1m"})

    assert parse_retry_after(headers) == 60


def test_no_or_unreadable_hints_give_none() -> None:
    assert parse_retry_after(httpx.Headers()) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "whenever"})) is None


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, '{"error": {"message": "bad"}}', ErrorCode.INVALID_REQUEST),
        (422, '{"detail": "bad"}', ErrorCode.INVALID_REQUEST),
        (400, '{"error": {"code": "content_filter"}}', ErrorCode.CONTENT_FILTERED),
        (400, '{"error": {"code": "content_policy_violation"}}', ErrorCode.CONTENT_FILTERED),
        (401, "", ErrorCode.AUTHENTICATION),
        (402, "Insufficient Balance", ErrorCode.AUTHENTICATION),
        (403, "", ErrorCode.AUTHENTICATION),
        (404, "", ErrorCode.NOT_FOUND),
        (408, "", ErrorCode.TIMEOUT),
        (429, "", ErrorCode.RATE_LIMITED),
        (500, "", ErrorCode.SERVER_ERROR),
        (503, "", ErrorCode.SERVER_ERROR),
        (302, "", ErrorCode.MALFORMED_RESPONSE),
    ],
)
def test_classify_status(status: int, body: str, code: ErrorCode) -> None:
    assert classify_status(status, body) is code
