"""The host's side of devhost's Python worker process (Core Tools' language worker channel).

The host starts the worker (``devhost.worker_main``) in the app directory with the host's
environment (local settings applied), over a socket pair; asks it to index the app; then sends
it invocations - HTTP requests and timer runs from ``http_host``, orchestrator episodes and
activities from the Durable engine (:class:`RemoteInvoker`) - and awaits the answers, many at
once. The engine, its storage and the HTTP server stay in the host process, as the extension and
Kestrel stay in the Functions host: the two compete for no interpreter lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.functions.meta import Datum

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
    ActivityOutcome,
    DurableFunction,
    EngineConfigurationError,
    FunctionOutcome,
)
from .loader import AppIndexError, FunctionInfo
from .worker import InvocationResult

logger = logging.getLogger("devhost")

STOP_TIMEOUT_SECONDS = 10.0
_SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOTSTRAP = (
    f"import sys; sys.path.insert(0, {_SOURCE_ROOT!r}); "
    "from devhost.worker_main import main; sys.exit(main())"
)


class WorkerExited(RuntimeError):
    """The worker process is gone; the invocation has no answer."""


class InvocationError(Exception):
    """An invocation failed in the worker process (the exception is described, not carried)."""

    def __init__(self, remote: RemoteError) -> None:
        super().__init__(remote.message)
        self.remote = remote


class LanguageWorker:
    """The Python worker process and the channel to it."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self._sock = sock
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._stopping = False
        self._on_exit: Callable[[], None] | None = None

    @classmethod
    def start(cls, app_dir: Path) -> LanguageWorker:
        """Start the worker in ``app_dir`` with this process's environment and output."""
        parent, child = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, "--channel", str(child.fileno())],
                cwd=app_dir,
                pass_fds=(child.fileno(),),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return cls(process, parent)

    # -- before the event loop -----------------------------------------------------------------

    def request_index(self, request: IndexRequest) -> None:
        """Ask the worker to import and index the app (it does so while the host goes on)."""
        with contextlib.suppress(OSError):  # the worker is gone: index() reports it
            send_blocking(self._sock, (0, INDEX, request))

    def index(self) -> IndexResult:
        """Wait for the worker's index of the app; the host's view of it.

        Raises ``AppIndexError`` or ``EngineConfigurationError`` with the worker's message.
        """
        try:
            _, ok, result = receive_blocking(self._sock)
        except (EOFError, OSError):
            code = self.process.wait()
            raise AppIndexError(
                f"the Python worker process exited (code {code}) while indexing the app"
            ) from None
        if not ok:
            assert isinstance(result, RemoteError)
            if result.kind == EngineConfigurationError.__name__:
                raise EngineConfigurationError(result.message)
            raise AppIndexError(result.message)
        assert isinstance(result, IndexResult)
        return result

    def kill(self) -> None:
        """Stop the worker at once (the host could not start)."""
        self._sock.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    # -- on the host's event loop ----------------------------------------------------------------

    async def connect(self, on_exit: Callable[[], None] | None = None) -> None:
        """Serve invocations on the running loop; ``on_exit`` runs if the worker dies."""
        self._loop = asyncio.get_running_loop()
        self._on_exit = on_exit
        self._sock.setblocking(False)
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._reader_task = self._loop.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                request_id, ok, payload = await read_message(reader)
                future = self._pending.pop(request_id, None)
                if future is None or future.done():
                    continue  # its caller gave up (cancelled)
                if ok:
                    future.set_result(payload)
                else:
                    future.set_exception(InvocationError(payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._closed = True
            pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(WorkerExited("the Python worker process exited"))
            if not self._stopping and self._on_exit is not None:
                self._on_exit()

    async def call(self, kind: str, payload: Any) -> Any:
        """Send one request and await its answer (``InvocationError`` if it failed there)."""
        if self._closed or self._writer is None or self._loop is None:
            raise WorkerExited("the Python worker process is not running")
        request_id = next(self._ids)
        future = self._loop.create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(frame((request_id, kind, payload)))
            return await future
        finally:
            self._pending.pop(request_id, None)

    def call_from_thread(self, kind: str, payload: Any) -> Any:
        """:meth:`call` from a thread other than the loop's, blocking until the answer."""
        if self._loop is None:
            raise WorkerExited("the Python worker process is not connected")
        return asyncio.run_coroutine_threadsafe(self.call(kind, payload), self._loop).result()

    async def invoke(self, function: FunctionInfo, data: dict[str, Datum]) -> InvocationResult:
        """Invoke an HTTP or timer function with its binding data (``InvocationRequest``)."""
        result: InvocationResult = await self.call(HTTP, (function.name, data))
        return result

    async def close(self) -> None:
        """Ask the worker to stop (it cancels what runs), then wait for it to exit."""
        self._stopping = True
        if not self._closed and self._writer is not None:
            with contextlib.suppress(TimeoutError, WorkerExited, InvocationError, ConnectionError):
                await asyncio.wait_for(self.call(SHUTDOWN, None), STOP_TIMEOUT_SECONDS)
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()
        try:
            await asyncio.to_thread(self.process.wait, STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("the Python worker process did not stop; killing it")
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)


class RemoteInvoker:
    """The Durable engine's ``FunctionInvoker`` for functions in the worker process."""

    def __init__(self, worker: LanguageWorker) -> None:
        self._worker = worker

    def invoke_orchestrator(self, function: DurableFunction, context_json: str) -> FunctionOutcome:
        outcome: FunctionOutcome = self._worker.call_from_thread(
            ORCHESTRATOR, (function.name, context_json)
        )
        return outcome

    async def invoke_activity(
        self, function: DurableFunction, input_text: str, client_json: str | None = None
    ) -> ActivityOutcome:
        outcome: ActivityOutcome = await self._worker.call(
            ACTIVITY, (function.name, input_text, client_json)
        )
        return outcome
