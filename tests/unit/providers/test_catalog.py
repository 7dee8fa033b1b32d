from __future__ import annotations

import re
from typing import Any

import pytest

from evalruns.providers.catalog import (
    Catalog,
    ModelInfo,
    ProviderInfo,
    ResolvedModel,
    UnknownModelError,
    load_catalog,
)
from evalruns.settings import Settings, load_settings


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


def settings_with(**provider_env: str) -> Settings:
    return Settings(provider_env=provider_env)


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("mock-small", "mock-small-20250601"),
        ("mock:mock-small", "mock-small-20250601"),
        ("mock-small@mock-small-20250101", "mock-small-20250101"),
        ("mock:mock-small@mock-small-20250101", "mock-small-20250101"),
        ("  mock-small  ", "mock-small-20250601"),
    ],
)
def test_resolve_accepts_every_reference_form(catalog: Catalog, ref: str, version: str) -> None:
    resolved = catalog.resolve(ref)

    assert resolved.model_id == "mock-small"
    assert resolved.provider == "mock"
    assert resolved.version == version
    assert resolved.cost_input_per_million == catalog.models["mock-small"].cost_input_per_million


def test_resolved_ref_round_trips(catalog: Catalog) -> None:
    resolved = catalog.resolve("openai:gpt-4o@gpt-4o-2024-08-06")

    assert resolved.ref == "gpt-4o@gpt-4o-2024-08-06"
    assert catalog.resolve(resolved.ref) == resolved


def test_unknown_model_is_named(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as raised:
        catalog.resolve("gpt-99")

    assert isinstance(raised.value, ValueError)
    assert raised.value.ref == "gpt-99"
    assert "'gpt-99'" in str(raised.value)
    assert "mock-small" in str(raised.value)  # lists what does exist


def test_unknown_version_lists_valid_versions(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as raised:
        catalog.resolve("mock-small@mock-small-19990101")

    message = str(raised.value)
    assert "mock-small@mock-small-19990101" in message
    assert "mock-small-20250101" in message
    assert "mock-small-20250601" in message


@pytest.mark.parametrize("ref", ["openai:mock-small", "nosuch:mock-small", ":mock-small"])
def test_mismatched_or_unknown_provider_prefix_is_refused(catalog: Catalog, ref: str) -> None:
    with pytest.raises(UnknownModelError, match="mock-small"):
        catalog.resolve(ref)


@pytest.mark.parametrize("ref", ["", "   ", "mock:", "@mock-small-20250101", "mock-small@"])
def test_incomplete_references_are_refused(catalog: Catalog, ref: str) -> None:
    with pytest.raises(UnknownModelError):
        catalog.resolve(ref)


PROVIDERS = {
    "mock",
    "openai",
    "xai",
    "deepseek",
    "mistral",
    "azure-openai",
    "anthropic",
    "google",
    "local",
}


def test_catalog_shape(catalog: Catalog) -> None:
    assert set(catalog.providers) == PROVIDERS
    assert catalog.models["mock-small"].versions == ["mock-small-20250101", "mock-small-20250601"]
    assert len(catalog.models["mock-large"].versions) == 1
    for model in catalog.models.values():
        assert model.provider in catalog.providers
        assert model.default_version in model.versions
    real = [m for m in catalog.models.values() if m.provider not in ("mock", "local")]
    assert real and all(m.cost_input_per_million > 0 for m in real)
    assert catalog.models["local-model"].cost_output_per_million == 0


def test_every_provider_has_models_and_a_concurrency_limit(catalog: Catalog) -> None:
    for provider in catalog.providers.values():
        assert any(m.provider == provider.id for m in catalog.models.values()), provider.id
        assert provider.max_concurrency >= 1
    assert {p.api for p in catalog.providers.values()} == {
        "mock",
        "openai",
        "azure-openai",
        "anthropic",
        "gemini",
    }


def test_catalog_ids_are_usable_as_keys(catalog: Catalog) -> None:
    for id_ in [*catalog.providers, *catalog.models]:
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", id_), id_


@pytest.mark.parametrize(
    ("ref", "provider", "version", "input_price", "output_price"),
    [
        ("claude-sonnet-4", "anthropic", "claude-sonnet-4-20250514", 3.0, 15.0),
        ("anthropic:claude-3-5-haiku", "anthropic", "claude-3-5-haiku-20241022", 0.8, 4.0),
        (
            "anthropic:claude-sonnet-4@claude-sonnet-4-20250514",
            "anthropic",
            "claude-sonnet-4-20250514",
            3.0,
            15.0,
        ),
        ("gemini-2.5-pro", "google", "gemini-2.5-pro", 1.25, 10.0),
        ("google:gemini-2.5-flash@gemini-2.5-flash", "google", "gemini-2.5-flash", 0.3, 2.5),
        ("azure-openai:azure-gpt-4o-mini", "azure-openai", "gpt-4o-mini", 0.15, 0.6),
    ],
)
def test_new_provider_models_resolve_with_prices(
    catalog: Catalog,
    ref: str,
    provider: str,
    version: str,
    input_price: float,
    output_price: float,
) -> None:
    resolved = catalog.resolve(ref)

    assert (resolved.provider, resolved.version) == (provider, version)
    assert (resolved.cost_input_per_million, resolved.cost_output_per_million) == (
        input_price,
        output_price,
    )


def test_models_parse_from_camel_case_and_by_name() -> None:
    data: dict[str, Any] = {
        "id": "m",
        "provider": "mock",
        "displayName": "M",
        "versions": ["v1"],
        "defaultVersion": "v1",
        "costInputPerMillion": 1,
        "costOutputPerMillion": 2,
    }
    by_alias = ModelInfo.model_validate(data)
    by_name = ModelInfo(
        id="m",
        provider="mock",
        display_name="M",
        versions=["v1"],
        default_version="v1",
        cost_input_per_million=1,
        cost_output_per_million=2,
    )

    assert by_alias == by_name
    assert by_alias.model_dump(by_alias=True)["defaultVersion"] == "v1"


def test_inconsistent_catalogs_are_rejected() -> None:
    mock = {"id": "mock", "name": "Mock", "api": "mock", "maxConcurrency": 1}
    model = {
        "id": "m",
        "provider": "mock",
        "displayName": "M",
        "versions": ["v1"],
        "defaultVersion": "v1",
        "costInputPerMillion": 0,
        "costOutputPerMillion": 0,
    }
    assert Catalog.from_data({"providers": [mock], "models": [model]}).resolve("m").version == "v1"
    with pytest.raises(ValueError, match="defaultVersion"):
        Catalog.from_data({"providers": [mock], "models": [{**model, "defaultVersion": "v2"}]})
    with pytest.raises(ValueError, match="unknown provider"):
        Catalog.from_data({"providers": [mock], "models": [{**model, "provider": "x"}]})
    with pytest.raises(ValueError, match="duplicate model"):
        Catalog.from_data({"providers": [mock], "models": [model, model]})
    with pytest.raises(ValueError, match="baseUrl"):
        Catalog.from_data({"providers": [{**mock, "api": "openai", "keyEnv": "K"}], "models": []})
    with pytest.raises(ValueError, match="keyEnv"):
        Catalog.from_data(
            {"providers": [{**mock, "api": "anthropic", "baseUrl": "https://x"}], "models": []}
        )
    with pytest.raises(ValueError, match="empty or padded version"):
        Catalog.from_data({"providers": [mock], "models": [{**model, "versions": ["v1", " "]}]})


MODEL_DATA: dict[str, Any] = {
    "provider": "mock",
    "displayName": "M",
    "versions": ["v1"],
    "defaultVersion": "v1",
    "costInputPerMillion": 0,
    "costOutputPerMillion": 0,
}


@pytest.mark.parametrize(
    "model_id",
    ["", "GPT-4o", "openai:gpt-4o", "gpt-4o@2024", "-gpt", ".gpt", "gpt 4o", "gpt/4o", "modèle"],
)
def test_model_ids_must_be_usable_as_keys(model_id: str) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        ModelInfo.model_validate({**MODEL_DATA, "id": model_id})


@pytest.mark.parametrize("model_id", ["m", "gpt-4.1", "claude_3", "0x", "gemini-2.5-flash-lite"])
def test_model_ids_that_are_usable(model_id: str) -> None:
    assert ModelInfo.model_validate({**MODEL_DATA, "id": model_id}).id == model_id


@pytest.mark.parametrize("provider_id", ["", "Mock", "my provider", "a:b"])
def test_provider_ids_must_be_usable_as_keys(provider_id: str) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        ProviderInfo.model_validate(
            {"id": provider_id, "name": "P", "api": "mock", "maxConcurrency": 1}
        )


def test_environment_variables_cover_every_key_and_base_url(catalog: Catalog) -> None:
    names = catalog.environment_variables()

    assert len(names) == len(set(names))
    assert {
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "XAI_API_KEY",
        "DEEPSEEK_API_KEY",
        "MISTRAL_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_VERSION",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GEMINI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "EVALRUNS_LOCAL_OPENAI_API_KEY",
        "EVALRUNS_LOCAL_OPENAI_BASE_URL",
    } == set(names)


def test_load_settings_picks_up_catalog_variables() -> None:
    settings = load_settings({"XAI_API_KEY": "xai-secret", "UNRELATED": "x", "OPENAI_API_KEY": ""})

    assert settings.provider_env == {"XAI_API_KEY": "xai-secret"}
    assert load_catalog().is_available("xai", settings)
    assert not load_catalog().is_available("openai", settings)


def test_availability_without_any_settings(catalog: Catalog) -> None:
    settings = settings_with()

    assert catalog.is_available("mock", settings)
    for provider in PROVIDERS - {"mock"}:
        assert not catalog.is_available(provider, settings), provider
    assert not catalog.is_available("nosuch", settings)


@pytest.mark.parametrize(
    ("provider", "env"),
    [
        ("openai", {"OPENAI_API_KEY": "k"}),
        ("xai", {"XAI_API_KEY": "k"}),
        ("deepseek", {"DEEPSEEK_API_KEY": "k"}),
        ("mistral", {"MISTRAL_API_KEY": "k"}),
        ("local", {"EVALRUNS_LOCAL_OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}),
        (
            "azure-openai",
            {
                "AZURE_OPENAI_API_KEY": "k",
                "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
            },
        ),
        ("anthropic", {"ANTHROPIC_API_KEY": "k"}),
        ("google", {"GEMINI_API_KEY": "k"}),
    ],
)
def test_provider_available_once_configured(
    catalog: Catalog, provider: str, env: dict[str, str]
) -> None:
    settings = settings_with(**env)

    assert catalog.is_available(provider, settings)
    others = set(catalog.providers) - {provider, "mock"}
    assert not any(catalog.is_available(other, settings) for other in others)


def test_local_key_alone_is_not_enough(catalog: Catalog) -> None:
    assert not catalog.is_available("local", settings_with(EVALRUNS_LOCAL_OPENAI_API_KEY="k"))


@pytest.mark.parametrize(
    "env",
    [
        {"AZURE_OPENAI_API_KEY": "k"},
        {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com"},
        {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_VERSION": "v"},
    ],
)
def test_azure_needs_both_key_and_endpoint(catalog: Catalog, env: dict[str, str]) -> None:
    assert not catalog.is_available("azure-openai", settings_with(**env))


@pytest.mark.parametrize(
    ("provider", "env", "missing"),
    [
        ("mock", {}, []),
        ("azure-openai", {}, ["AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"]),
        ("azure-openai", {"AZURE_OPENAI_API_KEY": "k"}, ["AZURE_OPENAI_ENDPOINT"]),
        ("anthropic", {}, ["ANTHROPIC_API_KEY"]),  # the catalog has its base URL
        ("local", {}, ["EVALRUNS_LOCAL_OPENAI_BASE_URL"]),  # no key required
        ("openai", {"OPENAI_API_KEY": "k"}, []),
    ],
)
def test_missing_settings_lists_every_variable_and_missing_setting_the_first(
    catalog: Catalog, provider: str, env: dict[str, str], missing: list[str]
) -> None:
    info = catalog.providers[provider]
    settings = settings_with(**env)

    assert info.missing_settings(settings) == missing
    assert info.missing_setting(settings) == (missing[0] if missing else None)


def test_api_version_is_read_only_where_a_provider_names_one(catalog: Catalog) -> None:
    settings = settings_with(AZURE_OPENAI_API_VERSION="2025-01-01-preview")

    assert catalog.providers["azure-openai"].resolve_api_version(settings) == "2025-01-01-preview"
    assert catalog.providers["azure-openai"].resolve_api_version(settings_with()) is None
    assert catalog.providers["anthropic"].resolve_api_version(settings) is None


@pytest.mark.parametrize(
    ("provider", "variable", "default"),
    [
        ("anthropic", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
        ("google", "GOOGLE_GEMINI_BASE_URL", "https://generativelanguage.googleapis.com"),
    ],
)
def test_base_urls_default_and_can_be_overridden(
    catalog: Catalog, provider: str, variable: str, default: str
) -> None:
    info = catalog.providers[provider]

    assert info.resolve_base_url(settings_with()) == default
    assert info.resolve_base_url(settings_with(**{variable: "http://127.0.0.1:9"})) == (
        "http://127.0.0.1:9"
    )


def test_load_settings_picks_up_the_new_provider_variables() -> None:
    settings = load_settings(
        {
            "ANTHROPIC_API_KEY": "a",
            "GEMINI_API_KEY": "g",
            "AZURE_OPENAI_API_KEY": "z",
            "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
            "AZURE_OPENAI_API_VERSION": "2024-10-21",
        }
    )
    catalog = load_catalog()

    assert len(settings.provider_env) == 5
    assert all(catalog.is_available(p, settings) for p in ("anthropic", "google", "azure-openai"))


def test_openai_base_url_override_still_needs_a_key(catalog: Catalog) -> None:
    settings = settings_with(OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    openai = catalog.providers["openai"]

    assert not catalog.is_available("openai", settings)
    assert openai.resolve_base_url(settings) == "http://127.0.0.1:9/v1"
    assert openai.resolve_base_url(settings_with()) == "https://api.openai.com/v1"


def test_cost_uses_per_million_prices() -> None:
    model = ResolvedModel(
        model_id="m",
        provider="mock",
        version="v",
        cost_input_per_million=0.5,
        cost_output_per_million=1.5,
    )

    assert model.cost_usd(0, 0) == 0
    assert model.cost_usd(1_000_000, 0) == pytest.approx(0.5)
    assert model.cost_usd(2_000, 1_000) == pytest.approx(0.0025)
    with pytest.raises(ValueError):
        model.cost_usd(-1, 0)


def test_catalog_mock_prices_are_testable(catalog: Catalog) -> None:
    small = catalog.resolve("mock-small")
    large = catalog.resolve("mock-large")

    assert small.cost_usd(1000, 1000) > 0
    assert large.cost_usd(1000, 1000) > small.cost_usd(1000, 1000)
    assert catalog.resolve("local-model").cost_usd(10_000, 10_000) == 0


def test_an_unresolved_key_vault_reference_is_no_key() -> None:
    from evalruns.settings import load_settings

    settings = load_settings(
        {
            "OPENAI_API_KEY": "@Microsoft.KeyVault(VaultName=kv;SecretName=openai-api-key)",
            "XAI_API_KEY": "xai-secret",
        }
    )
    assert settings.provider_value("OPENAI_API_KEY") == ""
    assert settings.provider_value("XAI_API_KEY") == "xai-secret"
