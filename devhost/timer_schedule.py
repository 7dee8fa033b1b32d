"""A timer function's schedule and status, as the timer extension defines them.

``TimerSchedule.Create``: the ``schedule`` of the binding, ``%Setting%`` resolved from the app
settings, is an NCRONTAB expression (:mod:`devhost.ncrontab`) or else a .NET ``TimeSpan``
(``hh:mm:ss``: a constant interval). Schedule monitoring (``use_monitor``, on by default) is
switched off for schedules firing more often than once a minute. Times are local wall-clock
times (``DateTime.Now``), as in the host; the host's extra adjustments for the ambiguous hour
when daylight saving time ends are not reproduced.

``TimerInfo`` is what the function receives: the host serializes it with Newtonsoft.Json
(``{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{...}|null,"IsPastDue":false}``) and
``azure.functions.TimerRequest`` reads it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .ncrontab import CrontabError, CrontabSchedule

__all__ = [
    "DEFAULT_TIME",
    "NEVER",
    "ConstantSchedule",
    "CronSchedule",
    "ScheduleError",
    "ScheduleStatus",
    "TimerSchedule",
    "create_schedule",
    "dotnet_round_trip",
    "format_next_occurrences",
    "monitor_disabled_by_frequency",
    "timer_info_json",
]

DEFAULT_TIME = datetime.min
"""``default(DateTime)``: a status time that was never set."""
NEVER = datetime.max
"""The next occurrence of a schedule that has none (NCrontab's ``DateTime.MaxValue``)."""
_OCCURRENCE_FORMAT = "%m/%d/%Y %H:%M:%S"


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class CronSchedule:
    crontab: CrontabSchedule
    adjust_for_dst: bool = True

    def next_occurrence(self, now: datetime) -> datetime:
        """The next occurrence after ``now`` (local wall-clock time), or :data:`NEVER`."""
        return self.crontab.next_occurrence(now) or NEVER

    def __str__(self) -> str:
        return f"Cron: '{self.crontab}'"


@dataclass(frozen=True)
class ConstantSchedule:
    interval: timedelta
    adjust_for_dst: bool = False

    def next_occurrence(self, now: datetime) -> datetime:
        try:
            return now + self.interval
        except OverflowError:
            return NEVER

    def __str__(self) -> str:
        return f"Constant: {_format_timespan(self.interval)}"


TimerSchedule = CronSchedule | ConstantSchedule


def create_schedule(expression: str) -> TimerSchedule:
    """``TimerSchedule.Create`` for a resolved expression."""
    try:
        return CronSchedule(CrontabSchedule.parse(expression))
    except CrontabError:
        pass
    interval = _parse_timespan(expression)
    if interval is None:
        raise ScheduleError(
            f"The schedule expression '{expression}' was not recognized as a valid cron "
            "expression or timespan string."
        )
    if interval <= timedelta(0):
        raise ScheduleError(
            f"The schedule expression '{expression}' is not a positive interval (devhost would "
            "invoke the function without pause)."
        )
    return ConstantSchedule(interval)


def monitor_disabled_by_frequency(schedule: TimerSchedule, now: datetime) -> bool:
    """``ShouldDisableScheduleMonitor``: the schedule fires more than once a minute."""
    if isinstance(schedule, ConstantSchedule):
        return schedule.interval < timedelta(minutes=1)
    crontab = schedule.crontab
    # The host splits the schedule's text and skips its first field, seconds or not.
    if not all(field.is_wildcard for field in crontab.fields[1:]):
        return False
    return len(crontab.occurrences(now, now + timedelta(minutes=1))) > 1


def format_next_occurrences(schedule: TimerSchedule, count: int, now: datetime) -> str:
    """``TimerInfo.FormatNextOccurrences``: one line per occurrence, with UTC in parentheses
    unless the local time zone is UTC."""
    lines: list[str] = []
    current = now
    for _ in range(count):
        current = schedule.next_occurrence(current)
        if current == NEVER:
            break
        universal = current.astimezone(UTC).strftime(_OCCURRENCE_FORMAT) + "Z"
        if _local_zone_is_utc(now.year):
            lines.append(universal)
        else:
            local = current.strftime(_OCCURRENCE_FORMAT) + _offset(current)
            lines.append(f"{local} ({universal})")
    return "".join(line + "\n" for line in lines)


def _local_zone_is_utc(year: int) -> bool:
    """``TimeZoneInfo.Local.HasSameRules(TimeZoneInfo.Utc)``, near enough: no offset in
    winter or summer."""
    return all(
        datetime(year, month, 1).astimezone().utcoffset() == timedelta(0) for month in (1, 7)
    )


@dataclass
class ScheduleStatus:
    """``ScheduleStatus``: the last and next occurrences a timer recorded (local times)."""

    last: datetime
    next: datetime
    last_updated: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "Last": newtonsoft_date(self.last),
            "Next": newtonsoft_date(self.next),
            "LastUpdated": newtonsoft_date(self.last_updated),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleStatus:
        return cls(
            last=parse_date(data.get("Last")),
            next=parse_date(data.get("Next")),
            last_updated=parse_date(data.get("LastUpdated")),
        )


def timer_info_json(
    schedule: TimerSchedule, status: ScheduleStatus | None, *, past_due: bool
) -> str:
    """The ``TimerInfo`` JSON the host sends the worker (Newtonsoft.Json, no formatting)."""
    payload = {
        "Schedule": {"AdjustForDST": schedule.adjust_for_dst},
        "ScheduleStatus": status.to_json() if status is not None else None,
        "IsPastDue": past_due,
    }
    return json.dumps(payload, separators=(",", ":"))


# -- .NET date and time text ---------------------------------------------------------------------


def _offset(moment: datetime) -> str:
    """``K`` of a local ``DateTime``: the local UTC offset at that time, ``+hh:mm``."""
    try:
        offset = moment.astimezone().utcoffset() or timedelta(0)
    except (OverflowError, ValueError):  # the first or last representable day
        offset = timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def newtonsoft_date(moment: datetime) -> str:
    """A local ``DateTime`` as Newtonsoft.Json writes it (``yyyy-MM-ddTHH:mm:ss.FFFFFFFK``)."""
    if moment == DEFAULT_TIME:
        return "0001-01-01T00:00:00+00:00"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + _offset(moment)


def dotnet_round_trip(moment: datetime) -> str:
    """A local ``DateTime`` formatted with ``"o"`` (always seven fractional digits)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}0" + _offset(moment)


_DATE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_date(text: Any) -> datetime:
    """A status time as Newtonsoft.Json reads it back: converted to local time."""
    if not isinstance(text, str):
        return DEFAULT_TIME
    match = _DATE.match(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a date and time")
    whole, fraction, zone = match.groups()
    if whole.startswith("0001-01-01"):
        return DEFAULT_TIME
    moment = datetime.fromisoformat(whole)
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    if zone is None:
        return moment
    aware = datetime.fromisoformat(f"{whole}{'+00:00' if zone == 'Z' else zone}")
    return aware.replace(microsecond=moment.microsecond).astimezone().replace(tzinfo=None)


# -- .NET TimeSpan -------------------------------------------------------------------------------

_TIMESPAN_DAYS = re.compile(r"^\s*(-)?(\d+)\s*$")
_TIMESPAN_CLOCK = re.compile(
    r"^\s*(-)?(?:(\d+)[.:](?=\d+:\d+:\d+))?(\d+):(\d+)(?::(\d+)(?:\.(\d{1,7}))?)?\s*$"
)


def _parse_timespan(text: str) -> timedelta | None:
    """``TimeSpan.TryParse`` (invariant): ``d``, ``hh:mm``, ``hh:mm:ss[.fffffff]``,
    ``d.hh:mm:ss`` or ``d:hh:mm:ss``."""
    match = _TIMESPAN_DAYS.match(text)
    if match is not None:
        sign, days = match.groups()
        value = timedelta(days=int(days))
        return -value if sign else value
    match = _TIMESPAN_CLOCK.match(text)
    if match is None:
        return None
    sign, days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        return None
    value = timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds or 0),
        microseconds=int((fraction or "0").ljust(7, "0")) / 10,
    )
    return -value if sign else value


def _format_timespan(value: timedelta) -> str:
    """``TimeSpan.ToString()``: ``[-][d.]hh:mm:ss[.fffffff]``."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{f'{value.days}.' if value.days else ''}{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.microseconds:
        text += f".{value.microseconds:06d}0"
    return text
