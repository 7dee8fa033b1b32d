"""The model catalog: which providers and models exist, what they cost, and how to reach them.

The catalog is data (`catalog.json` next to this module) so adding a model or correcting a price
is a one-line change. Runs record a *resolved* model (id, exact provider version, prices at the
time), so later catalog edits never change what a finished run cost or which version it called.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from evalruns.domain import tokens

if TYPE_CHECKING:
    from evalruns.settings import Settings

CATALOG_PACKAGE = "evalruns.providers"
CATALOG_RESOURCE = "catalog.json"
MOCK_API = "mock"
PROVIDER_SEPARATOR = ":"
VERSION_SEPARATOR = "@"
# Model and provider ids become storage keys and appear in `provider:model@version`, so they are
# lower-case and free of separators.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")

_CAMEL = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class UnknownModelError(ValueError):
    """A model reference that names no catalog model, provider or version (a 400 for users)."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"invalid model {ref!r}: {reason}")
        self.ref = ref
        self.reason = reason


class ProviderInfo(BaseModel):
    """One provider: its API family and the environment variables that configure it."""

    model_config = _CAMEL

    id: str
    name: str
    api: Literal["mock", "openai", "azure-openai", "anthropic", "gemini"]
    key_env: str | None = None
    # Self-hosted servers usually accept any key, so a key can be optional.
    key_required: bool = True
    base_url: str | None = None
    base_url_env: str | None = None
    # Where an API that is versioned by request (Azure OpenAI) reads the version to use.
    api_version_env: str | None = None
    max_concurrency: int = Field(ge=1)

    @model_validator(mode="after")
    def _reachable(self) -> ProviderInfo:
        _check_id("provider", self.id)
        if self.api == MOCK_API:
            return self
        if not self.base_url and not self.base_url_env:
            raise ValueError(f"provider {self.id!r} needs baseUrl or baseUrlEnv")
        if self.key_required and not self.key_env:
            raise ValueError(f"provider {self.id!r} requires a key but names no keyEnv")
        return self

    def resolve_base_url(self, settings: Settings) -> str | None:
        """The configured base URL (environment override first), or None when there is none."""
        return settings.provider_value(self.base_url_env) or self.base_url or None

    def resolve_api_key(self, settings: Settings) -> str | None:
        return settings.provider_value(self.key_env) or None

    def resolve_api_version(self, settings: Settings) -> str | None:
        """The configured API version, or None to use the provider module's default."""
        return settings.provider_value(self.api_version_env) or None

    def missing_settings(self, settings: Settings) -> list[str]:
        """Every environment variable still to set before this provider can be called, so an
        operator learns all of them at once."""
        if self.api == MOCK_API:
            return []
        missing: list[str] = []
        if self.resolve_base_url(settings) is None and self.base_url_env:
            missing.append(self.base_url_env)
        if self.key_required and self.resolve_api_key(settings) is None and self.key_env:
            missing.append(self.key_env)
        return missing

    def missing_setting(self, settings: Settings) -> str | None:
        """The first of `missing_settings`, or None when the provider can be called."""
        missing = self.missing_settings(settings)
        return missing[0] if missing else None


class ModelInfo(BaseModel):
    """A model as users name it, with the provider versions it can be pinned to."""

    model_config = _CAMEL

    id: str
    provider: str
    display_name: str
    versions: list[str] = Field(min_length=1)
    default_version: str
    cost_input_per_million: float = Field(ge=0)
    cost_output_per_million: float = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ModelInfo:
        _check_id("model", self.id)
        if not all(version and version.strip() == version for version in self.versions):
            raise ValueError(f"model {self.id!r} lists an empty or padded version")
        if len(set(self.versions)) != len(self.versions):
            raise ValueError(f"model {self.id!r} lists a version twice")
        if self.default_version not in self.versions:
            raise ValueError(f"model {self.id!r}: defaultVersion is not one of its versions")
        return self


class ResolvedModel(BaseModel):
    """A model pinned to one version, with the prices that apply to calls made with it."""

    model_config = _CAMEL

    model_id: str
    provider: str
    version: str
    cost_input_per_million: float = Field(ge=0)
    cost_output_per_million: float = Field(ge=0)

    @property
    def ref(self) -> str:
        """The canonical reference, `model@version`, which resolves back to this model."""
        return f"{self.model_id}{VERSION_SEPARATOR}{self.version}"

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """What a call with these token counts cost at this model's prices."""
        return tokens.cost_usd(
            input_tokens, output_tokens, self.cost_input_per_million, self.cost_output_per_million
        )


class _CatalogFile(BaseModel):
    providers: list[ProviderInfo]
    models: list[ModelInfo]


class Catalog:
    """Providers and models by id, in catalog order, checked for consistency on construction."""

    def __init__(self, providers: Iterable[ProviderInfo], models: Iterable[ModelInfo]) -> None:
        self._providers = _index(providers, "provider")
        self._models = _index(models, "model")
        for model in self._models.values():
            if model.provider not in self._providers:
                raise ValueError(f"model {model.id!r} names unknown provider {model.provider!r}")

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Catalog:
        parsed = _CatalogFile.model_validate(data)
        return cls(parsed.providers, parsed.models)

    @property
    def providers(self) -> Mapping[str, ProviderInfo]:
        return MappingProxyType(self._providers)

    @property
    def models(self) -> Mapping[str, ModelInfo]:
        return MappingProxyType(self._models)

    def environment_variables(self) -> list[str]:
        """Every variable a provider reads its key, base URL or API version from, in catalog
        order."""
        names: list[str] = []
        for provider in self._providers.values():
            for name in (provider.key_env, provider.base_url_env, provider.api_version_env):
                if name and name not in names:
                    names.append(name)
        return names

    def is_available(self, provider_id: str, settings: Settings) -> bool:
        """Whether calls to this provider can be made (False for an unknown provider)."""
        provider = self._providers.get(provider_id)
        return provider is not None and provider.missing_setting(settings) is None

    def resolve(self, ref: str) -> ResolvedModel:
        """Resolve `model`, `provider:model`, `model@version` or `provider:model@version`."""
        text = ref.strip()
        prefix: str | None = None
        if PROVIDER_SEPARATOR in text:
            prefix, text = text.split(PROVIDER_SEPARATOR, 1)
        model_id, _, version = text.partition(VERSION_SEPARATOR)
        if not model_id:
            raise UnknownModelError(ref, "no model id given")
        if prefix is not None and prefix not in self._providers:
            known = ", ".join(self._providers)
            raise UnknownModelError(ref, f"no provider {prefix!r}; known providers: {known}")
        model = self._models.get(model_id)
        if model is None:
            known = ", ".join(self._models)
            raise UnknownModelError(ref, f"no model {model_id!r} in the catalog; known: {known}")
        if prefix is not None and prefix != model.provider:
            raise UnknownModelError(
                ref, f"model {model_id!r} is served by {model.provider!r}, not {prefix!r}"
            )
        if VERSION_SEPARATOR in text and version not in model.versions:
            valid = ", ".join(model.versions)
            raise UnknownModelError(
                ref, f"model {model_id!r} has no version {version!r}; valid versions: {valid}"
            )
        return ResolvedModel(
            model_id=model.id,
            provider=model.provider,
            version=version or model.default_version,
            cost_input_per_million=model.cost_input_per_million,
            cost_output_per_million=model.cost_output_per_million,
        )


def _check_id(kind: str, value: str) -> None:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{kind} id {value!r} must be lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


_Item = TypeVar("_Item", ProviderInfo, ModelInfo)


def _index(items: Iterable[_Item], kind: str) -> dict[str, _Item]:
    indexed: dict[str, _Item] = {}
    for item in items:
        if item.id in indexed:
            raise ValueError(f"duplicate {kind} id {item.id!r}")
        indexed[item.id] = item
    return indexed


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with the package, parsed once per process."""
    resource = importlib.resources.files(CATALOG_PACKAGE).joinpath(CATALOG_RESOURCE)
    parsed = _CatalogFile.model_validate_json(resource.read_text("utf-8"))
    return Catalog(parsed.providers, parsed.models)
