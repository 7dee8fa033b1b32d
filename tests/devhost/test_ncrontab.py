"""NCRONTAB parsing and occurrences, checked against NCrontab's own test cases (the library the
timer extension uses), so devhost schedules fire when the Functions host's would."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from devhost.ncrontab import CrontabError, CrontabSchedule


def at(text: str) -> datetime:
    """NCrontab's test dates: ``dd/MM/yyyy HH:mm:ss``."""
    return datetime.strptime(text, "%d/%m/%Y %H:%M:%S")


@pytest.mark.parametrize(
    ("start", "expression", "expected", "seconds"),
    [
        ("01/01/2003 00:00:00", "* * * * *", "01/01/2003 00:01:00", False),
        ("01/01/2003 23:59:00", "* * * * *", "02/01/2003 00:00:00", False),
        ("31/12/2003 23:59:00", "* * * * *", "01/01/2004 00:00:00", False),
        ("28/02/2003 23:59:00", "* * * * *", "01/03/2003 00:00:00", False),
        ("28/02/2004 23:59:00", "* * * * *", "29/02/2004 00:00:00", False),
        ("01/01/2003 00:00:00", "45 * * * * *", "01/01/2003 00:00:45", True),
        ("01/01/2003 00:00:49", "45-47,48,49 * * * * *", "01/01/2003 00:01:45", True),
        ("01/01/2003 00:00:00", "2/5 * * * * *", "01/01/2003 00:00:02", True),
        ("01/01/2003 00:00:57", "2/5 * * * * *", "01/01/2003 00:01:02", True),
        ("24/02/2021 09:50:35", "* 0-1 10 * * *", "24/02/2021 10:00:00", True),
        ("01/01/2003 00:57:00", "2/5 * * * *", "01/01/2003 01:02:00", False),
        ("24/02/2021 09:50:35", "* 55 * * * *", "24/02/2021 09:55:00", True),
        ("01/01/2003 00:49:30", "6 45-47,48,49 * * * *", "01/01/2003 01:45:06", True),
        ("20/12/2003 10:00:00", " * 3/4 * * *", "20/12/2003 11:00:00", False),
        ("07/01/2003 00:00:00", "30  *  1 * *", "01/02/2003 00:30:00", False),
        ("10/07/2003 00:00:00", " *  * 30,31 * *", "30/07/2003 00:00:00", False),
        ("31/01/2000 00:00:00", "0 0 15,30,31 * *", "15/02/2000 00:00:00", False),
        ("30/04/2000 00:00:00", "0 0 15,30,31 * *", "15/05/2000 00:00:00", False),
        ("01/12/2003 05:00:00", "10 * * 6 *", "01/06/2004 00:10:00", False),
        ("01/07/2002 05:00:00", "10 * * February,April-Jun *", "01/02/2003 00:10:00", False),
        (
            "11/03/1988 14:23:00",
            "20 * * january,FeB,Mar,april,May,JuNE,July,Augu,SEPT-October,Nov,DECEM *",
            "11/03/1988 15:20:00",
            False,
        ),
        ("26/06/2003 10:00:00", "30 6 * * sunday", "29/06/2003 06:30:00", False),
        ("24/06/2003 12:01:00", "1 12 * * 2", "01/07/2003 12:01:00", False),
        ("30/06/2003 18:15:00", "15 18 * * Mon", "07/07/2003 18:15:00", False),
        # day of month AND day of week, unlike Vixie cron
        ("01/01/2003 12:00:00", "45 16 1 * Mon", "01/09/2003 16:45:00", False),
        ("29/02/2000 12:01:00", "1 12 29 2 *", "29/02/2004 12:01:00", False),
        ("29/02/2004 12:01:00", "1 12 28 2 *", "28/02/2005 12:01:00", False),
        ("01/01/2000 14:40:00", "40 14/1 * * *", "01/01/2000 15:40:00", False),
        ("01/01/2003 00:00:00", "10 30 12 * * Mon", "06/01/2003 12:30:10", True),
    ],
)
def test_next_occurrence_matches_ncrontab(
    start: str, expression: str, expected: str, seconds: bool
) -> None:
    schedule = CrontabSchedule(expression, including_seconds=seconds)

    assert schedule.next_occurrence(at(start)) == at(expected)


def test_the_base_time_fraction_is_ignored_and_the_next_occurrence_is_strictly_later() -> None:
    schedule = CrontabSchedule.parse("0 */5 * * * *")

    assert schedule.next_occurrence(datetime(2024, 5, 1, 10, 5, 0, 999_999)) == datetime(
        2024, 5, 1, 10, 10
    )
    assert schedule.next_occurrence(datetime(2024, 5, 1, 10, 4, 59, 999_999)) == datetime(
        2024, 5, 1, 10, 5
    )


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("0 */5 * * * *", True), ("*/5 * * * *", False), (" 0  0  * * * * ", True)],
)
def test_the_host_reads_seconds_unless_there_are_exactly_five_fields(
    expression: str, seconds: bool
) -> None:
    assert (CrontabSchedule.parse(expression).seconds is not None) is seconds


@pytest.mark.parametrize(
    ("formatted", "expression", "seconds"),
    [
        ("* * * * *", "* * * * *", False),
        ("* * * * * *", "* * * * * *", True),
        ("* 1-3 * * *", "* 1-2,3 * * *", False),
        ("* * * 1,3,5,7,9,11 *", "* * * */2 *", False),
        ("10,25,40 * * * *", "10-40/15 * * * *", False),
        ("* * * 1,3,8 1-2,5", "* * * Mar,Jan,Aug Fri,Mon-Tue", False),
        ("55 * * * 1,3,8 1-2,5", "55 * * * Mar,Jan,Aug Fri,Mon-Tue", True),
        ("1-5 * * * * *", "5-1 * * * * *", True),
        ("* * * * * *", "*/0 * * * * *", True),
    ],
)
def test_formatting_matches_ncrontab(formatted: str, expression: str, seconds: bool) -> None:
    assert str(CrontabSchedule(expression, including_seconds=seconds)) == formatted


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("", False),
        ("* * * * *", True),
        ("* * * * * * *", True),
        ("bad * * * *", False),
        ("* bad * * * *", True),
        ("* * * * mon,bad,wed", False),
        ("* 1,2,3,456,7,8,9 * * *", False),
        ("* 1,Z,3,4 * * *", False),
        ("* 1/Z * * *", False),
        ("* 3-l2 * * *", False),
        ("60 * * * * *", True),
        ("* * 24 * * *", True),
        ("* * * 0 * *", True),
        ("* * * * 13 *", True),
        ("* * * * * 7", True),
        ("1-2-3 * * * * *", True),
        ("1,,2 * * * * *", True),
        ("*/ * * * * *", True),
        ("+5 * * * * *", True),
    ],
)
def test_invalid_expressions_are_refused(expression: str, seconds: bool) -> None:
    with pytest.raises(CrontabError):
        CrontabSchedule(expression, including_seconds=seconds)


def test_a_date_that_never_comes_has_no_occurrence_and_does_not_loop() -> None:
    started = time.monotonic()

    assert CrontabSchedule.parse("0 0 0 31 2 *").next_occurrence(datetime(2001, 1, 1)) is None
    assert time.monotonic() - started < 5


def test_occurrences_stop_at_the_end_time() -> None:
    schedule = CrontabSchedule.parse("0 0 29 Feb Mon")

    assert schedule.next_occurrence(datetime(2017, 1, 1), datetime(2017, 12, 31)) is None
    assert schedule.next_occurrence(datetime(9000, 1, 1), datetime(9008, 12, 31)) == datetime(
        9008, 2, 29
    )
    assert CrontabSchedule.parse("*/20 * * * * *").occurrences(
        datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 1)
    ) == [datetime(2024, 1, 1, 0, 0, 20), datetime(2024, 1, 1, 0, 0, 40)]
