"""Token estimates from text length and the one pricing formula, shared by the mock provider,
cost estimates and the cost of calls made."""

from __future__ import annotations

CHARS_PER_TOKEN = 4
TOKENS_PER_MILLION = 1_000_000


def estimate_tokens(chars: int) -> int:
    """About four characters a token, never below one."""
    return max(1, -(-chars // CHARS_PER_TOKEN))


def cost_usd(
    input_tokens: int, output_tokens: int, input_per_million: float, output_per_million: float
) -> float:
    """Dollars for these token counts at prices per million tokens."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts cannot be negative")
    return (
        input_tokens * input_per_million + output_tokens * output_per_million
    ) / TOKENS_PER_MILLION
