"""devhost's Python worker process, which the host starts (``language_worker``) and talks to.

Core Tools runs the Functions host and the Python language worker as two processes; so does
devhost. This process is the worker (``azure-functions-python-worker``): on the host's first
request it imports and indexes the app (``FunctionsMetadataRequest``) and answers with plain
metadata; then it invokes functions as the host asks:

* HTTP functions through :class:`~devhost.worker.PythonWorker` (the binding converters, one
  long-lived event loop for ``async`` functions, a thread pool for the others);
* orchestrators with the extension's context JSON, in a thread pool of the host's
  ``maxConcurrentOrchestratorFunctions`` threads, and activities with their input (``async``
  ones on the same event loop, the others in a pool of ``maxConcurrentActivityFunctions``
  threads), through the trigger converters (``devhost.durable`` ``LocalInvoker``).

It shares the host's stdout/stderr, ignores SIGINT (Ctrl+C reaches the whole process group; the
host stops the worker over the channel) and exits at once when the host is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ._wire import (
    ACTIVITY,
    HTTP,
    INDEX,
    ORCHESTRATOR,
    SHUTDOWN,
    IndexRequest,
    IndexResult,
    RemoteError,
    frame,
    read_message,
    receive_blocking,
    send_blocking,
)
from .durable._worker import (
    EngineConfigurationError,
    FunctionCatalog,
    LocalInvoker,
)
from .loader import AppIndexError, IndexedFunction, import_app, index_functions
from .logs import configure_logging
from .worker import PythonWorker, user_traceback


def remote_error(error: BaseException) -> RemoteError:
    try:
        message = str(error)
    except Exception:
        message = "(the exception could not be turned into text)"
    return RemoteError(type(error).__name__, message, user_traceback(error))


class WorkerProcess:
    """Serves the host's requests on the worker's event loop, each as its own task."""

    def __init__(
        self,
        sock: socket.socket,
        functions: list[IndexedFunction],
        catalog: FunctionCatalog,
        request: IndexRequest,
    ) -> None:
        self._sock = sock
        self._functions = {function.name: function for function in functions}
        self._catalog = catalog
        self._worker = PythonWorker()
        self._invoker = LocalInvoker(request.activity_threads)
        self._orchestrators = ThreadPoolExecutor(
            request.orchestrator_threads, thread_name_prefix="worker-orchestrator"
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def serve_forever(self) -> None:
        try:
            self._worker.run(self._serve())
        finally:
            self._invoker.close()
            self._orchestrators.shutdown(wait=False, cancel_futures=True)
            self._worker.close()

    async def _serve(self) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=self._sock)
        loop = asyncio.get_running_loop()
        while True:
            try:
                request_id, kind, payload = await read_message(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                os._exit(0)  # the host is gone: stop now, whatever still runs
            if kind == SHUTDOWN:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                writer.write(frame((request_id, True, None)))
                await writer.drain()
                writer.close()
                return
            task = loop.create_task(self._answer(writer, request_id, kind, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, writer: asyncio.StreamWriter, request_id: int, kind: str, payload: Any
    ) -> None:
        try:
            result = await self._handle(kind, payload)
            ok = True
        except Exception as error:
            result, ok = remote_error(error), False
        try:
            data = frame((request_id, ok, result))
        except Exception as error:  # a value pickle cannot carry
            data = frame((request_id, False, remote_error(error)))
        writer.write(data)

    async def _handle(self, kind: str, payload: Any) -> Any:
        if kind == HTTP:
            name, data = payload
            try:
                return await self._worker.execute(self._functions[name], data)
            finally:
                sys.stdout.flush()  # the worker flushes print() output after each invocation
        if kind == ORCHESTRATOR:
            name, context_json = payload
            function = self._catalog.orchestrator(name)
            if function is None:
                raise LookupError(f"no orchestrator function named {name!r}")
            return await asyncio.get_running_loop().run_in_executor(
                self._orchestrators, self._invoker.invoke_orchestrator, function, context_json
            )
        if kind == ACTIVITY:
            name, input_text, client_json = payload
            function = self._catalog.activity(name)
            if function is None:
                raise LookupError(f"no activity function named {name!r}")
            return await self._invoker.invoke_activity(function, input_text, client_json)
        raise ValueError(f"unknown request {kind!r}")


def index(request: IndexRequest) -> tuple[IndexResult, list[IndexedFunction], FunctionCatalog]:
    """Import and index the app; only the functions host.json allows are served, Durable ones
    included (the extension cannot find an orchestrator or activity the host did not load)."""
    _, app, _ = import_app(Path(request.app_dir), request.script_file)
    functions = index_functions(app, allow_list=request.allow_list)
    catalog = FunctionCatalog.from_indexed(functions)
    result = IndexResult(functions=[function.info() for function in functions])
    return result, functions, catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devhost worker")
    parser.add_argument("--channel", type=int, required=True, help="the socket's descriptor")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sock = socket.socket(fileno=args.channel)
    try:
        request_id, kind, request = receive_blocking(sock)
    except EOFError:
        return 0
    if kind != INDEX:
        raise SystemExit(f"devhost worker: expected an index request, got {kind!r}")
    try:
        result, functions, catalog = index(request)
    except (AppIndexError, EngineConfigurationError) as error:
        send_blocking(sock, (request_id, False, RemoteError(type(error).__name__, str(error), "")))
        return 1
    send_blocking(sock, (request_id, True, result))
    configure_logging(request.log_level)
    sock.setblocking(False)
    WorkerProcess(sock, functions, catalog, request).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
