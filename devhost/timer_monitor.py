"""Schedule monitoring: where a timer records its status, so a restart can tell it missed one.

The host's ``StorageScheduleMonitor`` keeps one blob per timer in ``AzureWebJobsStorage``,
container ``azure-webjobs-hosts``, named ``timers/{hostId}/Host.Functions.{name}/status``,
holding the ``ScheduleStatus`` JSON. devhost uses the same place and format, so a status
written by ``func start`` on the same storage and host ID is read back the same way.
``check_past_due`` is ``ScheduleMonitor.CheckPastDueAsync``: it notices schedule changes and
reports how late the recorded next occurrence is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from .timer_schedule import DEFAULT_TIME, ScheduleStatus, TimerSchedule

__all__ = [
    "HOSTS_CONTAINER",
    "ScheduleMonitor",
    "StorageScheduleMonitor",
    "check_past_due",
    "host_id",
    "timer_name",
]

HOSTS_CONTAINER = "azure-webjobs-hosts"
HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"
"""The host's ``AzureFunctionsWebHost:hostid`` configuration, as an environment variable."""
MAXIMUM_HOST_ID_LENGTH = 32

logger = logging.getLogger("devhost")
_sdk_logger = logging.getLogger("devhost.timers.storage")
"""The SDK's per-request logging (INFO) goes here instead of ``azure.core``, quietened."""
_sdk_logger.setLevel(logging.WARNING)


def timer_name(function_name: str) -> str:
    """The timer's lookup name: the generated method's full name in the script host."""
    return f"Host.Functions.{function_name}"


def _stable_hash(text: str) -> int:
    """``Utility.GetStableHash``: 32-bit, over UTF-16 code units."""
    value = 23
    data = text.encode("utf-16-le")
    for index in range(0, len(data), 2):
        value = (value * 31 + int.from_bytes(data[index : index + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def host_id(environ: Mapping[str, str], script_path: Path) -> str:
    """``ScriptHostIdProvider``: ``AzureFunctionsWebHost__hostid``, else (locally) the machine
    name and a hash of the app's path."""
    configured = next(
        (value for key, value in environ.items() if key.casefold() == HOST_ID_SETTING.casefold()),
        None,
    )
    if configured is not None:
        return configured
    machine = "".join(c for c in socket.gethostname().split(".")[0] if c.isalnum())
    value = f"{machine}-{abs(_stable_hash(str(script_path)))}"
    return value[:MAXIMUM_HOST_ID_LENGTH].lower().rstrip("-")


class ScheduleMonitor(Protocol):
    """Where timer status is kept (the extension's ``ScheduleMonitor``)."""

    async def get_status(self, timer: str) -> ScheduleStatus | None: ...

    async def update_status(self, timer: str, status: ScheduleStatus) -> None: ...


class StorageScheduleMonitor:
    """Timer status blobs on the app's storage account (``StorageScheduleMonitor``)."""

    def __init__(self, connection_string: str, host_id: str) -> None:
        self._connection_string = connection_string
        self._host_id = host_id
        self._service: BlobServiceClient | None = None
        self._container_ready = False

    def _blob_name(self, timer: str) -> str:
        return f"timers/{self._host_id}/{timer}/status"

    def _container(self) -> ContainerClient:
        if self._service is None:
            self._service = BlobServiceClient.from_connection_string(
                self._connection_string, logger=_sdk_logger
            )
        return self._service.get_container_client(HOSTS_CONTAINER)

    async def get_status(self, timer: str) -> ScheduleStatus | None:
        """The recorded status; ``None`` if none was recorded yet."""
        container = self._container()
        try:
            downloader = await container.download_blob(self._blob_name(timer))
            text = (await downloader.readall()).decode("utf-8-sig")
        except ResourceNotFoundError:
            return None
        return ScheduleStatus.from_json(json.loads(text))

    async def update_status(self, timer: str, status: ScheduleStatus) -> None:
        """Record ``status``; best effort, as in the host (a failure is logged)."""
        container = self._container()
        try:
            if not self._container_ready:
                with contextlib.suppress(ResourceExistsError):
                    await container.create_container()
                self._container_ready = True
            body = json.dumps(status.to_json(), separators=(",", ":")).encode("utf-8")
            await container.upload_blob(self._blob_name(timer), body, overwrite=True)
        except Exception as error:
            logger.error(
                "Function '%s' failed to update the timer trigger status: %s", timer, error
            )

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = None


async def check_past_due(
    monitor: ScheduleMonitor,
    timer: str,
    now: datetime,
    schedule: TimerSchedule,
    last_status: ScheduleStatus | None,
) -> timedelta:
    """``ScheduleMonitor.CheckPastDueAsync``: how late the recorded next occurrence is (zero if
    not late). Records an initial status for a new timer and re-bases one whose schedule
    changed (``last_status`` is updated in place, as in the host)."""
    if last_status is None:
        next_occurrence = schedule.next_occurrence(now)
        await monitor.update_status(timer, ScheduleStatus(DEFAULT_TIME, next_occurrence, now))
        recorded = next_occurrence
    else:
        if last_status.last != DEFAULT_TIME:
            expected, last_updated = schedule.next_occurrence(last_status.last), last_status.last
        elif last_status.last_updated != DEFAULT_TIME:
            expected = schedule.next_occurrence(last_status.last_updated)
            last_updated = last_status.last_updated
        else:
            expected, last_updated = schedule.next_occurrence(now), now
        if last_status.next != expected:
            if now > expected:
                expected, last_updated = schedule.next_occurrence(now), now
            last_status.last = DEFAULT_TIME
            last_status.next = expected
            last_status.last_updated = last_updated
            await monitor.update_status(timer, last_status)
        recorded = last_status.next
    return now - recorded if now > recorded else timedelta(0)
