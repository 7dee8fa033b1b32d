"""The timer listener in process, with a recording ``execute`` instead of the worker: runs never
overlap, a late run is followed at once, a missed occurrence runs at start as past due,
``run_on_startup``, failures and stopping; and how ``Timers`` resolves the app's schedules."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import pytest

from devhost.config import ConfigError
from devhost.loader import AppIndexError, FunctionInfo, TimerTriggerInfo
from devhost.timer_schedule import ScheduleStatus, TimerSchedule, create_schedule
from devhost.timers import TimerFunction, TimerListener, Timers
from tests.devhost.conftest import run, until
from tests.devhost.test_timer_schedule import MemoryMonitor

AZURITE = "UseDevelopmentStorage=true"


class Recorder:
    """``execute``: records each run's timer JSON, details and start/end times."""

    def __init__(self, duration: float = 0.0, fail_first: bool = False) -> None:
        self.duration = duration
        self.fail_first = fail_first
        self.runs: list[dict[str, Any]] = []

    async def __call__(
        self, info: FunctionInfo, timer_json: str, reason: str, details: dict[str, str]
    ) -> bool:
        run = {"timer": json.loads(timer_json), "reason": reason, "details": details}
        run["start"] = time.monotonic()
        self.runs.append(run)
        await asyncio.sleep(self.duration)
        run["end"] = time.monotonic()
        if self.fail_first and len(self.runs) == 1:
            raise RuntimeError("the first run fails")
        return True


def log(message: str, stream: TextIO | None = None) -> None:
    pass


def listener(
    schedule: TimerSchedule,
    execute: Recorder,
    *,
    monitor: MemoryMonitor | None = None,
    run_on_startup: bool = False,
) -> TimerListener:
    timer = TimerTriggerInfo("timer", "", run_on_startup, monitor is not None)
    info = FunctionInfo("x", "timerTrigger", (), timer=timer)
    function = TimerFunction(info, schedule, monitor is not None, run_on_startup)
    return TimerListener(function, monitor, execute, log)


def test_runs_never_overlap_and_a_late_run_is_followed_at_once() -> None:
    execute = Recorder(duration=0.12)  # longer than the 50 ms schedule

    async def scenario() -> None:
        timer = listener(create_schedule("00:00:00.05"), execute)
        timer.start()
        await until(lambda: len([r for r in execute.runs if "end" in r]) >= 4, "four runs")
        await timer.stop()

    run(scenario())

    runs = [r for r in execute.runs if "end" in r]
    for earlier, later in itertools.pairwise(runs):
        assert later["start"] >= earlier["end"]
        assert later["start"] - earlier["end"] < 0.04
    assert all("Timer fired at" in r["reason"] and not r["details"] for r in runs)


def test_a_failed_run_does_not_stop_the_schedule() -> None:
    execute = Recorder(fail_first=True)

    async def scenario() -> None:
        timer = listener(create_schedule("00:00:00.02"), execute)
        timer.start()
        await until(lambda: len(execute.runs) >= 2, "a second run")
        await timer.stop()

    run(scenario())


def test_a_missed_occurrence_runs_at_start_as_past_due_and_the_status_moves_on() -> None:
    hour = datetime.now().replace(minute=0, second=0, microsecond=0)
    recorded = ScheduleStatus(hour - timedelta(hours=2), hour - timedelta(hours=1), hour)
    monitor = MemoryMonitor(recorded)
    execute = Recorder()

    async def scenario() -> None:
        timer = listener(create_schedule("0 0 * * * *"), execute, monitor=monitor)
        timer.start()
        await until(lambda: len(monitor.updates) >= 1, "the status after the run")
        await timer.stop()

    run(scenario())

    [first] = execute.runs
    assert first["timer"]["IsPastDue"] is True
    assert first["timer"]["ScheduleStatus"]["Next"].startswith(
        (hour - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert first["details"]["UnscheduledInvocationReason"] == "IsPastDue"
    assert first["details"]["OriginalSchedule"].startswith(
        (hour - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.0000000")
    )
    [status] = monitor.updates
    assert status.last > hour  # the run's own time, not the missed occurrence
    assert status.next == status.last.replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=1
    )


def test_run_on_startup_runs_once_without_a_status_when_unmonitored() -> None:
    execute = Recorder()

    async def scenario() -> None:
        timer = listener(create_schedule("0 0 0 1 1 *"), execute, run_on_startup=True)
        timer.start()
        await until(lambda: len(execute.runs) >= 1, "the startup run")
        await asyncio.sleep(0.05)
        await timer.stop()

    run(scenario())

    [first] = execute.runs
    assert first["details"] == {"UnscheduledInvocationReason": "RunOnStartup"}
    assert first["timer"] == {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": None,
        "IsPastDue": False,
    }


def test_stopping_lets_a_running_invocation_finish() -> None:
    execute = Recorder(duration=0.3)

    async def scenario() -> None:
        timer = listener(create_schedule("0 0 0 1 1 *"), execute, run_on_startup=True)
        timer.start()
        await until(lambda: len(execute.runs) >= 1, "the startup run")
        await timer.stop()
        assert "end" in execute.runs[0]

    run(scenario())


def timer_info(name: str, schedule: str, *, use_monitor: bool = True) -> FunctionInfo:
    return FunctionInfo(
        name, "timerTrigger", (), timer=TimerTriggerInfo("timer", schedule, False, use_monitor)
    )


def create(functions: list[FunctionInfo], environ: dict[str, str]) -> Timers:
    return Timers.create(functions, environ, app_dir=Path("/app"), execute=Recorder(), log=log)


def test_schedules_are_resolved_from_app_settings() -> None:
    environ = {"nightly": "0 30 2 * * *", "AzureWebJobsStorage": AZURITE}
    timers = create([timer_info("nightly", "%NIGHTLY%")], environ)

    listener = timers.find("NIGHTLY")
    assert listener is not None
    assert str(listener.function.schedule) == "Cron: '0 30 2 * * *'"


def test_monitored_timers_need_the_hosting_storage_and_others_do_not() -> None:
    unmonitored = [
        timer_info("often", "*/10 * * * * *"),
        timer_info("daily", "0 0 0 * * *", use_monitor=False),
    ]

    assert create(unmonitored, {}).monitor is None
    with pytest.raises(ConfigError, match=r"daily.*AzureWebJobsStorage"):
        create([timer_info("daily", "0 0 0 * * *")], {})
    monitored = create([timer_info("daily", "0 0 0 * * *")], {"AzureWebJobsStorage": AZURITE})
    assert monitored.monitor is not None


def test_every_invalid_schedule_is_reported() -> None:
    functions = [timer_info("a", "sometimes"), timer_info("b", "%MISSING%")]

    with pytest.raises(AppIndexError) as refused:
        create(functions, {})

    assert "The following 2 functions are in error" in str(refused.value)
    assert "b: The schedule expression '%MISSING%' was not recognized" in str(refused.value)
