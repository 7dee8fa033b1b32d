"""An Azurite on disk that a test can stop and start again on the same data and ports, as
storage that goes away for a while and comes back."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from devhost.azurite import Azurite, free_port, running_azurite


class RestartableAzurite:
    """Azurite persisted under `location`; `stop()` ends the process (SIGTERM: it writes its
    data out), `start()` runs a new one on the same data and ports."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.ports = (free_port(), free_port(), free_port())
        self.azurite = Azurite(*self.ports)
        self._process = ExitStack()

    def start(self) -> None:
        self._process.enter_context(running_azurite(self.location, self.ports))

    def stop(self) -> None:
        self._process.close()
        self._process = ExitStack()

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
