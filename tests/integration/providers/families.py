"""Each provider family with its fake server, for the tests every family must pass alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from evalruns.providers.anthropic import AnthropicProvider
from evalruns.providers.azure_openai import AzureOpenAIProvider
from evalruns.providers.base import CompletionRequest, CompletionResult, ProviderError
from evalruns.providers.gemini import GeminiProvider
from evalruns.providers.http_provider import DEFAULT_TIMEOUT_SECONDS, HttpProvider
from evalruns.providers.openai_compat import OpenAICompatibleProvider
from tests.integration.providers.calls import complete, raised, request_for
from tests.support.fake_anthropic import FakeAnthropicServer
from tests.support.fake_gemini import FakeGeminiServer
from tests.support.fake_http import FakeHttpServer, ScriptedResponse, json_bytes
from tests.support.fake_openai import FakeAzureOpenAIServer, FakeOpenAIServer

ProviderFactory = Callable[[str, str, float, httpx.AsyncClient | None], HttpProvider]


@dataclass(frozen=True)
class Family:
    id: str
    server: Callable[[], FakeHttpServer]
    build: ProviderFactory  # (base URL, key, timeout, client) -> provider
    model: str
    key: str
    key_header: str
    listing_route: str
    listing_query: dict[str, str]
    key_scheme: str = ""  # what precedes the key in its header (`Bearer ` for OpenAI)

    def provider(
        self,
        base_url: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
    ) -> HttpProvider:
        return self.build(base_url, self.key, timeout_seconds, client)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no error may contain: the key, and the key header's scheme if it has one (a
        sign that the header itself was echoed)."""
        scheme = self.key_scheme.strip()
        return (self.key, scheme) if scheme else (self.key,)

    def sent_key(self, headers: dict[str, str]) -> str | None:
        """The key as sent, or None when the header or its scheme is missing."""
        value = headers.get(self.key_header)
        if value is None or not value.startswith(self.key_scheme):
            return None
        return value.removeprefix(self.key_scheme)

    def call(
        self,
        target: FakeHttpServer | str,
        request: CompletionRequest | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> CompletionResult:
        """One call to a fake server or a base URL (the test conversation unless `request` is
        given)."""
        base_url = target if isinstance(target, str) else target.base_url
        provider = self.provider(base_url, timeout_seconds)
        return complete(provider, request or request_for(self.model))

    def fail(self, server: FakeHttpServer, *responses: ScriptedResponse) -> ProviderError:
        """The error a call raises once `server` answers with `responses`."""
        server.enqueue(*responses)
        return raised(lambda: self.call(server), *self.secrets)

    def answer(self, server: FakeHttpServer, body: dict[str, Any]) -> CompletionResult:
        """The result of a call that `server` answers with `body`."""
        server.enqueue(ScriptedResponse(body=json_bytes(body)))
        return self.call(server)


FAMILIES = [
    Family(
        id="openai",
        server=FakeOpenAIServer,
        build=lambda url, key, timeout, client: OpenAICompatibleProvider(url, key, timeout, client),
        model="gpt-4o-mini-2024-07-18",
        key="sk-proj-TESTKEY-5c1b7e2d9a4f",
        key_header="authorization",
        listing_route="/v1/models",
        listing_query={},
        key_scheme="Bearer ",
    ),
    Family(
        id="azure-openai",
        server=FakeAzureOpenAIServer,
        build=lambda url, key, timeout, client: AzureOpenAIProvider(
            url, key, timeout_seconds=timeout, client=client
        ),
        model="gpt-4o-mini",
        key="0123456789abcdef0123456789abcdef",
        key_header="api-key",
        listing_route="/openai/models",
        listing_query={"api-version": "2024-10-21"},
    ),
    Family(
        id="anthropic",
        server=FakeAnthropicServer,
        build=lambda url, key, timeout, client: AnthropicProvider(key, url, timeout, client),
        model="claude-sonnet-4-20250514",
        key="sk-ant-api03-TESTKEY-9f8e7d6c5b4a",
        key_header="x-api-key",
        listing_route="/v1/models",
        listing_query={"limit": "1"},
    ),
    Family(
        id="gemini",
        server=FakeGeminiServer,
        build=lambda url, key, timeout, client: GeminiProvider(key, url, timeout, client),
        model="gemini-2.5-flash",
        key="AIzaSyTESTKEY-0123456789abcdefghij",
        key_header="x-goog-api-key",
        listing_route="/v1beta/models",
        listing_query={"pageSize": "1"},
    ),
]
OPENAI, AZURE_OPENAI, ANTHROPIC, GEMINI = FAMILIES
