from __future__ import annotations

import asyncio

import httpx
import pytest

from evalruns.providers.anthropic import AnthropicProvider
from evalruns.providers.azure_openai import DEFAULT_API_VERSION, AzureOpenAIProvider
from evalruns.providers.base import ErrorCode, ProviderError
from evalruns.providers.catalog import Catalog, load_catalog
from evalruns.providers.gemini import GeminiProvider
from evalruns.providers.http_provider import HttpProvider
from evalruns.providers.mock import MockProvider
from evalruns.providers.openai_compat import OpenAICompatibleProvider
from evalruns.providers.registry import (
    ProviderNotConfiguredError,
    check_provider,
    open_provider,
    provider_for,
)
from evalruns.settings import Settings

SECRET = "sk-registry-secret-value"


def test_mock_provider_takes_the_mock_settings() -> None:
    settings = Settings(mock_latency_ms=5, mock_failure_rate=0.25, mock_seed=9)

    provider = provider_for(load_catalog().resolve("mock-small"), settings)

    assert isinstance(provider, MockProvider)
    assert (provider.latency_ms, provider.failure_rate, provider.rate_limit_rate) == (5, 0.25, 0)


def test_mock_provider_is_shared_so_a_seed_gives_one_fault_sequence() -> None:
    settings = Settings(mock_failure_rate=0.5, mock_seed=9)
    model = load_catalog().resolve("mock-large")

    assert provider_for(model, settings) is provider_for(model, settings)
    assert provider_for(model, settings) is not provider_for(model, Settings(mock_seed=10))


def test_openai_provider_uses_key_catalog_url_and_timeout() -> None:
    settings = Settings(provider_timeout_seconds=12.5, provider_env={"XAI_API_KEY": SECRET})

    provider = provider_for(load_catalog().resolve("grok-3"), settings)

    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.url == "https://api.x.ai/v1/chat/completions"
    assert provider.timeout_seconds == 12.5
    assert provider.name == "xai"
    asyncio.run(provider.aclose())


def test_base_url_environment_variable_overrides_the_default() -> None:
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "http://127.0.0.1:9999/v1/"}

    provider = provider_for(load_catalog().resolve("gpt-4o-mini"), Settings(provider_env=env))

    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.url == "http://127.0.0.1:9999/v1/chat/completions"
    asyncio.run(provider.aclose())


def test_providers_on_one_loop_share_its_client_until_the_loop_shuts_down() -> None:
    settings = Settings(provider_env={"MISTRAL_API_KEY": SECRET, "XAI_API_KEY": SECRET})
    catalog = load_catalog()

    async def build_two() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        async with (
            open_provider(catalog.resolve("mistral-small"), settings) as first,
            open_provider(catalog.resolve("grok-3"), settings) as second,
        ):
            assert isinstance(first, HttpProvider) and isinstance(second, HttpProvider)
            assert first is not second
            clients = first._client, second._client
        assert not clients[0].is_closed  # closing a provider leaves the shared client open
        return clients

    first, second = asyncio.run(build_two())
    again, _ = asyncio.run(build_two())

    assert first is second
    assert again is not first  # another loop, another client
    assert first.is_closed and again.is_closed  # closed as each loop shut down


def test_provider_for_gives_each_provider_a_client_of_its_own() -> None:
    model = load_catalog().resolve("mistral-small")
    settings = Settings(provider_env={"MISTRAL_API_KEY": SECRET})

    async def build_two() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        first, second = provider_for(model, settings), provider_for(model, settings)
        assert isinstance(first, HttpProvider) and isinstance(second, HttpProvider)
        await first.aclose()
        await second.aclose()
        return first._client, second._client

    first, second = asyncio.run(build_two())

    assert first is not second
    assert first.is_closed and second.is_closed


@pytest.mark.parametrize(
    ("ref", "env", "variable"),
    [
        ("gpt-4o", {}, "OPENAI_API_KEY"),
        ("deepseek-chat", {"OPENAI_API_KEY": SECRET}, "DEEPSEEK_API_KEY"),
        (
            "local-model",
            {"EVALRUNS_LOCAL_OPENAI_API_KEY": SECRET},
            "EVALRUNS_LOCAL_OPENAI_BASE_URL",
        ),
    ],
)
def test_unconfigured_provider_names_the_variable_to_set(
    ref: str, env: dict[str, str], variable: str
) -> None:
    model = load_catalog().resolve(ref)

    with pytest.raises(ProviderNotConfiguredError) as raised:
        provider_for(model, Settings(provider_env=env))

    assert isinstance(raised.value, ValueError)
    assert variable in str(raised.value)
    assert model.provider in str(raised.value)
    assert SECRET not in str(raised.value)


def test_local_provider_needs_only_a_base_url() -> None:
    env = {"EVALRUNS_LOCAL_OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}

    provider = provider_for(load_catalog().resolve("local-model"), Settings(provider_env=env))

    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.url == "http://127.0.0.1:8000/v1/chat/completions"
    asyncio.run(provider.aclose())


def test_azure_provider_takes_endpoint_key_and_api_version() -> None:
    env = {
        "AZURE_OPENAI_API_KEY": SECRET,
        "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/",
        "AZURE_OPENAI_API_VERSION": "2025-01-01-preview",
    }
    model = load_catalog().resolve("azure-gpt-4o-mini")

    provider = provider_for(model, Settings(provider_timeout_seconds=30, provider_env=env))

    assert isinstance(provider, AzureOpenAIProvider)
    assert provider.name == "azure-openai"
    assert provider.timeout_seconds == 30
    assert provider.url_for(model.version) == (
        "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions"
        "?api-version=2025-01-01-preview"
    )
    asyncio.run(provider.aclose())


def test_azure_api_version_defaults_to_the_constant() -> None:
    env = {"AZURE_OPENAI_API_KEY": SECRET, "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com"}

    provider = provider_for(load_catalog().resolve("azure-gpt-4o"), Settings(provider_env=env))

    assert isinstance(provider, AzureOpenAIProvider)
    assert provider.api_version == DEFAULT_API_VERSION
    asyncio.run(provider.aclose())


def test_anthropic_provider_uses_the_catalog_or_configured_base_url() -> None:
    model = load_catalog().resolve("claude-sonnet-4")

    from_catalog = provider_for(model, Settings(provider_env={"ANTHROPIC_API_KEY": SECRET}))
    env = {"ANTHROPIC_API_KEY": SECRET, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"}
    overridden = provider_for(model, Settings(provider_env=env))

    assert isinstance(from_catalog, AnthropicProvider)
    assert isinstance(overridden, AnthropicProvider)
    assert from_catalog.url == "https://api.anthropic.com/v1/messages"
    assert overridden.url == "http://127.0.0.1:9/v1/messages"
    assert from_catalog.name == "anthropic"
    asyncio.run(from_catalog.aclose())
    asyncio.run(overridden.aclose())


def test_gemini_provider_uses_the_catalog_base_url() -> None:
    model = load_catalog().resolve("gemini-2.5-flash")

    provider = provider_for(
        model, Settings(provider_timeout_seconds=7, provider_env={"GEMINI_API_KEY": SECRET})
    )

    assert isinstance(provider, GeminiProvider)
    assert provider.name == "google"
    assert provider.timeout_seconds == 7
    assert provider.url_for(model.version) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    asyncio.run(provider.aclose())


@pytest.mark.parametrize(
    ("ref", "variable"),
    [
        ("claude-sonnet-4", "ANTHROPIC_API_KEY"),
        ("gemini-2.5-pro", "GEMINI_API_KEY"),
        ("azure-gpt-4.1", "AZURE_OPENAI_ENDPOINT"),
    ],
)
def test_new_providers_name_the_variable_to_set(ref: str, variable: str) -> None:
    with pytest.raises(ProviderNotConfiguredError, match=variable):
        provider_for(load_catalog().resolve(ref), Settings())


def test_mock_check_is_always_healthy() -> None:
    provider = provider_for(load_catalog().resolve("mock-small"), Settings(mock_failure_rate=1))

    asyncio.run(provider.check())


def test_check_provider_builds_checks_and_refuses_unconfigured_providers() -> None:
    asyncio.run(check_provider("mock", Settings()))

    with pytest.raises(ProviderNotConfiguredError, match="GEMINI_API_KEY"):
        asyncio.run(check_provider("google", Settings()))
    with pytest.raises(KeyError):
        asyncio.run(check_provider("nosuch", Settings()))


def gateway_catalog(api: str) -> Catalog:
    """A catalog whose only provider of the `api` family has an id no module uses as a
    default name."""
    provider = {
        "id": "team-gateway",
        "name": "Team gateway",
        "api": api,
        "keyEnv": "TEAM_GATEWAY_KEY",
        "baseUrl": "https://gateway.example/llm",
        "baseUrlEnv": "TEAM_GATEWAY_URL",
        "maxConcurrency": 2,
    }
    model = {
        "id": "gateway-model",
        "provider": "team-gateway",
        "displayName": "Gateway model",
        "versions": ["v1"],
        "defaultVersion": "v1",
        "costInputPerMillion": 1,
        "costOutputPerMillion": 2,
    }
    return Catalog.from_data({"providers": [provider], "models": [model]})


@pytest.mark.parametrize(
    ("api", "kind"), [("anthropic", AnthropicProvider), ("gemini", GeminiProvider)]
)
def test_native_providers_are_named_by_their_catalog_id(api: str, kind: type[HttpProvider]) -> None:
    catalog = gateway_catalog(api)
    model = catalog.resolve("gateway-model")

    provider = provider_for(model, Settings(provider_env={"TEAM_GATEWAY_KEY": SECRET}), catalog)
    assert isinstance(provider, kind)
    assert provider.name == "team-gateway"
    asyncio.run(provider.aclose())

    env = {"TEAM_GATEWAY_KEY": SECRET, "TEAM_GATEWAY_URL": "http://[::1/v1"}
    with pytest.raises(ProviderError) as raised:
        provider_for(model, Settings(provider_env=env), catalog)
    assert raised.value.code is ErrorCode.INVALID_REQUEST
    assert raised.value.message.startswith("team-gateway: invalid base URL")
