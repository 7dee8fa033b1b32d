"""Starting and stopping Azurite (from node_modules) on loopback: in memory for tests, or on
disk for the local stack. Used by the tests, the benchmarks and `make run`."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def usable_port(preferred: int) -> int:
    """`preferred` when nothing listens there, else a free one."""
    return free_port() if _listening(preferred) else preferred


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_azurite(
    location: Path | None = None, ports: tuple[int, int, int] | None = None
) -> Iterator[Azurite]:
    """Azurite until the block ends: in memory, or persisted under `location`."""
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} is missing: run `make install` (npm ci) first")
    azurite = Azurite(*(ports or (free_port(), free_port(), free_port())))
    storage = ["--location", str(location)] if location else ["--inMemoryPersistence"]
    process = subprocess.Popen(
        [
            str(AZURITE_BIN),
            *storage,
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(azurite.blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(azurite.queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(azurite.table_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        ports = (azurite.blob_port, azurite.queue_port, azurite.table_port)
        while not all(_listening(port) for port in ports):
            if process.poll() is not None:
                raise RuntimeError(f"Azurite exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise RuntimeError("Azurite did not start listening in time")
            time.sleep(0.05)
        yield azurite
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
