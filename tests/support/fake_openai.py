"""A fake OpenAI-compatible server over real HTTP, for testing provider clients end to end.

It records every request and answers from a scripted queue; once the queue is empty it answers
like a healthy server, echoing the requested model. Scripted delays end early when the server
stops, so a test that times out on purpose does not hold up teardown.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

HOST = "127.0.0.1"
API_PREFIX = "/v1"
COMPLETIONS_PATH = f"{API_PREFIX}/chat/completions"
DEFAULT_CONTENT = "Rating: 3\nThe considerations on each side are roughly even."
DEFAULT_PROMPT_TOKENS = 42
DEFAULT_COMPLETION_TOKENS = 17
SHUTDOWN_POLL_SECONDS = 0.01
IDLE_CONNECTION_SECONDS = 5.0


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer. `body=None` means the default success body for the request's model."""

    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or None when it was not JSON
    raw: bytes


def completion_body(
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    content: str | None = DEFAULT_CONTENT,
    finish_reason: str | None = "stop",
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
) -> dict[str, Any]:
    """A chat.completion body shaped like OpenAI's."""
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def error_body(
    message: str, type_: str = "invalid_request_error", code: str | None = None
) -> bytes:
    """An error body shaped like OpenAI's: `{"error": {"message", "type", "param", "code"}}`."""
    return json_bytes({"error": {"message": message, "type": type_, "param": None, "code": code}})


class FakeOpenAIServer:
    """A threaded HTTP server on 127.0.0.1 and a free port; use as a context manager."""

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
            name="fake-openai",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}{API_PREFIX}"

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

    def __enter__(self) -> FakeOpenAIServer:
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
    fake: FakeOpenAIServer


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
        payload = scripted.body
        if payload is None:
            if self.path != COMPLETIONS_PATH:
                payload = error_body(f"Unknown request URL: POST {self.path}", code="unknown_url")
                scripted = ScriptedResponse(status=404, headers=scripted.headers)
            else:
                model = body.get("model") if isinstance(body, dict) else None
                payload = json_bytes(completion_body(model=str(model)))
        try:
            self.send_response(scripted.status)
            headers = {"Content-Type": "application/json", **scripted.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client disconnected first (e.g. after its own timeout)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A running fake server, stopped after the test."""
    with FakeOpenAIServer() as server:
        yield server
