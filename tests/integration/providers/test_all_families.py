"""What every provider family must do alike, over real HTTP against its fake server: send the
key where its API wants it, check health cheaply, and classify transport failures, standard
retry headers and unreadable bodies the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from evalruns.providers.base import ErrorCode, FinishReason
from tests.integration.providers.calls import (
    SHORT_TIMEOUT_SECONDS,
    check,
    http_date_in,
    raised,
    refused_url,
    request_for,
)
from tests.integration.providers.families import FAMILIES, Family
from tests.support.fake_http import FakeHttpServer, ScriptedResponse

# What each family says of a JSON object that holds no answer at all.
NO_ANSWER_REASONS = {
    "openai": "no choices (no error given)",
    "azure-openai": "no choices (no error given)",
    "anthropic": "no content (no error given)",
    "gemini": "no candidates (no error given)",
}


def in_an_hour() -> str:
    """An HTTP date an hour ahead, made when the test runs (not when it is collected)."""
    return http_date_in(3600)


@pytest.fixture(params=FAMILIES, ids=lambda family: family.id)
def family(request: pytest.FixtureRequest) -> Family:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server(family: Family) -> Iterator[FakeHttpServer]:
    with family.server() as running:
        yield running


def test_success_sends_the_key_and_records_usage(family: Family, server: FakeHttpServer) -> None:
    result = family.call(server)

    assert result.text.startswith("Rating: ")
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.provider_model
    assert result.finish_reason is FinishReason.STOP
    [sent] = server.requests
    assert sent.method == "POST"
    assert family.sent_key(sent.headers) == family.key
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "application/json"


def test_check_lists_models_once(family: Family, server: FakeHttpServer) -> None:
    check(family.provider(server.base_url))

    [sent] = server.requests
    assert (sent.method, sent.route, sent.query) == (
        "GET",
        family.listing_route,
        family.listing_query,
    )
    assert family.sent_key(sent.headers) == family.key
    assert sent.raw == b""


def test_check_reports_a_rejected_key_without_echoing_it(
    family: Family, server: FakeHttpServer
) -> None:
    server.enqueue(ScriptedResponse(status=401, body=f"invalid key {family.key}".encode()))

    error = raised(lambda: check(family.provider(server.base_url)), *family.secrets)

    assert error.code is ErrorCode.AUTHENTICATION
    assert error.status_code == 401
    assert "invalid key [redacted]" in error.message


def test_check_refuses_a_listing_of_the_wrong_shape(family: Family, server: FakeHttpServer) -> None:
    server.enqueue(ScriptedResponse(body=b'{"object": "list"}'))

    error = raised(lambda: check(family.provider(server.base_url)), *family.secrets)

    assert error.code is ErrorCode.MALFORMED_RESPONSE


def test_check_times_out_with_the_client_timeout(family: Family, server: FakeHttpServer) -> None:
    server.enqueue(ScriptedResponse(delay=10.0))
    provider = family.provider(server.base_url, timeout_seconds=SHORT_TIMEOUT_SECONDS)

    error = raised(lambda: check(provider), *family.secrets)

    assert error.code is ErrorCode.TIMEOUT
    assert error.retryable


def test_timeout(family: Family, server: FakeHttpServer) -> None:
    server.enqueue(ScriptedResponse(delay=10.0))

    error = raised(
        lambda: family.call(server, timeout_seconds=SHORT_TIMEOUT_SECONDS), *family.secrets
    )

    assert error.code is ErrorCode.TIMEOUT
    assert error.retryable
    assert isinstance(error.__cause__, httpx.TimeoutException)
    assert f"within {SHORT_TIMEOUT_SECONDS:g}s" in error.message


@pytest.mark.parametrize("action", ["complete", "check"])
def test_connection_refused_is_a_network_error(family: Family, action: str) -> None:
    url = refused_url()

    error = raised(
        lambda: family.call(url) if action == "complete" else check(family.provider(url)),
        *family.secrets,
    )

    assert error.code is ErrorCode.NETWORK
    assert error.retryable
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert "127.0.0.1" in error.message


def test_a_dropped_connection_is_a_network_error(family: Family, server: FakeHttpServer) -> None:
    error = family.fail(server, ScriptedResponse(disconnect=True))

    assert error.code is ErrorCode.NETWORK
    assert error.retryable


@pytest.mark.parametrize("base_url", ["api.example.com", "http://[::1/v1"])
def test_a_bad_base_url_is_not_retried(family: Family, base_url: str) -> None:
    error = raised(lambda: family.call(base_url), *family.secrets)

    assert error.code is ErrorCode.INVALID_REQUEST
    assert not error.retryable


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'"ok"', "not a JSON object"),
        (b"{}", None),  # each family's own reason: see NO_ANSWER_REASONS
    ],
)
def test_unreadable_success_bodies_are_malformed(
    family: Family, server: FakeHttpServer, body: bytes, reason: str | None
) -> None:
    reason = reason or NO_ANSWER_REASONS[family.id]
    error = family.fail(server, ScriptedResponse(body=body))

    assert error.code is ErrorCode.MALFORMED_RESPONSE
    assert not error.retryable
    assert error.status_code == 200
    assert reason in error.message


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"Retry-After": "7"}, 7, 7),
        ({"Retry-After": "0.5"}, 0.5, 0.5),
        ({"Retry-After": in_an_hour}, 3500, 3600),
        ({"retry-after-ms": "1500", "Retry-After": "2"}, 1.5, 1.5),
    ],
)
def test_standard_retry_headers_on_429(
    family: Family,
    server: FakeHttpServer,
    headers: dict[str, Any],
    low: float,
    high: float,
) -> None:
    headers = {name: value() if callable(value) else value for name, value in headers.items()}
    error = family.fail(server, ScriptedResponse(status=429, body=b"", headers=headers))

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retryable
    assert error.retry_after is not None
    assert low <= error.retry_after <= high


def test_unreadable_retry_header_gives_no_hint(family: Family, server: FakeHttpServer) -> None:
    response = ScriptedResponse(status=429, body=b"", headers={"Retry-After": "whenever"})

    error = family.fail(server, response)

    assert error.code is ErrorCode.RATE_LIMITED
    assert error.retry_after is None


def test_html_gateway_error_is_a_trimmed_server_error(
    family: Family, server: FakeHttpServer
) -> None:
    response = ScriptedResponse(
        status=502,
        body=b"<html><body>" + b"Bad Gateway " * 200 + b"</body></html>",
        headers={"Content-Type": "text/html", "Retry-After": "30"},
    )

    error = family.fail(server, response)

    assert error.code is ErrorCode.SERVER_ERROR
    assert error.status_code == 502
    assert error.retry_after == 30
    assert "Bad Gateway" in error.message
    assert len(error.message) < 400


def test_non_retryable_errors_carry_no_retry_hint(family: Family, server: FakeHttpServer) -> None:
    response = ScriptedResponse(status=400, body=b"bad request", headers={"Retry-After": "5"})

    error = family.fail(server, response)

    assert error.code is ErrorCode.INVALID_REQUEST
    assert error.retry_after is None


def test_an_unexpected_redirect_is_malformed(family: Family, server: FakeHttpServer) -> None:
    response = ScriptedResponse(status=302, body=b"", headers={"Location": "https://elsewhere"})

    error = family.fail(server, response)

    assert error.code is ErrorCode.MALFORMED_RESPONSE
    assert len(server.requests) == 1  # not followed


def test_an_unknown_route_is_not_found(family: Family, server: FakeHttpServer) -> None:
    error = raised(
        lambda: family.call(server.root_url + "/nowhere"),
        *family.secrets,
    )

    assert error.code is ErrorCode.NOT_FOUND
    assert not error.retryable


def test_an_injected_client_is_used_and_left_open(family: Family, server: FakeHttpServer) -> None:
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.method)

    async def run() -> bool:
        async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
            provider = family.provider(server.base_url, client=client)
            await provider.complete(request_for(family.model))
            await provider.check()
            await provider.aclose()
            return client.is_closed

    assert asyncio.run(run()) is False
    assert sent == ["POST", "GET"]  # both went through the injected client
    assert len(server.requests) == 2
