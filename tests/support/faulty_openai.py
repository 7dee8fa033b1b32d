"""An OpenAI-compatible server that fails a share of chat completions the ways flaky servers
do: a 200 whose body is not JSON (garbage), a connection closed without an answer (reset), or
no answer for longer than the client waits (hang).

Which call fails, and how, is a function of the conversation (its last user message) and the
call's attempt number for that conversation, so a test can tell what every job should have
ended as (`expected`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from tests.support.fake_http import RecordedRequest, ScriptedResponse
from tests.support.fake_openai import COMPLETIONS_PATH, FakeOpenAIServer

Fault = Literal["garbage", "reset", "hang"]
FAULTS: tuple[Fault, ...] = ("garbage", "reset", "hang")
GARBAGE = b"<html><body>502 upstream sent garbage</body></html>"
# The error code a job records when its last attempt met each fault.
CODES: dict[Fault, str] = {"garbage": "MALFORMED_RESPONSE", "reset": "NETWORK", "hang": "TIMEOUT"}


@dataclass(frozen=True)
class Expected:
    """How a job ends: its status, error code (None when it succeeded) and calls made."""

    status: str
    code: str | None
    attempts: int


def conversation(body: Any) -> str:
    """The last user message of a chat request: what tells one job's calls from another's."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


class FaultyOpenAIServer(FakeOpenAIServer):
    """`share` of the chat completions fail, a third each as garbage, reset and hang."""

    thread_name = "faulty-openai"

    def __init__(self, *, share: float, hang_seconds: float, seed: str = "faults") -> None:
        super().__init__()
        self.share = share
        self.hang_seconds = hang_seconds
        self.seed = seed
        self.attempts: Counter[str] = Counter()

    def reset(self, *, share: float) -> None:
        """Forget the calls made so far, and fail `share` of the next."""
        with self._lock:
            self.requests.clear()
            self.attempts.clear()
            self.share = share

    def fault(self, key: str, attempt: int) -> Fault | None:
        digest = hashlib.sha256(f"{self.seed}\n{key}\n{attempt}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw >= self.share:
            return None
        return FAULTS[min(int(draw / self.share * len(FAULTS)), len(FAULTS) - 1)]

    def expected(self, key: str, max_attempts: int) -> Expected:
        """What the job of conversation `key` ends as, retrying reset and hang calls (the
        provider's retryable failures) up to `max_attempts` calls."""
        for attempt in range(1, max_attempts + 1):
            fault = self.fault(key, attempt)
            if fault is None:
                return Expected("SUCCEEDED", None, attempt)
            if fault == "garbage" or attempt == max_attempts:
                return Expected("FAILED", CODES[fault], attempt)
        raise AssertionError("unreachable")

    def completions(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.route == COMPLETIONS_PATH]

    def _record_and_script(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self.requests.append(request)
            if request.method != "POST" or request.route != COMPLETIONS_PATH:
                return ScriptedResponse()
            key = conversation(request.body)
            self.attempts[key] += 1
            fault = self.fault(key, self.attempts[key])
        if fault == "garbage":
            return ScriptedResponse(body=GARBAGE, headers={"Content-Type": "text/html"})
        if fault == "reset":
            return ScriptedResponse(disconnect=True)
        if fault == "hang":
            return ScriptedResponse(delay=self.hang_seconds)
        return ScriptedResponse()
