"""NCRONTAB expressions, parsed and stepped exactly as the Functions host does (NCrontab).

The timer extension hands the schedule to NCrontab's ``CrontabSchedule``: six fields
(second, minute, hour, day, month, day of week) or five without seconds; each field is ``*``,
a number, a range ``a-b`` (reversed ranges are swapped), a list ``a,b``, a step ``*/n``,
``a-b/n`` or ``a/n`` (from ``a`` to the field's maximum); months and days of week also take
names or their prefixes (``Jan``, ``Mon``); Sunday is 0 and 7 is refused. Day of month and day
of week must *both* match (unlike Vixie cron). Occurrences are wall-clock times after the base
time, with its fraction of a second ignored, as ``GetNextOccurrence`` computes them; this module
ports that algorithm rather than reinventing it, so devhost fires when the host would.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime

__all__ = ["CrontabError", "CrontabField", "CrontabSchedule"]

_NIL = -1
_MAX_YEAR = 9999
_INTEGER = re.compile(r"^[\t-\r ]*[+-]?[0-9]+[\t-\r ]*$")
""".NET ``int.Parse`` (``NumberStyles.Integer``): white space, an optional sign, digits."""


class CrontabError(ValueError):
    """The expression is not valid NCRONTAB (NCrontab's ``CrontabException``)."""


@dataclass(frozen=True)
class _Kind:
    name: str
    min_value: int
    max_value: int
    names: tuple[str, ...] = ()


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
SECOND = _Kind("Second", 0, 59)
MINUTE = _Kind("Minute", 0, 59)
HOUR = _Kind("Hour", 0, 23)
DAY = _Kind("Day", 1, 31)
MONTH = _Kind("Month", 1, 12, _MONTHS)
DAY_OF_WEEK = _Kind("DayOfWeek", 0, 6, _DAYS)
_KINDS = (SECOND, MINUTE, HOUR, DAY, MONTH, DAY_OF_WEEK)


def _parse_int(text: str) -> int:
    if not _INTEGER.match(text):
        raise CrontabError(f"'{text}' is not a number.")
    return int(text.strip())


class CrontabField:
    """One field: the set of values it allows (NCrontab's ``CrontabField``)."""

    def __init__(self, kind: _Kind, expression: str) -> None:
        self.kind = kind
        self._bits = [False] * (kind.max_value - kind.min_value + 1)
        self._min_set = 1 << 31
        self._max_set = -1
        try:
            self._parse(expression)
        except CrontabError as error:
            raise CrontabError(
                f"'{expression}' is not a valid [{kind.name}] crontab field expression. {error}"
            ) from None

    def _parse(self, text: str) -> None:
        if not text:
            raise CrontabError("A crontab field value cannot be empty.")
        if text.find(",") > 0:
            for token in text.split(","):
                self._parse(token)
            return
        every: int | None = None
        slash = text.find("/")
        if slash > 0:
            every = _parse_int(text[slash + 1 :])
            text = text[:slash]
        if text == "*":
            self._accumulate(-1, -1, 1 if every is None else every)
            return
        dash = text.find("-")
        if dash > 0:
            first = self._value(text[:dash])
            last = self._value(text[dash + 1 :])
            self._accumulate(first, last, 1 if every is None else every)
            return
        value = self._value(text)
        if every is None:
            self._accumulate(value, value, 1)
        else:
            self._accumulate(value, self.kind.max_value, every)

    def _value(self, text: str) -> int:
        kind = self.kind
        if not text:
            raise CrontabError("A crontab field value cannot be empty.")
        if "0" <= text[0] <= "9":
            return _parse_int(text)
        if not kind.names:
            raise CrontabError(
                f"'{text}' is not a valid [{kind.name}] crontab field value. It must be a numeric "
                f"value between {kind.min_value} and {kind.max_value} (all inclusive)."
            )
        for index, name in enumerate(kind.names):
            if name.casefold().startswith(text.casefold()):
                return index + kind.min_value
        raise CrontabError(
            f"'{text}' is not a known value name. Use one of the following: "
            f"{', '.join(kind.names)}."
        )

    def _accumulate(self, start: int, end: int, interval: int) -> None:
        low, high = self.kind.min_value, self.kind.max_value
        if start == end:
            if start < 0:
                if interval <= 1:
                    self._bits = [True] * len(self._bits)
                    self._min_set, self._max_set = low, high
                    return
                start, end = low, high
            else:
                self._check_range(start)
        else:
            if start > end:
                start, end = end, start
            if start < 0:
                start = low
            else:
                self._check_range(start)
            if end < 0:
                end = high
            else:
                self._check_range(end)
        interval = max(interval, 1)
        index = start - low
        while index <= end - low:
            self._bits[index] = True
            index += interval
        self._min_set = min(self._min_set, start)
        self._max_set = max(self._max_set, index + low - interval)

    def _check_range(self, value: int) -> None:
        kind = self.kind
        if value < kind.min_value or value > kind.max_value:
            side = "lower than the minimum" if value < kind.min_value else "higher than the maximum"
            raise CrontabError(
                f"{value} is {side} allowable value for the [{kind.name}] field. Value must be "
                f"between {kind.min_value} and {kind.max_value} (all inclusive)."
            )

    def first(self) -> int:
        return self._min_set if self._min_set < (1 << 31) else _NIL

    def next(self, start: int) -> int:
        """The first allowed value at or after ``start``; -1 when there is none."""
        if start < self._min_set:
            return self._min_set
        low = self.kind.min_value
        for index in range(start - low, self._max_set - low + 1):
            if self._bits[index]:
                return index + low
        return _NIL

    def contains(self, value: int) -> bool:
        return self._bits[value - self.kind.min_value]

    @property
    def is_wildcard(self) -> bool:
        """Every value allowed (NCrontab formats the field as ``*``)."""
        return all(self._bits)

    def __str__(self) -> str:
        """NCrontab's ``Format`` (numbers, runs as ranges, ``*`` for everything)."""
        if self.is_wildcard:
            return "*"
        parts: list[str] = []
        value = self.first()
        while value != _NIL:
            first = last = value
            value = self.next(last + 1)
            while value != _NIL and value - last == 1:
                last = value
                value = self.next(last + 1)
            parts.append(str(first) if first == last else f"{first}-{last}")
        return ",".join(parts)


class CrontabSchedule:
    """A parsed expression and its occurrences (NCrontab's ``CrontabSchedule``)."""

    def __init__(self, expression: str, *, including_seconds: bool) -> None:
        tokens = [token for token in expression.split(" ") if token]
        expected = 6 if including_seconds else 5
        if len(tokens) != expected:
            components = (
                "6 components of a schedule in the sequence of seconds, minutes, hours, days, "
                "months, and days of week"
                if including_seconds
                else "5 components of a schedule in the sequence of minutes, hours, days, months, "
                "and days of week"
            )
            raise CrontabError(
                f"'{expression}' is an invalid crontab expression. It must contain {components}."
            )
        kinds = _KINDS if including_seconds else _KINDS[1:]
        fields = [CrontabField(kind, token) for kind, token in zip(kinds, tokens, strict=True)]
        self.seconds = fields.pop(0) if including_seconds else None
        self.minutes, self.hours, self.days, self.months, self.days_of_week = fields

    @classmethod
    def parse(cls, expression: str) -> CrontabSchedule:
        """The timer extension's ``CronSchedule.TryCreate``: seconds unless exactly 5 fields."""
        including_seconds = len([token for token in expression.split(" ") if token]) != 5
        return cls(expression, including_seconds=including_seconds)

    @property
    def fields(self) -> list[CrontabField]:
        head = [self.seconds] if self.seconds is not None else []
        return [*head, self.minutes, self.hours, self.days, self.months, self.days_of_week]

    def __str__(self) -> str:
        return " ".join(str(field) for field in self.fields)

    def next_occurrence(self, base: datetime, end: datetime = datetime.max) -> datetime | None:
        """The first occurrence after ``base`` and before ``end``; ``None`` if there is none."""
        while True:
            found, retry = self._try_next(base, end)
            if retry is None:
                return found
            base = retry

    def occurrences(self, base: datetime, end: datetime) -> list[datetime]:
        """``GetNextOccurrences(base, end)``: every occurrence after ``base``, before ``end``."""
        found: list[datetime] = []
        occurrence = self.next_occurrence(base, end)
        while occurrence is not None and occurrence < end:
            found.append(occurrence)
            occurrence = self.next_occurrence(occurrence, end)
        return found

    def _try_next(self, base: datetime, end: datetime) -> tuple[datetime | None, datetime | None]:
        """``TryGetNextOccurrence``: (the occurrence, or None) or a later base to retry from
        (the day matched but not its day of week)."""
        seconds = self.seconds if self.seconds is not None else _SECOND_ZERO
        minutes, hours, days, months = self.minutes, self.hours, self.days, self.months
        year, month, day = base.year, base.month, base.day
        hour, minute = base.hour, base.minute

        second = seconds.next(base.second + 1)
        if second == _NIL:
            second = seconds.first()
            minute += 1

        minute = minutes.next(minute)
        if minute == _NIL:
            second = seconds.first()
            minute = minutes.first()
            hour += 1
        elif minute > base.minute:
            second = seconds.first()

        hour = hours.next(hour)
        if hour == _NIL:
            minute = minutes.first()
            hour = hours.first()
            day += 1
        elif hour > base.hour:
            second = seconds.first()
            minute = minutes.first()

        day = days.next(day)
        while True:  # NCrontab's ``RetryDayMonth``
            if day == _NIL:
                second = seconds.first()
                minute = minutes.first()
                hour = hours.first()
                day = days.first()
                month += 1
            elif day > base.day:
                second = seconds.first()
                minute = minutes.first()
                hour = hours.first()

            month = months.next(month)
            if month == _NIL:
                second = seconds.first()
                minute = minutes.first()
                hour = hours.first()
                day = days.first()
                month = months.first()
                year += 1
            elif month > base.month:
                second = seconds.first()
                minute = minutes.first()
                hour = hours.first()
                day = days.first()

            if year > _MAX_YEAR:
                return None, None
            date_changed = day != base.day or month != base.month or year != base.year
            if day > 28 and date_changed and day > calendar.monthrange(year, month)[1]:
                if year >= end.year and month >= end.month and day >= end.day:
                    return None, None
                day = _NIL
                continue
            break

        found = datetime(year, month, day, hour, minute, second)
        if found >= end:
            return None, None
        if self.days_of_week.contains((found.weekday() + 1) % 7):  # .NET: Sunday is 0
            return found, None
        return None, datetime(year, month, day, 23, 59, 59)


_SECOND_ZERO = CrontabField(SECOND, "0")
