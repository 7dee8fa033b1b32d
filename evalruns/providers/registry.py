"""From a resolved model to a provider that can call it, by API family.

Each family's module, and httpx, is imported only when a provider of that family is first
built.

Lifetime: providers are cheap, but an `httpx.AsyncClient` is not (it loads the CA certificates,
about 30 ms, and its pool is what keeps connections alive). A client is bound to the event loop it
first runs on, so `open_provider` and `check_provider`, which run on a loop, give every HTTP
provider the running loop's shared client, made on first use and closed when `asyncio.run` shuts
the loop down; a provider leaves an injected client open, so closing the provider is cheap.
`provider_for`, which may run outside a loop, builds a provider with a client of its own, and its
caller must `aclose()` it. Mock providers hold no connections and are shared per process and mock
settings instead: a seeded mock then yields one random fault sequence across calls, rather than
the same first draw on every call.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from evalruns.providers.catalog import (
    MOCK_API,
    Catalog,
    ProviderInfo,
    ResolvedModel,
    UnknownModelError,
    load_catalog,
)

if TYPE_CHECKING:
    import httpx

    from evalruns.providers.base import Provider
    from evalruns.providers.http_provider import HttpProvider
    from evalruns.providers.mock import MockProvider
    from evalruns.settings import Settings


class ProviderNotConfiguredError(ValueError):
    """A provider whose key or base URL is not set; names the variable, never a value."""

    def __init__(self, provider_id: str, env_var: str | None) -> None:
        fix = f"set the environment variable {env_var}" if env_var else "configure it"
        super().__init__(f"provider {provider_id!r} is not configured: {fix}")
        self.provider_id = provider_id
        self.env_var = env_var


def provider_for(
    model: ResolvedModel, settings: Settings, catalog: Catalog | None = None
) -> Provider:
    """A provider for `model`'s provider with a client of its own; the caller must `aclose()`
    it. On an event loop, prefer `open_provider`, which shares the loop's client."""
    return _build(_info(model, catalog), settings, None)


async def check_provider(
    provider_id: str,
    settings: Settings,
    catalog: Catalog | None = None,
    *,
    timeout_seconds: float | None = None,
) -> None:
    """Make the provider's cheapest authenticated call (`Provider.check`), for health checks.

    `timeout_seconds` replaces the provider timeout of `settings` for the check, so a slow
    provider fails with its own classified TIMEOUT naming the host. Raises
    ProviderNotConfiguredError when its settings are missing, ProviderError when the call fails,
    and KeyError for a provider the catalog does not list.
    """
    info = (catalog or load_catalog()).providers[provider_id]
    if timeout_seconds is not None:
        settings = settings.model_copy(update={"provider_timeout_seconds": timeout_seconds})
    provider = _build(info, settings, await _client_for(info))
    try:
        await provider.check()
    finally:
        await provider.aclose()


@asynccontextmanager
async def open_provider(
    model: ResolvedModel, settings: Settings, catalog: Catalog | None = None
) -> AsyncIterator[Provider]:
    """A provider for `model` on the running loop's shared client, closed on exit."""
    info = _info(model, catalog)
    provider = _build(info, settings, await _client_for(info))
    try:
        yield provider
    finally:
        await provider.aclose()


def _info(model: ResolvedModel, catalog: Catalog | None) -> ProviderInfo:
    info = (catalog or load_catalog()).providers.get(model.provider)
    if info is None:
        raise UnknownModelError(model.ref, f"unknown provider {model.provider!r}")
    return info


class _LoopClient:
    """A loop's client and the async generator that closes it: a loop finalises unfinished
    async generators when it shuts down (`asyncio.run` does), the only hook a loop offers.
    Closing also drops the pooled connections, which refer to the loop and so would otherwise
    keep it, and its entry below, alive."""

    def __init__(self) -> None:
        import httpx

        from evalruns.providers.http_provider import DEFAULT_TIMEOUT_SECONDS

        # Each request sets its provider's timeout (HttpProvider._send); this is only the default.
        self.client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT_SECONDS)
        self.closer = self._close_at_shutdown()

    async def _close_at_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.client.aclose()


# The shared client of each event loop; an entry goes once its loop is closed and collected.
_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
    weakref.WeakKeyDictionary()
)


async def _client_for(info: ProviderInfo) -> httpx.AsyncClient | None:
    """The running loop's shared client for an HTTP provider; None for the mock."""
    if info.api == MOCK_API:
        return None
    loop = asyncio.get_running_loop()
    entry = _loop_clients.get(loop)
    if entry is None or entry.client.is_closed:
        entry = _loop_clients[loop] = _LoopClient()
        await anext(entry.closer)  # started on this loop, so the loop will finalise it
    return entry.client


def _build(info: ProviderInfo, settings: Settings, client: httpx.AsyncClient | None) -> Provider:
    missing = info.missing_setting(settings)
    if missing is not None:
        raise ProviderNotConfiguredError(info.id, missing)
    return _FACTORIES[info.api](info, settings, client)


def _mock(info: ProviderInfo, settings: Settings, client: httpx.AsyncClient | None) -> Provider:
    return _shared_mock(
        settings.mock_latency_ms,
        settings.mock_failure_rate,
        settings.mock_rate_limit_rate,
        settings.mock_seed,
        settings.mock_call_log,
        settings.mock_latency_tail,
        settings.mock_rps,
    )


@functools.cache
def _shared_mock(
    latency_ms: float,
    failure_rate: float,
    rate_limit_rate: float,
    seed: int | None,
    call_log: str,
    tail: str,
    rps: float,
) -> MockProvider:
    from evalruns.providers.mock import MockProvider

    share, _, extra_ms = tail.partition(":")
    return MockProvider(
        latency_ms,
        failure_rate,
        rate_limit_rate,
        seed,
        Path(call_log) if call_log else None,
        tail=(float(share or 0), float(extra_ms or 0)),
        rps=rps,
    )


def _base_url(info: ProviderInfo, settings: Settings) -> str:
    base_url = info.resolve_base_url(settings)
    if base_url is None:  # missing_setting() has ruled this out; kept for the type checker
        raise ProviderNotConfiguredError(info.id, info.base_url_env)
    return base_url


def _openai(info: ProviderInfo, settings: Settings, client: httpx.AsyncClient | None) -> Provider:
    from evalruns.providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(
        _base_url(info, settings),
        info.resolve_api_key(settings),
        settings.provider_timeout_seconds,
        client,
        name=info.id,
    )


def _azure_openai(
    info: ProviderInfo, settings: Settings, client: httpx.AsyncClient | None
) -> Provider:
    from evalruns.providers.azure_openai import DEFAULT_API_VERSION, AzureOpenAIProvider

    return AzureOpenAIProvider(
        _base_url(info, settings),
        info.resolve_api_key(settings),
        info.resolve_api_version(settings) or DEFAULT_API_VERSION,
        settings.provider_timeout_seconds,
        client,
        name=info.id,
    )


def _native(info: ProviderInfo, settings: Settings, client: httpx.AsyncClient | None) -> Provider:
    """Anthropic or Gemini: their own APIs, reached with a key and a base URL."""
    return _native_class(info.api)(
        info.resolve_api_key(settings),
        _base_url(info, settings),
        settings.provider_timeout_seconds,
        client,
        name=info.id,
    )


def _native_class(api: str) -> type[HttpProvider]:
    if api == "anthropic":
        from evalruns.providers.anthropic import AnthropicProvider

        return AnthropicProvider
    from evalruns.providers.gemini import GeminiProvider

    return GeminiProvider


_FACTORIES: dict[str, Callable[[ProviderInfo, Settings, httpx.AsyncClient | None], Provider]] = {
    "mock": _mock,
    "openai": _openai,
    "azure-openai": _azure_openai,
    "anthropic": _native,
    "gemini": _native,
}
