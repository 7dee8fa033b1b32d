"""Seeded sampling of scenarios: the recorded seed reproduces the same selection."""

from __future__ import annotations

import math
import random
import secrets

MAX_SEED = 2**31 - 1


def sample_size(total: int, percentage: float) -> int:
    """floor(n × p / 100), but at least one scenario."""
    return max(1, math.floor(total * percentage / 100 + 1e-9))


def sample_indices(total: int, percentage: float, seed: int) -> list[int]:
    """The 0-based positions kept, in expansion order."""
    if total <= 0:
        return []
    keep = sample_size(total, percentage)
    if keep >= total:
        return list(range(total))
    positions = list(range(total))
    random.Random(seed).shuffle(positions)
    return sorted(positions[:keep])


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED)
