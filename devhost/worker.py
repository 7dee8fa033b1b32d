"""The Python worker's side of an HTTP invocation, in process.

Like ``azure-functions-python-worker`` (``Dispatcher._handle__invocation_request``), devhost
decodes each argument with the binding's converter from ``azure.functions`` (the HTTP request
through ``HttpRequestConverter`` from the same ``Datum`` shape the worker builds from the host's
``RpcHttp``), passes a ``Context`` when the function declares one, gives output bindings an
``Out``, runs ``async`` functions on one long-lived event loop of its own (the worker's) and
sync functions in a thread pool (``PYTHON_THREADPOOL_THREAD_COUNT``), and encodes the results
with the converters again (``HttpResponseConverter``). The host's part - turning the encoded
response into HTTP - lives in ``http_host``. ``worker_main`` runs this in devhost's Python worker
process, as the worker runs in its own process under Core Tools.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.meta import Datum

from ._context import Context
from ._context import invocation_local as _invocation_local
from .loader import IndexedFunction, get_binding

THREADPOOL_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


class Out(func.Out[Any]):
    """``bindings.out.Out``."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass
class InvocationResult:
    """What the worker sends back: the return value and output bindings, encoded."""

    return_value: Datum | None = None
    outputs: dict[str, Datum] = field(default_factory=dict)


def _encode(binding_type: str, value: Any, pytype: Any) -> Datum:
    """``bindings.meta.get_datum``."""
    binding = get_binding(binding_type)
    try:
        datum = binding.encode(value, expected_type=pytype)
    except NotImplementedError:
        raise TypeError(
            f'unable to encode outgoing TypedData: unsupported type "{binding}" for Python '
            f'type "{type(value).__name__}"'
        ) from None
    return datum  # type: ignore[no-any-return]


def _threadpool_size(environ: dict[str, str]) -> int | None:
    """``Dispatcher._get_sync_tp_max_workers``: unset means the executor's default."""
    text = environ.get(THREADPOOL_SETTING)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


class PythonWorker:
    """The worker process's event loop and sync thread pool, on threads of this process."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=_threadpool_size(dict(os.environ)),
            thread_name_prefix="worker-sync",
        )
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="worker-loop", daemon=True
        )
        self._thread.start()

    async def execute(self, function: IndexedFunction, data: dict[str, Datum]) -> InvocationResult:
        """Invoke ``function`` with ``data``: a coroutine for the worker's own loop."""
        invocation_id = str(uuid.uuid4())
        arguments: dict[str, Any] = {}
        for name, param in function.input_types.items():
            binding = get_binding(param.binding_type)
            datum = data.get(name)
            try:
                arguments[name] = binding.decode(datum, trigger_metadata={})
            except NotImplementedError:
                raise TypeError(
                    f"unable to decode incoming TypedData: unsupported combination of TypedData "
                    f"field {getattr(datum, 'type', None)!r} and expected binding type {binding}"
                ) from None
        context = Context(function.name, function.directory, invocation_id)
        _invocation_local.invocation_id = invocation_id
        if function.requires_context:
            arguments["context"] = context
        outputs = {name: Out() for name in function.output_types}
        arguments.update(outputs)
        if function.is_async:
            result = await function.user_function(**arguments)
        else:
            result = await self._loop.run_in_executor(
                self._pool, _run_sync, invocation_id, function, arguments
            )
        if result is not None and not function.has_return:
            raise RuntimeError(
                f"function {function.name!r} without a $return binding returned a non-None value"
            )
        encoded = InvocationResult()
        for name, out in outputs.items():
            value = out.get()
            if value is not None:
                param = function.output_types[name]
                encoded.outputs[name] = _encode(param.binding_type, value, param.pytype)
        if function.return_type is not None:
            encoded.return_value = _encode(
                function.return_type.binding_type, result, function.return_type.pytype
            )
        return encoded

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the worker loop and wait for it (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def cancel_all() -> None:
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            http_utils = sys.modules.get("azure.durable_functions.models.utils.http_utils")
            if http_utils is not None:  # the Durable client's shared session, if it opened one
                with contextlib.suppress(Exception):
                    await http_utils._close_session()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


_INTERNAL_DIRS = (
    str(Path(__file__).resolve().parent),
    str(Path(asyncio.__file__).resolve().parent),
    str(Path(concurrent.futures.__file__).resolve().parent),
)


def user_traceback(error: BaseException) -> str:
    """The worker's ``Stack:``: the traceback without devhost's and asyncio's own frames."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(_INTERNAL_DIRS)
    ]
    return "".join(traceback.format_list(frames)).rstrip()


def _run_sync(invocation_id: str, function: IndexedFunction, arguments: dict[str, Any]) -> Any:
    """``Dispatcher._run_sync_func``."""
    _invocation_local.invocation_id = invocation_id
    try:
        return function.user_function(**arguments)
    finally:
        _invocation_local.invocation_id = None
