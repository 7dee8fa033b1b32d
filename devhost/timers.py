"""Timer triggers: each timer function on its schedule, as the timer extension runs it.

One :class:`TimerListener` per function follows the extension's ``TimerListener``:

* on start it reads the recorded status (when monitored) and invokes at once if an occurrence
  was missed while devhost was down (``IsPastDue``), else if ``run_on_startup`` is set;
* it waits for the next occurrence, invokes, then computes the next one from the time the
  invocation *started*. Invocations of one timer never overlap: one that outlasts the next
  occurrence is followed at once by a single catch-up run (missed occurrences are not
  queued), as the host's listener and its singleton lock do;
* after each run it records ``Last``/``Next`` in storage (:mod:`devhost.timer_monitor`).

:meth:`Timers.invoke_now` is the admin API's on-demand run (``POST /admin/functions/{name}``):
it goes around the listener, as ``ScriptHost.CallAsync`` does, so it is neither serialized
with scheduled runs nor recorded as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from .config import ConfigError, resolve_connection_string, resolve_whole_setting
from .loader import AppIndexError, FunctionInfo
from .timer_monitor import (
    ScheduleMonitor,
    StorageScheduleMonitor,
    check_past_due,
    host_id,
    timer_name,
)
from .timer_schedule import (
    DEFAULT_TIME,
    NEVER,
    ScheduleError,
    ScheduleStatus,
    TimerSchedule,
    create_schedule,
    dotnet_round_trip,
    format_next_occurrences,
    monitor_disabled_by_frequency,
    timer_info_json,
)

__all__ = ["TimerFunction", "TimerListener", "Timers"]

HOSTING_STORAGE = "Storage"
"""``AzureWebJobsStorage``: where the host's schedule monitor keeps timer status."""
LISTENER_RETRY_SECONDS = 5.0
STOP_WAIT_SECONDS = 10.0
"""How long stopping waits for a running timer invocation before the worker is stopped."""

Execute = Callable[[FunctionInfo, str, str, dict[str, str]], Awaitable[object]]
"""Invoke a timer function: its ``TimerInfo`` JSON, the reason and the trigger details to log.
It logs failures itself; it may raise, which only ends that invocation."""


class Log(Protocol):
    def __call__(self, message: str, stream: TextIO | None = None) -> None: ...


@dataclass(frozen=True)
class TimerFunction:
    """A timer function with its schedule resolved."""

    info: FunctionInfo
    schedule: TimerSchedule
    monitored: bool
    run_on_startup: bool

    @property
    def log_name(self) -> str:
        return f"Functions.{self.info.name}"

    @property
    def lookup_name(self) -> str:
        return timer_name(self.info.name)


@dataclass(frozen=True)
class _Startup:
    """An invocation due at once when the listener starts (``StartupInvocationContext``)."""

    past_due: bool
    original_schedule: datetime | None = None


class TimerListener:
    """One timer function's schedule (the extension's ``TimerListener``)."""

    def __init__(
        self,
        function: TimerFunction,
        monitor: ScheduleMonitor | None,
        execute: Execute,
        log: Log,
    ) -> None:
        self.function = function
        self.monitor = monitor if function.monitored else None
        self.status: ScheduleStatus | None = None
        self._execute = execute
        self._log = log
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"timer {self.function.info.name}"
        )

    async def stop(self) -> None:
        """Stop scheduling, then wait (bounded) for a running invocation to finish."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._running is not None and not self._running.done():
            await asyncio.wait({self._running}, timeout=STOP_WAIT_SECONDS)

    async def _run(self) -> None:
        startup = await self._start_listener()
        if startup is not None:
            await self._fire(
                datetime.now(),
                past_due=startup.past_due,
                run_on_startup=not startup.past_due,
                original_schedule=startup.original_schedule,
            )
        while True:
            assert self.status is not None
            due = self.status.next
            if due == NEVER:
                await asyncio.Event().wait()  # until stopped
            await asyncio.sleep(max(due.timestamp() - datetime.now().timestamp(), 0.0))
            await self._fire(datetime.now())

    async def _start_listener(self) -> _Startup | None:
        """``StartAsync``, retried while the status cannot be read (storage not up yet)."""
        while True:
            try:
                return await self._initialize()
            except Exception as error:
                self._log(
                    f"The listener for function '{self.function.log_name}' was unable to start. "
                    f"{type(error).__name__}: {error}",
                    stream=sys.stderr,
                )
                await asyncio.sleep(LISTENER_RETRY_SECONDS)

    async def _initialize(self) -> _Startup | None:
        function, schedule = self.function, self.function.schedule
        now = datetime.now()
        past_due = False
        if self.monitor is not None:
            self.status = await self.monitor.get_status(function.lookup_name)
            late = await check_past_due(
                self.monitor, function.lookup_name, now, schedule, self.status
            )
            past_due = late > timedelta(0)
        if self.status is None:
            self.status = ScheduleStatus(DEFAULT_TIME, schedule.next_occurrence(now), DEFAULT_TIME)
        occurrences = format_next_occurrences(schedule, 5, now)
        self._log(
            f"The next 5 occurrences of the '{function.log_name}' schedule ({schedule}) will be:"
            f"\n{occurrences.rstrip()}"
        )
        if past_due:
            return _Startup(past_due=True, original_schedule=self.status.next)
        if function.run_on_startup:
            return _Startup(past_due=False)
        return None

    async def _fire(
        self,
        invocation_time: datetime,
        *,
        past_due: bool = False,
        run_on_startup: bool = False,
        original_schedule: datetime | None = None,
    ) -> None:
        """Run one invocation; cancelling the caller (stopping) lets it finish."""
        self._running = asyncio.get_running_loop().create_task(
            self._invoke(invocation_time, past_due, run_on_startup, original_schedule)
        )
        try:
            await asyncio.shield(self._running)
        except Exception as error:  # the schedule goes on, as in ``HandleTimerEvent``
            self._log(
                f"Error occurred during scheduled invocation for '{self.function.log_name}'. "
                f"{type(error).__name__}: {error}",
                stream=sys.stderr,
            )

    async def _invoke(
        self,
        invocation_time: datetime,
        past_due: bool,
        run_on_startup: bool,
        original_schedule: datetime | None,
    ) -> None:
        """``InvokeJobFunction``: invoke, then record the status the next occurrence
        follows from."""
        if self._stopping:
            return
        function, schedule = self.function, self.function.schedule
        assert self.status is not None
        details: dict[str, str] = {}
        if past_due:
            details["UnscheduledInvocationReason"] = "IsPastDue"
        elif run_on_startup:
            details["UnscheduledInvocationReason"] = "RunOnStartup"
        if original_schedule is not None:
            details["OriginalSchedule"] = dotnet_round_trip(original_schedule)
        shown_status = self.status if self.monitor is not None else None
        timer_json = timer_info_json(schedule, shown_status, past_due=past_due)
        reason = f"Timer fired at {dotnet_round_trip(datetime.now())}"
        with contextlib.suppress(Exception):  # failures are logged; the schedule goes on
            await self._execute(function.info, timer_json, reason, details)
        # Fired a little early (clock skew): count from the occurrence, so that it is not
        # scheduled a second time.
        adjusted = invocation_time
        if not past_due and not run_on_startup and self.status.next > invocation_time:
            adjusted = self.status.next
        self.status = ScheduleStatus(adjusted, schedule.next_occurrence(adjusted), adjusted)
        if self.monitor is not None:
            await self.monitor.update_status(function.lookup_name, self.status)


class Timers:
    """The app's timer functions: their listeners, the schedule monitor, on-demand runs."""

    def __init__(
        self,
        functions: list[TimerFunction],
        monitor: StorageScheduleMonitor | None,
        execute: Execute,
        log: Log,
    ) -> None:
        self.monitor = monitor
        self._execute = execute
        self._log = log
        self.listeners = {f.info.name: TimerListener(f, monitor, execute, log) for f in functions}
        self._on_demand: set[asyncio.Task[None]] = set()

    @classmethod
    def create(
        cls,
        functions: Iterable[FunctionInfo],
        environ: Mapping[str, str],
        *,
        app_dir: Path,
        execute: Execute,
        log: Log,
    ) -> Timers:
        """Resolve every timer's schedule (``%Setting%`` from the app settings) like
        ``TimerSchedule.Create``; raises ``AppIndexError`` for schedules the host would refuse
        and ``ConfigError`` when monitored timers have no ``AzureWebJobsStorage``."""
        timers: list[TimerFunction] = []
        errors: list[str] = []
        now = datetime.now()
        for info in functions:
            if info.timer is None:
                continue
            expression = resolve_whole_setting(info.timer.schedule, environ)
            try:
                schedule = create_schedule(expression)
            except ScheduleError as error:
                errors.append(f"{info.name}: {error}")
                continue
            monitored = info.timer.use_monitor and not monitor_disabled_by_frequency(schedule, now)
            timers.append(TimerFunction(info, schedule, monitored, info.timer.run_on_startup))
        if errors:
            listed = "\n".join(f"  {line}" for line in errors)
            raise AppIndexError(f"The following {len(errors)} functions are in error:\n{listed}")
        monitor = None
        names = [t.info.name for t in timers if t.monitored]
        if names:
            try:
                connection = resolve_connection_string(HOSTING_STORAGE, environ)
            except ConfigError as error:
                raise ConfigError(
                    f"{', '.join(names)}: a monitored timer (use_monitor) records its schedule "
                    f"status in AzureWebJobsStorage. {error}"
                ) from None
            monitor = StorageScheduleMonitor(connection, host_id(environ, app_dir))
        return cls(timers, monitor, execute, log)

    def find(self, name: str) -> TimerListener | None:
        """The timer function called ``name``, ignoring case (``GetFunctionOrNull``)."""
        folded = name.casefold()
        return next((t for n, t in self.listeners.items() if n.casefold() == folded), None)

    async def start(self) -> None:
        for listener in self.listeners.values():
            listener.start()

    async def stop(self) -> None:
        await asyncio.gather(*(listener.stop() for listener in self.listeners.values()))
        if self._on_demand:
            await asyncio.wait(self._on_demand, timeout=STOP_WAIT_SECONDS)
        if self.monitor is not None:
            await self.monitor.close()

    def invoke_now(self, listener: TimerListener, reason: str) -> None:
        """Run ``listener``'s function once, in the background (the admin API's 202)."""
        task = asyncio.get_running_loop().create_task(self._invoke_now(listener, reason))
        self._on_demand.add(task)
        task.add_done_callback(self._on_demand.discard)

    async def _invoke_now(self, listener: TimerListener, reason: str) -> None:
        """``TimerTriggerBinding.BindAsync`` without a ``TimerInfo``: the recorded status (when
        monitored), not past due."""
        function = listener.function
        try:
            status = None
            if listener.monitor is not None:
                status = await listener.monitor.get_status(function.lookup_name)
            timer_json = timer_info_json(function.schedule, status, past_due=False)
            await self._execute(function.info, timer_json, reason, {})
        except Exception as error:
            self._log(
                f"Invoking '{function.log_name}' through the admin API failed: "
                f"{type(error).__name__}: {error}",
                stream=sys.stderr,
            )
