"""Log output like ``func start``: one line per record on stdout, UTC timestamps.

Both devhost processes (the host and the Python worker) log this way to the same stdout.
"""

from __future__ import annotations

import logging
import sys
import time


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def configure_logging(level: int) -> None:
    """Function and engine logs on stdout, at host.json's ``logging.logLevel.default``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_UtcFormatter("[%(asctime)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
