"""Helpers shared by the provider integration tests: call a provider once, on its own event
loop, and check that a failure is classified without leaking the key."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from evalruns.providers.base import (
    CompletionRequest,
    CompletionResult,
    Message,
    Provider,
    ProviderError,
)
from evalruns.providers.catalog import ResolvedModel
from evalruns.providers.registry import open_provider
from evalruns.settings import Settings

SHORT_TIMEOUT_SECONDS = 0.2
SYSTEM_PROMPT = "Answer with a rating from 1 to 5."
USER_PROMPT = "A driver sees a red light at 3am. Rate the urge to stop."
# Two system prompts around a first exchange, for the APIs that take the system prompt apart.
CONVERSATION = (
    Message(role="system", content="Be brief."),
    Message(role="user", content="Rate 1."),
    Message(role="assistant", content="Rating: 1"),
    Message(role="system", content="Use digits."),
    Message(role="user", content="Rate 2."),
)


def request_for(model: str, *messages: Message) -> CompletionRequest:
    """The test conversation (a system prompt and one question) unless `messages` are given."""
    return CompletionRequest(
        model=model,
        messages=list(messages)
        or [
            Message(role="system", content=SYSTEM_PROMPT),
            Message(role="user", content=USER_PROMPT),
        ],
        temperature=0.2,
        max_tokens=256,
    )


def complete(provider: Provider, request: CompletionRequest) -> CompletionResult:
    """One call, after which the provider is closed."""

    async def run() -> CompletionResult:
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()

    return asyncio.run(run())


def check(provider: Provider) -> None:
    """One health check, after which the provider is closed."""

    async def run() -> None:
        try:
            await provider.check()
        finally:
            await provider.aclose()

    asyncio.run(run())


def check_and_complete(model: ResolvedModel, settings: Settings) -> CompletionResult:
    """A health check and then a call, by a provider the registry builds for `model`."""

    async def run() -> CompletionResult:
        async with open_provider(model, settings) as provider:
            await provider.check()
            return await provider.complete(request_for(model.version))

    return asyncio.run(run())


def raised(action: Callable[[], object], *secrets: str) -> ProviderError:
    """The ProviderError `action` raises, checked for leaks of the secrets and the prompt."""
    with pytest.raises(ProviderError) as caught:
        action()
    error = caught.value
    for text in (str(error), repr(error), error.message, str(error.__cause__)):
        for secret in secrets:
            assert secret not in text
        assert USER_PROMPT not in text
    return error


def refused_url(path: str = "") -> str:
    """A URL on a local port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def http_date_in(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def rfc3339_in(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
