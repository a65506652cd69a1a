"""Tests for onecron.calendar: which dates a cron expression matches."""

from __future__ import annotations

import calendar as stdlib_calendar
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onecron.errors import InvalidSchedule
from onecron.schedule.cron import parse_cron
from onecron.schedule.days import (
    MatchingDays,
    check_fires,
    matching_days,
    month_length,
)

EPOCH = date(1970, 1, 1)


def shape(year: int, month: int) -> tuple[int, int]:
    """Length and cron weekday of the 1st (0 = Sunday) of a real month."""
    return (stdlib_calendar.monthrange(year, month)[1],
            date(year, month, 1).isoweekday() % 7)


MONTHS = [
    # expression, year, month, expected days
    ('0 0 L * *', 2024, 2, (29,)),
    ('0 0 L * *', 2023, 2, (28,)),
    ('0 0 LW * *', 2024, 8, (30,)),  # the 31st is a Saturday
    ('0 0 LW * *', 2024, 3, (29,)),  # the 31st is a Sunday
    ('0 0 1W * *', 2024, 6, (3,)),  # the 1st is a Saturday: Monday 3rd
    ('0 0 1W * *', 2024, 9, (2,)),  # the 1st is a Sunday
    ('0 0 15W * *', 2024, 6, (14,)),  # Saturday: the Friday before
    ('0 0 16W * *', 2024, 6, (17,)),  # Sunday: the Monday after
    ('0 0 31W * *', 2024, 3, (29,)),  # the last day, a Sunday: Friday
    ('0 0 31W * *', 2024, 4, ()),  # no 31st in April
    ('0 0 * * 1#2', 2024, 5, (13,)),
    ('0 0 * * 5#5', 2024, 5, (31,)),
    ('0 0 * * 5#5', 2024, 6, ()),
    ('0 0 * * 5L', 2024, 6, (28,)),
    ('0 0 * * 0L', 2024, 6, (30,)),
    ('0 0 1,15 * 1', 2024, 5, (1, 6, 13, 15, 20, 27)),  # either
    ('0 0 */10 * 1', 2024, 7, (1,)),  # both: *-prefixed day field
    ('0 0 ? * 6,0', 2024, 5, (4, 5, 11, 12, 18, 19, 25, 26)),
    ('0 0 1-3 * ?', 2024, 5, (1, 2, 3)),
]


@pytest.mark.parametrize('expr, year, month, days', MONTHS,
                         ids=[f'{row[0][4:]}-{row[1]}-{row[2]:02}'
                              for row in MONTHS])
def test_matching_days(expr: str, year: int, month: int,
                       days: tuple[int, ...]) -> None:
    """Day specials, weekday specials and the Vixie either/both rule."""
    assert matching_days(parse_cron(expr), *shape(year, month)) == days


NEVER = ['* * 30 2 *', '0 0 31 4,6,9,11 *', '0 0 30,31 2 *',
         '0 0 31W 2 *', '0 0 */20 2 1#5']


@pytest.mark.parametrize('expr', NEVER)
def test_schedules_that_never_fire(expr: str) -> None:
    """A schedule no date can match is refused, naming its fields."""
    with pytest.raises(InvalidSchedule, match='can never fire') as info:
        check_fires(parse_cron(expr))
    assert info.value.field == 'day'


def test_never_message_names_day_and_month() -> None:
    """The common case reads plainly."""
    with pytest.raises(InvalidSchedule,
                       match='day 30 never occurs in month 2'):
        check_fires(parse_cron('* * 30 2 *'))


@pytest.mark.parametrize('expr', ['0 0 29 2 *', '0 0 30 2 1', '0 0 L 2 *',
                                  '0 0 * 2 1#5', '0 0 31 * *',
                                  '0 0 30W 2,4 *'])
def test_schedules_that_fire_rarely(expr: str) -> None:
    """Leap days, fifth Mondays and either/both rules pass the check."""
    check_fires(parse_cron(expr))


@pytest.mark.parametrize('year, length', [(1900, 28), (2000, 29),
                                          (2023, 28), (2024, 29),
                                          (2100, 28)])
def test_february(year: int, length: int) -> None:
    """Gregorian leap years."""
    assert month_length(year, 2) == length


EXPRESSIONS = st.sampled_from([
    '0 0 * * *', '0 0 1 * *', '0 0 L * *', '0 0 LW * *', '0 0 15W * *',
    '0 0 31 * *', '0 0 29 2 *', '0 0 * * 1#5', '0 0 * * 5L',
    '0 0 1,15 * 1', '0 0 */10 * MON', '0 0 13 * FRI', '0 0 31W 1-6 *'])


@settings(max_examples=150, deadline=None)
@given(EXPRESSIONS, st.dates(min_value=date(1900, 1, 1),
                             max_value=date(2400, 1, 1)))
def test_first_from_matches_a_day_by_day_walk(expr: str,
                                              start: date) -> None:
    """MatchingDays.first_from agrees with checking each date in turn."""
    cron = parse_cron(expr)
    dates = MatchingDays(cron)
    day = start
    while day.day not in matching_days(cron, *shape(day.year, day.month)) \
            or day.month not in cron.months:
        day += timedelta(1)
    number = (start - EPOCH).days
    assert dates.first_from(number) == (day - EPOCH).days
    assert dates.matches((day - EPOCH).days)
    assert dates.matches(number) == (day == start)


def test_no_date_after_9999() -> None:
    """Past the last date datetime can hold there is nothing to find."""
    dates = MatchingDays(parse_cron('0 0 1 1 *'))
    with pytest.raises(OverflowError):
        dates.first_from((date(9999, 6, 1) - EPOCH).days)
