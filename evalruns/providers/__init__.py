"""LLM providers: one async `complete(request)` per API family, plus the model catalog.

Callers import these names from here rather than from the modules behind them.
"""

from __future__ import annotations

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
from evalruns.providers.mock import MockProvider
from evalruns.providers.openai_compat import OpenAICompatibleProvider
from evalruns.providers.registry import ProviderNotConfiguredError, open_provider, provider_for

__all__ = [
    "RETRYABLE_CODES",
    "Catalog",
    "CompletionRequest",
    "CompletionResult",
    "ErrorCode",
    "FinishReason",
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
    "load_catalog",
    "open_provider",
    "provider_for",
]
