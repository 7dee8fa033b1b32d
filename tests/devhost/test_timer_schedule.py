"""Timer schedules, statuses and the ``TimerInfo`` a function receives, as the timer extension
builds them; the schedule monitor's past-due check; the host ID its status blobs are kept
under."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequestConverter

from devhost.timer_monitor import check_past_due, host_id, timer_name
from devhost.timer_schedule import (
    DEFAULT_TIME,
    ConstantSchedule,
    CronSchedule,
    ScheduleError,
    ScheduleStatus,
    create_schedule,
    format_next_occurrences,
    monitor_disabled_by_frequency,
    parse_date,
    timer_info_json,
)


def test_cron_and_timespan_schedules() -> None:
    cron = create_schedule("0 */5 * * * *")
    constant = create_schedule("01:30:00")

    assert isinstance(cron, CronSchedule)
    assert str(cron) == "Cron: '0 0,5,10,15,20,25,30,35,40,45,50,55 * * * *'"
    assert cron.next_occurrence(datetime(2024, 5, 1, 10, 3, 7)) == datetime(2024, 5, 1, 10, 5)
    assert isinstance(constant, ConstantSchedule)
    assert str(constant) == "Constant: 01:30:00"
    assert constant.next_occurrence(datetime(2024, 5, 1, 10, 3)) == datetime(2024, 5, 1, 11, 33)
    assert create_schedule("1.02:03:04") == ConstantSchedule(
        timedelta(days=1, hours=2, minutes=3, seconds=4)
    )


@pytest.mark.parametrize("expression", ["every minute", "%UNSET_SETTING%", "1 2 3", "1:2:3:4:5"])
def test_a_schedule_the_host_would_not_recognize_is_refused(expression: str) -> None:
    with pytest.raises(ScheduleError, match="schedule expression"):
        create_schedule(expression)


@pytest.mark.parametrize(
    ("expression", "disabled"),
    [
        ("* * * * * *", True),
        ("*/10 * * * * *", True),
        ("0 * * * * *", False),
        ("* * * * *", False),
        ("0 */5 * * * *", False),
        ("* 0 * * * *", False),
        ("00:00:30", True),
        ("00:01:00", False),
    ],
)
def test_monitoring_is_off_for_schedules_under_a_minute(expression: str, disabled: bool) -> None:
    schedule = create_schedule(expression)

    assert monitor_disabled_by_frequency(schedule, datetime(2024, 5, 1, 10, 0, 30)) is disabled


def test_the_timer_info_is_what_timer_request_reads() -> None:
    status = ScheduleStatus(
        last=datetime(2024, 5, 1, 10, 0),
        next=datetime(2024, 5, 1, 10, 5),
        last_updated=datetime(2024, 5, 1, 10, 0, 0, 120_000),
    )
    text = timer_info_json(create_schedule("0 */5 * * * *"), status, past_due=True)

    timer = TimerRequestConverter.decode(Datum(text, "json"), trigger_metadata={})

    assert timer.past_due is True
    assert timer.schedule == {"AdjustForDST": True}
    assert timer.schedule_status["Next"].startswith("2024-05-01T10:05:00")
    assert timer.schedule_status["LastUpdated"].startswith("2024-05-01T10:00:00.12")
    assert set(json.loads(text)) == {"Schedule", "ScheduleStatus", "IsPastDue"}


def test_an_unmonitored_timer_gets_no_status() -> None:
    text = timer_info_json(create_schedule("00:00:10"), None, past_due=False)

    timer = TimerRequestConverter.decode(Datum(text, "json"), trigger_metadata={})

    assert json.loads(text)["ScheduleStatus"] is None
    assert timer.schedule_status == {}
    assert timer.schedule == {"AdjustForDST": False}
    assert timer.past_due is False


def test_a_status_reads_back_as_written_including_the_hosts_own_format() -> None:
    status = ScheduleStatus(DEFAULT_TIME, datetime(2024, 5, 1, 10, 5, 0, 250_000), DEFAULT_TIME)

    assert ScheduleStatus.from_json(status.to_json()) == status
    assert parse_date("2024-05-01T10:05:00.2500000+00:00") == datetime(
        2024, 5, 1, 10, 5, 0, 250_000
    )


def test_next_occurrences_are_listed_like_the_host() -> None:
    listed = format_next_occurrences(create_schedule("0 0 12 * * *"), 2, datetime(2024, 5, 1, 10))

    assert listed.splitlines()[0].startswith("05/01/2024 12:00:00")
    assert len(listed.splitlines()) == 2


class MemoryMonitor:
    def __init__(self, status: ScheduleStatus | None = None) -> None:
        self.status = status
        self.updates: list[ScheduleStatus] = []

    async def get_status(self, timer: str) -> ScheduleStatus | None:
        return self.status

    async def update_status(self, timer: str, status: ScheduleStatus) -> None:
        self.updates.append(ScheduleStatus(status.last, status.next, status.last_updated))


HOURLY = create_schedule("0 0 * * * *")
NOW = datetime(2024, 5, 1, 10, 30)


def past_due(monitor: MemoryMonitor, status: ScheduleStatus | None) -> timedelta:
    return asyncio.run(check_past_due(monitor, "Host.Functions.x", NOW, HOURLY, status))


def test_a_new_timer_records_its_first_occurrence_and_is_not_past_due() -> None:
    monitor = MemoryMonitor()

    assert past_due(monitor, None) == timedelta(0)
    assert monitor.updates == [ScheduleStatus(DEFAULT_TIME, datetime(2024, 5, 1, 11), NOW)]


def test_a_missed_occurrence_is_past_due() -> None:
    status = ScheduleStatus(
        datetime(2024, 5, 1, 8), datetime(2024, 5, 1, 9), datetime(2024, 5, 1, 8)
    )
    monitor = MemoryMonitor(status)

    assert past_due(monitor, status) == timedelta(hours=1, minutes=30)
    assert monitor.updates == []


def test_a_changed_schedule_is_rebased_on_now_instead_of_past_due() -> None:
    status = ScheduleStatus(
        datetime(2024, 5, 1, 8), datetime(2024, 5, 1, 8, 5), datetime(2024, 5, 1, 8)
    )  # recorded under an every-five-minutes schedule
    monitor = MemoryMonitor(status)

    assert past_due(monitor, status) == timedelta(0)
    assert monitor.updates == [ScheduleStatus(DEFAULT_TIME, datetime(2024, 5, 1, 11), NOW)]


def test_the_host_id_is_the_setting_or_the_machine_and_the_app_path() -> None:
    app = Path("/home/someone/app")

    assert host_id({"AzureFunctionsWebHost__hostid": "my-host"}, app) == "my-host"
    derived = host_id({}, app)
    assert derived == host_id({}, app) != host_id({}, Path("/home/someone/other"))
    assert len(derived) <= 32 and derived == derived.lower() and not derived.endswith("-")
    assert timer_name("tick") == "Host.Functions.tick"
