"""From a resolved model to a provider that can call it, by API family.

Each family's module is imported only when a provider of that family is first built.

Lifetime: an HTTP provider owns an `httpx.AsyncClient`, which is bound to the event loop it
first runs on, so `provider_for` builds a new one per call and the caller must `aclose()`
it (`open_provider` does both). Mock providers hold no connections and are shared per process and
mock settings instead: a seeded mock then yields one random fault sequence across calls, rather
than the same first draw on every call.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from evalruns.providers.catalog import (
    Catalog,
    ProviderInfo,
    ResolvedModel,
    UnknownModelError,
    load_catalog,
)

if TYPE_CHECKING:
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
    """A provider for `model`'s provider; the caller owns it and must `aclose()` it."""
    info = (catalog or load_catalog()).providers.get(model.provider)
    if info is None:
        raise UnknownModelError(model.ref, f"unknown provider {model.provider!r}")
    return _build(info, settings)


async def check_provider(
    provider_id: str, settings: Settings, catalog: Catalog | None = None
) -> None:
    """Make the provider's cheapest authenticated call (`Provider.check`), for health checks.

    Raises ProviderNotConfiguredError when its settings are missing, ProviderError when the
    call fails, and KeyError for a provider the catalog does not list.
    """
    info = (catalog or load_catalog()).providers[provider_id]
    provider = _build(info, settings)
    try:
        await provider.check()
    finally:
        await provider.aclose()


@asynccontextmanager
async def open_provider(
    model: ResolvedModel, settings: Settings, catalog: Catalog | None = None
) -> AsyncIterator[Provider]:
    """`provider_for` as an async context manager that closes the provider on exit."""
    provider = provider_for(model, settings, catalog)
    try:
        yield provider
    finally:
        await provider.aclose()


def _build(info: ProviderInfo, settings: Settings) -> Provider:
    missing = info.missing_setting(settings)
    if missing is not None:
        raise ProviderNotConfiguredError(info.id, missing)
    return _FACTORIES[info.api](info, settings)


def _mock(info: ProviderInfo, settings: Settings) -> Provider:
    return _shared_mock(
        settings.mock_latency_ms,
        settings.mock_failure_rate,
        settings.mock_rate_limit_rate,
        settings.mock_seed,
        settings.mock_call_log,
    )


@functools.cache
def _shared_mock(
    latency_ms: float,
    failure_rate: float,
    rate_limit_rate: float,
    seed: int | None,
    call_log: str,
) -> MockProvider:
    from evalruns.providers.mock import MockProvider

    return MockProvider(
        latency_ms, failure_rate, rate_limit_rate, seed, Path(call_log) if call_log else None
    )


def _base_url(info: ProviderInfo, settings: Settings) -> str:
    base_url = info.resolve_base_url(settings)
    if base_url is None:  # missing_setting() has ruled this out; kept for the type checker
        raise ProviderNotConfiguredError(info.id, info.base_url_env)
    return base_url


def _openai(info: ProviderInfo, settings: Settings) -> Provider:
    from evalruns.providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(
        _base_url(info, settings),
        info.resolve_api_key(settings),
        settings.provider_timeout_seconds,
        name=info.id,
    )


def _azure_openai(info: ProviderInfo, settings: Settings) -> Provider:
    from evalruns.providers.azure_openai import DEFAULT_API_VERSION, AzureOpenAIProvider

    return AzureOpenAIProvider(
        _base_url(info, settings),
        info.resolve_api_key(settings),
        info.resolve_api_version(settings) or DEFAULT_API_VERSION,
        settings.provider_timeout_seconds,
        name=info.id,
    )


def _native(info: ProviderInfo, settings: Settings) -> Provider:
    """Anthropic or Gemini: their own APIs, reached with a key and a base URL."""
    return _native_class(info.api)(
        info.resolve_api_key(settings),
        _base_url(info, settings),
        settings.provider_timeout_seconds,
        name=info.id,
    )


def _native_class(api: str) -> type[HttpProvider]:
    if api == "anthropic":
        from evalruns.providers.anthropic import AnthropicProvider

        return AnthropicProvider
    from evalruns.providers.gemini import GeminiProvider

    return GeminiProvider


_FACTORIES: dict[str, Callable[[ProviderInfo, Settings], Provider]] = {
    "mock": _mock,
    "openai": _openai,
    "azure-openai": _azure_openai,
    "anthropic": _native,
    "gemini": _native,
}
