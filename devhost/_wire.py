"""The channel between the host process and the Python worker process (Core Tools: gRPC).

A message is a frame: a 4-byte big-endian length, then the pickled message. Both ends are
devhost, on one machine, over a socket pair the host creates. The host sends requests
``(request_id, kind, payload)``; the worker answers each with ``(request_id, ok, payload)``,
in whatever order invocations finish. Payloads are plain data: strings, ``Datum`` values,
dataclasses of them.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loader import FunctionInfo

_HEADER = struct.Struct("!I")

INDEX = "index"
"""Import and index the app (``FunctionsMetadataRequest``): the host's view of the functions."""
HTTP = "http"
"""Invoke an HTTP- or timer-triggered function with its binding data (``InvocationRequest``)."""
ORCHESTRATOR = "orchestrator"
"""Invoke an orchestrator function with the extension's context JSON."""
ACTIVITY = "activity"
"""Invoke an activity function with its input."""
SHUTDOWN = "shutdown"
"""Stop: the worker cancels what runs, answers, and exits."""


@dataclass(frozen=True)
class IndexRequest:
    app_dir: str
    script_file: str
    allow_list: tuple[str, ...] | None
    log_level: int
    activity_threads: int
    """Threads for synchronous activities (the host's ``maxConcurrentActivityFunctions``)."""
    orchestrator_threads: int
    """Threads for orchestrator functions (``maxConcurrentOrchestratorFunctions``)."""


@dataclass(frozen=True)
class IndexResult:
    functions: list[FunctionInfo]
    """The functions the host loads (host.json's ``functions`` applied), Durable ones with
    their names as the extension registers them."""


@dataclass(frozen=True)
class RemoteError:
    """An exception in the worker process, as the host reports it."""

    kind: str
    """The exception's type name."""
    message: str
    stack: str
    """The traceback, without devhost's own frames (the worker's ``Stack:``)."""


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> Any:
    """The next message; ``asyncio.IncompleteReadError`` when the other end is gone."""
    header = await reader.readexactly(_HEADER.size)
    (length,) = _HEADER.unpack(header)
    return pickle.loads(await reader.readexactly(length))


def send_blocking(sock: socket.socket, message: Any) -> None:
    sock.sendall(frame(message))


def receive_blocking(sock: socket.socket) -> Any:
    """The next message from a blocking socket; ``EOFError`` when the other end is gone."""
    (length,) = _HEADER.unpack(_receive_exactly(sock, _HEADER.size))
    return pickle.loads(_receive_exactly(sock, length))


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the other end of the worker channel closed it")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
