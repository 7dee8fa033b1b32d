"""schemathesis hooks (SCHEMATHESIS_HOOKS) for fuzzing the API."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def map_query(context: schemathesis.HookContext, query: Any) -> Any:
    """A cursor is an opaque token handed out by the previous page, so no value the fuzzer
    makes up can be one: listings are fuzzed without it (tests/http covers bad cursors)."""
    if isinstance(query, dict):
        query.pop("cursor", None)
    return query
