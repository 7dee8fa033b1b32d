"""Decision codes: the 1-5 rating a model gave, read from its answer."""

from __future__ import annotations

import re

OTHER = "other"
ERROR = "error"
PENDING = "pending"

_RATING = re.compile(r"rating\**\s*[:=]?\s*\**\s*([1-5])(?![\d.,]\d)(?!\d)", re.IGNORECASE)
_STANDALONE = re.compile(r"(?<![\w.])(?<!\d,)([1-5])(?![\w]|[.,]\d)")


def extract_decision(text: str) -> str:
    """`Rating: N` first, else the first standalone digit 1-5, else `other`."""
    match = _RATING.search(text) or _STANDALONE.search(text)
    return match.group(1) if match else OTHER
