"""Token estimates from text length, shared by the mock provider and cost estimates."""

from __future__ import annotations

CHARS_PER_TOKEN = 4
TOKENS_PER_MILLION = 1_000_000


def estimate_tokens(chars: int) -> int:
    """About four characters a token, never below one."""
    return max(1, -(-chars // CHARS_PER_TOKEN))


def cost_usd(
    input_tokens: int, output_tokens: int, input_per_million: float, output_per_million: float
) -> float:
    return (
        input_tokens * input_per_million + output_tokens * output_per_million
    ) / TOKENS_PER_MILLION
