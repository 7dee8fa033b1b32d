from __future__ import annotations

from typing import Any

import pytest

from evalruns.providers.catalog import (
    Catalog,
    ModelInfo,
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


def test_catalog_shape(catalog: Catalog) -> None:
    assert set(catalog.providers) == {"mock", "openai", "xai", "deepseek", "mistral", "local"}
    assert catalog.models["mock-small"].versions == ["mock-small-20250101", "mock-small-20250601"]
    assert len(catalog.models["mock-large"].versions) == 1
    for model in catalog.models.values():
        assert model.provider in catalog.providers
        assert model.default_version in model.versions
    real = [m for m in catalog.models.values() if m.provider not in ("mock", "local")]
    assert real and all(m.cost_input_per_million > 0 for m in real)
    assert catalog.models["local-model"].cost_output_per_million == 0


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


def test_environment_variables_cover_every_key_and_base_url(catalog: Catalog) -> None:
    names = catalog.environment_variables()

    assert len(names) == len(set(names))
    assert {
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "XAI_API_KEY",
        "DEEPSEEK_API_KEY",
        "MISTRAL_API_KEY",
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
    for provider in ("openai", "xai", "deepseek", "mistral", "local"):
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
