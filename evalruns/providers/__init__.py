"""LLM providers: one async `complete(request)` per API family, plus the model catalog.

Callers import these names from here rather than from the modules behind them.
"""

from __future__ import annotations

from evalruns.providers.anthropic import AnthropicProvider
from evalruns.providers.azure_openai import AzureOpenAIProvider
from evalruns.providers.base import (
    RETRYABLE_CODES,
    CompletionRequest,
    CompletionResult,
    ErrorCode,
    FinishReason,
    Message,
    Provider,
    ProviderError,
)
from evalruns.providers.catalog import (
    Catalog,
    ModelInfo,
    ProviderInfo,
    ResolvedModel,
    UnknownModelError,
    load_catalog,
)
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

__all__ = [
    "RETRYABLE_CODES",
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "Catalog",
    "CompletionRequest",
    "CompletionResult",
    "ErrorCode",
    "FinishReason",
    "GeminiProvider",
    "HttpProvider",
    "Message",
    "MockProvider",
    "ModelInfo",
    "OpenAICompatibleProvider",
    "Provider",
    "ProviderError",
    "ProviderInfo",
    "ProviderNotConfiguredError",
    "ResolvedModel",
    "UnknownModelError",
    "check_provider",
    "load_catalog",
    "open_provider",
    "provider_for",
]
