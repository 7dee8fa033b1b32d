"""The ``func.Context`` the Python worker passes to every function that declares ``context``.

One implementation for HTTP functions, orchestrators and activities alike, as in the worker
(``bindings.context.Context``); this module imports little so both the worker process and the
in-process engines can use it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import azure.functions as func

invocation_local = threading.local()
"""The worker's ``_invocation_id_local``: ``context.thread_local_storage``, whose
``invocation_id`` the worker sets on the thread that runs the invocation."""


class TraceContext:
    def __init__(self, trace_parent: str, trace_state: str, attributes: dict[str, str]) -> None:
        self.trace_parent = trace_parent
        self.trace_state = trace_state
        self.attributes = attributes


class RetryContext:
    def __init__(self, retry_count: int, max_retry_count: int, exception: Any) -> None:
        self.retry_count = retry_count
        self.max_retry_count = max_retry_count
        self.exception = exception


class Context(func.Context):
    """``bindings.context.Context``: a W3C ``traceparent`` for the invocation (the host's
    activity), no retry yet, the function's own directory."""

    def __init__(self, name: str, directory: str, invocation_id: str | None = None) -> None:
        self._name = name
        self._directory = directory
        self._invocation_id = invocation_id or str(uuid.uuid4())
        self._trace = TraceContext(f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00", "", {})
        self._retry = RetryContext(0, 0, None)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return invocation_local

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return self._directory

    @property
    def trace_context(self) -> Any:
        return self._trace

    @property
    def retry_context(self) -> Any:
        return self._retry
