from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from evalruns.providers.anthropic import parse_retry_after as anthropic_retry_after
from evalruns.providers.base import ErrorCode
from evalruns.providers.gemini import parse_retry_after as gemini_retry_after
from evalruns.providers.http_errors import (
    classify_status,
    error_detail,
    parse_duration,
    safe_detail,
    seconds_until,
    transport_failure,
)
from evalruns.providers.openai_compat import parse_retry_after


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


NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "seconds"),
    [
        ("2025-06-01T12:00:30Z", 30),
        ("2025-06-01T12:00:00.500Z", 0.5),
        ("2025-06-01T13:00:00+01:00", 0),
        ("2025-06-01T12:01:00+00:00", 60),
        ("2025-06-01T11:59:00Z", 0),
    ],
)
def test_seconds_until_an_rfc3339_timestamp(timestamp: str, seconds: float) -> None:
    assert seconds_until(timestamp, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "tomorrow", "2025-06-01T12:00:30"])
def test_seconds_until_rejects_unreadable_or_local_times(text: str | None) -> None:
    assert seconds_until(text, now=NOW) is None


def test_anthropic_prefers_retry_after_then_the_latest_reset() -> None:
    headers = httpx.Headers(
        {
            "retry-after": "12",
            "anthropic-ratelimit-requests-reset": "2025-06-01T12:00:05Z",
            "anthropic-ratelimit-input-tokens-reset": "2025-06-01T12:00:40Z",
            "anthropic-ratelimit-output-tokens-reset": "not a time",
        }
    )

    assert anthropic_retry_after(headers, now=NOW) == 12
    del headers["retry-after"]
    assert anthropic_retry_after(headers, now=NOW) == 40
    assert anthropic_retry_after(httpx.Headers(), now=NOW) is None


def test_gemini_reads_retry_info_from_the_error_details() -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "39s"},
            ],
        }
    }

    assert gemini_retry_after(httpx.Headers(), body) == 39
    assert gemini_retry_after(httpx.Headers({"Retry-After": "5"}), body) == 5
    assert gemini_retry_after(httpx.Headers(), {"error": {"details": "nonsense"}}) is None
    assert gemini_retry_after(httpx.Headers(), [1, 2]) is None


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            {"error": {"message": "bad", "type": "invalid_request_error"}},
            "bad (type=invalid_request_error)",
        ),
        (
            {"error": {"message": "slow", "code": 429, "status": "RESOURCE_EXHAUSTED"}},
            "slow (code=429, status=RESOURCE_EXHAUSTED)",
        ),
        ({"error": "plain"}, "plain"),
        ({"detail": [{"loc": ["body"], "msg": "x"}]}, '[{"loc": ["body"], "msg": "x"}]'),
        ({"error": {"message": "m", "code": {"nested": 1}}}, "m"),
        ({"choices": []}, None),
        ("text", None),
    ],
)
def test_error_detail_reads_each_providers_error_body(data: object, detail: str | None) -> None:
    assert error_detail(data) == detail


def test_safe_detail_redacts_real_keys_and_trims() -> None:
    key = "sk-ant-api03-secretsecret"

    assert safe_detail(f"bad key {key}!", key) == "bad key [redacted]!"
    assert safe_detail("a key of abc", "abc") == "a key of abc"  # too short to be a secret
    trimmed = safe_detail("x" * 1000, None)
    assert len(trimmed) == 300 and trimmed.endswith("…")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ReadTimeout("timed out"), ErrorCode.TIMEOUT),
        (httpx.ConnectTimeout("timed out"), ErrorCode.TIMEOUT),
        (httpx.ConnectError("refused"), ErrorCode.NETWORK),
        (httpx.RemoteProtocolError("Server disconnected"), ErrorCode.NETWORK),
        (httpx.DecodingError("bad gzip"), ErrorCode.MALFORMED_RESPONSE),
        (httpx.UnsupportedProtocol("missing scheme"), ErrorCode.INVALID_REQUEST),
    ],
)
def test_transport_failures(exc: httpx.HTTPError, code: ErrorCode) -> None:
    got, message = transport_failure(exc, "api.example.com", 2.5)

    assert got is code
    assert "api.example.com" in message or code is ErrorCode.INVALID_REQUEST
    if code is ErrorCode.TIMEOUT:
        assert "2.5s" in message
