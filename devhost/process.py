"""Running devhost as a child process (tests, benchmarks, the local stack script)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from devhost.azurite import free_port

READY_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 20


@contextmanager
def running_devhost(
    app_dir: Path,
    *,
    env: Mapping[str, str],
    port: int | None = None,
    ready_path: str = "/",
    output: IO[bytes] | None = None,
) -> Iterator[str]:
    """devhost serving `app_dir` until the block ends; yields its base URL.

    Ready means `ready_path` answers (any status below 500). The process gets SIGINT first,
    as Ctrl+C would, then SIGKILL if it does not stop in time.
    """
    port = port or free_port()
    process = start(app_dir, env=env, port=port, ready_path=ready_path, output=output)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def start(
    app_dir: Path,
    *,
    env: Mapping[str, str],
    port: int,
    ready_path: str = "/",
    output: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """devhost serving `app_dir` on `port`, once `ready_path` answers: for a caller that
    stops it its own way (a test that kills it with SIGKILL, then starts it again)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app", str(app_dir), "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, **env},
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    try:
        _wait_until_ready(process, f"http://127.0.0.1:{port}{ready_path}")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def _wait_until_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"devhost exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"devhost did not answer {url} within {READY_TIMEOUT_SECONDS} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
