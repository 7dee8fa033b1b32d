"""A small OpenAI-compatible chat completions server for benchmarks: the path real users take
with a local model (vLLM, llama.cpp), with the mock provider's latency, tail and faults.

    .venv/bin/python bench/mock_openai_server.py --port 8089 [--latency-ms 200]
        [--tail 0.03:3000] [--rate-limit-rate 0.2] [--rps 50] [--call-log calls.jsonl]

`POST /v1/chat/completions` answers in the OpenAI wire format (`choices`, `usage`), after the
latency; refused calls get 429 with `Retry-After: 1` and OpenAI's error body. Each call is
appended to the call log as one JSON line (correlation by the last user message's hash, start
and end times, outcome), as the mock provider's log is.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import web

JITTER = (0.8, 1.2)


class Behaviour:
    def __init__(self, args: argparse.Namespace) -> None:
        self.latency_ms: float = args.latency_ms
        share, _, extra = (args.tail or "0:0").partition(":")
        self.tail_share, self.tail_ms = float(share), float(extra or 0)
        self.rate_limit_rate: float = args.rate_limit_rate
        self.rps: float = args.rps
        self.random = random.Random(args.seed)
        self.recent: deque[float] = deque()
        self.log = Path(args.call_log) if args.call_log else None

    def over_rps(self) -> bool:
        if self.rps <= 0:
            return False
        now = time.monotonic()
        while self.recent and now - self.recent[0] >= 1.0:
            self.recent.popleft()
        if len(self.recent) >= self.rps:
            return True
        self.recent.append(now)
        return False

    def record(self, body: dict[str, Any], started: float, outcome: str) -> None:
        if self.log is None:
            return
        text = json.dumps(body.get("messages", []), sort_keys=True)
        line = {
            "correlationId": hashlib.sha256(text.encode()).hexdigest()[:16],
            "model": body.get("model"),
            "startedAt": started,
            "finishedAt": time.time(),
            "outcome": outcome,
        }
        with self.log.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")


def _rate_limited() -> web.Response:
    error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
    return web.json_response({"error": error}, status=429, headers={"Retry-After": "1"})


async def completions(request: web.Request) -> web.Response:
    behaviour: Behaviour = request.app["behaviour"]
    body = await request.json()
    started = time.time()
    if behaviour.over_rps():
        behaviour.record(body, started, "RATE_LIMITED")
        return _rate_limited()
    latency = behaviour.latency_ms * behaviour.random.uniform(*JITTER)
    roll = behaviour.random.random()
    if behaviour.tail_share and behaviour.random.random() < behaviour.tail_share:
        latency += behaviour.tail_ms
    await asyncio.sleep(latency / 1000)
    if roll < behaviour.rate_limit_rate:
        behaviour.record(body, started, "RATE_LIMITED")
        return _rate_limited()
    prompt = " ".join(str(message.get("content", "")) for message in body.get("messages", []))
    rating = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 5 + 1
    text = f"Rating: {rating}\nOn balance, this is the answer."
    behaviour.record(body, started, "ok")
    return web.json_response(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(started),
            "model": body.get("model", "local-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": len(text) // 4,
                "total_tokens": (len(prompt) + len(text)) // 4,
            },
        }
    )


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "local-model"}]})


def build(args: argparse.Namespace) -> web.Application:
    app = web.Application()
    app["behaviour"] = Behaviour(args)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--tail", default="")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0)
    parser.add_argument("--rps", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--call-log", default="")
    args = parser.parse_args()
    web.run_app(build(args), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
