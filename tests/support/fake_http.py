"""The common part of the fake provider servers: a real HTTP server with a scripted queue.

A fake records every request and answers from its queue; once the queue is empty it answers
like a healthy server of its API (each fake says how in `default_answer`). Scripted delays end
early when the server stops, so a test that times out on purpose does not hold up teardown.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
SHUTDOWN_POLL_SECONDS = 0.01
IDLE_CONNECTION_SECONDS = 5.0


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer. `body=None` means the fake's default answer to the request.

    `disconnect=True` closes the connection without answering, as a crashing proxy would.
    """

    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    disconnect: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or None when it was not JSON
    raw: bytes

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the last value of each)."""
        return {name: values[-1] for name, values in parse_qs(urlsplit(self.path).query).items()}


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


class FakeHttpServer(ABC):
    """A threaded HTTP server on 127.0.0.1 and a free port; use as a context manager."""

    thread_name = "fake-http"
    base_path = ""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._script: deque[ScriptedResponse] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server((HOST, 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name=self.thread_name,
            daemon=True,
        )

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        """What a client is configured with (the root plus the API's usual prefix, if any)."""
        return self.root_url + self.base_path

    @abstractmethod
    def default_answer(self, request: RecordedRequest, status: int) -> tuple[int, bytes]:
        """The status and body of an unscripted answer (`status` is the scripted one, 200 when
        nothing was scripted); an unknown route should get the API's own not-found error."""

    def enqueue(self, *responses: ScriptedResponse) -> None:
        with self._lock:
            self._script.extend(responses)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        self._thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _record_and_script(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else ScriptedResponse()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() waits for every handler to finish
    fake: FakeHttpServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = IDLE_CONNECTION_SECONDS

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _answer(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw=raw,
        )
        scripted = fake._record_and_script(recorded)
        if scripted.delay and fake._stopping.wait(scripted.delay):
            return  # the server is stopping; the client gave up long ago
        if scripted.disconnect:
            self.close_connection = True
            return
        status, payload = scripted.status, scripted.body
        if payload is None:
            status, payload = fake.default_answer(recorded, scripted.status)
        try:
            self.send_response(status)
            headers = {"Content-Type": "application/json", **scripted.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client disconnected first (e.g. after its own timeout)
