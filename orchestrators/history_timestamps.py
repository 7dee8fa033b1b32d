"""Faster replay: history timestamps parsed with the standard library.

The Python SDK parses every history event's timestamp with `dateutil.parser.parse` on every
replay; measured on this project, that is about 85% of an orchestrator episode's CPU
(`bench/replay_bench.py`). The extension writes ISO 8601 (`2026-12-07T22:49:05.1234567Z`),
which `datetime.fromisoformat` reads in a fraction of the time; anything it cannot read still
goes to dateutil, so the SDK sees the same instants as before.
"""

from __future__ import annotations

import sys
from datetime import datetime

from dateutil.parser import parse as _dateutil_parse

_HISTORY_EVENT_MODULE = "azure.durable_functions.models.history.HistoryEvent"


def parse_timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _dateutil_parse(text)


def install() -> None:
    """Make the SDK's history events parse their timestamps with `parse_timestamp`."""
    import azure.durable_functions  # noqa: F401  (loads the history event module)

    sys.modules[_HISTORY_EVENT_MODULE].dt_parse = parse_timestamp  # type: ignore[attr-defined]
