"""Helpers for the devhost tests: fixture apps copied to a temporary directory (with the
local.settings.json a test wants) and devhost run as a real child process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from azure.durable_functions.models.utils import http_utils

from devhost.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 20
EXIT_TIMEOUT_SECONDS = 60
DEADLINE = 20.0
"""Seconds an in-process real-time engine test waits for any one thing."""
RUN_TIMEOUT_SECONDS = 90.0
"""A whole in-process scenario: a hang fails the test instead of the session."""

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on a fresh event loop, bounded; the SDK's shared client session (which a
    client call may have opened on that loop) is closed before the loop goes."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(coroutine, RUN_TIMEOUT_SECONDS)
        finally:
            await http_utils._close_session()

    return asyncio.run(bounded())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll an in-memory condition with a deadline (on the running loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def output(snapshot: Any) -> Any:
    """An instance row's output, decoded."""
    return json.loads(snapshot.output)


def poll(
    check: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


def copy_app(
    destination: Path,
    name: str,
    *,
    settings: dict[str, Any] | None = None,
    host_json: dict[str, Any] | None = None,
) -> Path:
    """A copy of fixture app ``name`` with a local.settings.json (and host.json) written."""
    app_dir = destination / f"{name}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(APPS / name, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    if settings is not None:
        (app_dir / "local.settings.json").write_text(json.dumps(settings, indent=2))
    if host_json is not None:
        (app_dir / "host.json").write_text(json.dumps(host_json, indent=2))
    return app_dir


def child_env(**extra: str) -> dict[str, str]:
    """The test process's environment without settings that would leak into the child."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEVHOST_", "AzureFunctionsJobHost", "AzureWebJobs"))
    }
    env.update(extra)
    return env


@dataclass
class Devhost:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=30, **kwargs)

    def stop(self) -> int:
        """SIGINT (as Ctrl+C), then SIGKILL if it does not stop in time; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_devhost(app_dir: Path, log: Path, env: dict[str, str]) -> Devhost:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app", str(app_dir), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    host = Devhost(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"devhost exited with {process.returncode}:\n{host.output()}")
        try:
            if httpx.get(host.url + "/", timeout=2).status_code == 200:
                return host
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            host.stop()
            raise RuntimeError(f"devhost did not become ready:\n{host.output()}")
        time.sleep(0.05)


def run_devhost_to_exit(app_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run devhost expecting it to refuse to start; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "devhost", "--app", str(app_dir), "--port", str(free_port())],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_SECONDS,
        check=False,
    )
