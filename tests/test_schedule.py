"""Tests for onecron.schedule: next fire times, DST, zones, intervals."""

from __future__ import annotations

import calendar
import itertools
import os
import pickle
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from onecron.errors import InvalidSchedule
from onecron.schedule.cron import CronExpression, parse_cron
from onecron.schedule.rules import Schedule

UTC = timezone.utc
_Test = Callable[[str], None]


def local(text: str, zone: str) -> datetime:
    """An aware datetime from local ISO text (``~1`` suffix: fold=1)."""
    fold = int(text.endswith('~1'))
    naive = datetime.fromisoformat(text.removesuffix('~1'))
    return naive.replace(tzinfo=ZoneInfo(zone), fold=fold)


def fires(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` fires of ``schedule`` after ``start``."""
    found = []
    for _ in range(count):
        start = schedule.next_after(start)
        found.append(start)
    return found


def iso(when: datetime) -> str:
    """Local ISO text with offset, and ``~1`` for the second occurrence."""
    return when.isoformat() + ('~1' if when.fold else '')


# --- the reference: slow, obvious, independent of onecron's day tables ---

def _nearest_workday(year: int, month: int, day: int) -> date:
    length = calendar.monthrange(year, month)[1]
    when = date(year, month, day)
    if when.weekday() == 5:
        return when - timedelta(1) if day > 1 else when + timedelta(2)
    if when.weekday() == 6:
        return when + timedelta(1) if day < length else when - timedelta(2)
    return when


def reference_matches(cron: CronExpression, wall: datetime) -> bool:
    """Whether the wall time ``wall`` (naive) matches ``cron``."""
    if (wall.second not in cron.seconds or wall.minute not in cron.minutes
            or wall.hour not in cron.hours or wall.month not in cron.months):
        return False
    today = wall.date()
    length = calendar.monthrange(wall.year, wall.month)[1]
    weekday = wall.isoweekday() % 7
    by_day = (wall.day in cron.days
              or (cron.last_day and wall.day == length)
              or any(n <= length
                     and _nearest_workday(wall.year, wall.month, n) == today
                     for n in cron.nearest_workdays))
    if cron.last_workday:
        last = date(wall.year, wall.month, length)
        while last.weekday() >= 5:
            last -= timedelta(1)
        by_day = by_day or last == today
    by_weekday = (weekday in cron.weekdays
                  or (weekday, (wall.day - 1) // 7 + 1) in cron.nth_weekdays
                  or (weekday in cron.last_weekdays
                      and wall.day + 7 > length))
    if cron.day_restricted and cron.weekday_restricted:
        return by_day or by_weekday
    return by_day and by_weekday


def reference_fires(expr: str, zone: str, start: datetime, end: datetime,
                    step: int = 60) -> list[datetime]:
    """Fires in ``(start, end]`` by walking UTC instants ``step`` apart.

    Elapsed-time schedules fire at every instant whose wall time matches.
    Wall-clock schedules (minute and hour fixed) fire at the first
    occurrence of a matching wall time (fold 0), and once at the first
    instant after a gap that skipped any matching wall time.
    """
    cron = parse_cron(expr)
    fields = expr.split()
    wall_clock = not fields[-5].startswith('*') and not fields[-4].startswith(
        '*')
    tz = ZoneInfo(zone)
    first = (int(start.timestamp()) // step + 1) * step
    found = []
    previous = datetime.fromtimestamp(first - step, tz).replace(tzinfo=None)
    for instant in range(first, int(end.timestamp()) + 1, step):
        now = datetime.fromtimestamp(instant, tz)
        wall = now.replace(tzinfo=None, fold=0)
        if wall_clock:
            hit = reference_matches(cron, wall) and now.fold == 0
            skipped = previous + timedelta(seconds=step)
            while not hit and skipped < wall:  # wall times of a gap
                hit = reference_matches(cron, skipped)
                skipped += timedelta(seconds=step)
        else:
            hit = reference_matches(cron, wall)
        if hit:
            found.append(now)
        previous = wall
    return found


#: what an InvalidSchedule may name
FIELDS = {'expr', 'every', 'second', 'minute', 'hour', 'day', 'month',
          'weekday', 'timezone'}
#: texts that must parse, given as explicit examples to the properties
#: below so that a parser refusing everything fails them
PARSES = ['* * * * *', '*/5 * * * * *', '0 0 * * *', '30 8 * * MON-FRI',
          '0 12 L * *', '0 9 * * 1#2', '0 0 1 jan-mar/2 *', '@daily',
          '@every 1h30m', '15 10-20/5 29 2 *', '0 30 2 ? * 7L']
#: starts for the checks of a parsed schedule: a whole second, a second
#: before midnight, and one with microseconds
CHECK_STARTS = [datetime(2024, 5, 3, 12, 0, 7, tzinfo=UTC),
                datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
                datetime(2025, 2, 28, 3, 4, 5, 678, tzinfo=UTC)]


def check_parsed(schedule: Schedule) -> None:
    """What is true of every schedule that parses: it round-trips through
    its own text, and each fire is a time its fields allow, the first one
    (asking from just before it gives it again)."""
    again = Schedule(str(schedule), timezone=schedule.timezone)
    assert again == schedule and str(again) == str(schedule)
    assert again.cron == schedule.cron and again.every == schedule.every
    for start in CHECK_STARTS:
        fire = schedule.next_after(start)
        assert fire > start
        assert schedule.next_after(fire - timedelta(seconds=1)) == fire
        assert fire.microsecond == 0
        if schedule.every is not None:
            interval = int(schedule.every.total_seconds())
            assert fire.timestamp() % interval == 0
            assert fire - start <= schedule.every
        else:
            assert schedule.cron is not None
            wall = fire.astimezone(schedule.tz).replace(tzinfo=None)
            assert reference_matches(schedule.cron, wall), (schedule, fire)


def onecron_fires(schedule: Schedule, start: datetime,
                  end: datetime) -> list[datetime]:
    """Fires of ``schedule`` in ``(start, end]``."""
    found = []
    when = schedule.next_after(start)
    # instants, not datetimes: within one zone Python compares wall times
    # and ignores fold, so 01:00 (second pass) would sort before 01:30
    while when.timestamp() <= end.timestamp():
        found.append(when)
        when = schedule.next_after(when)
    return found


# --- plain next fires ---

NEXT_FIRES = [
    ('30 8 * * *', '2024-05-03T08:30',
     ['2024-05-04T08:30', '2024-05-05T08:30']),
    ('*/5 * * * *', '2024-05-03T23:57',
     ['2024-05-04T00:00', '2024-05-04T00:05']),
    ('0 0 1 * *', '2024-01-31T12:00',
     ['2024-02-01T00:00', '2024-03-01T00:00']),
    ('15 9-17 * * MON-FRI', '2024-05-03T17:15',
     ['2024-05-06T09:15', '2024-05-06T10:15']),
    ('0 0 29 2 *', '2024-03-01T00:00',
     ['2028-02-29T00:00', '2032-02-29T00:00']),
    ('0 12 L * *', '2024-02-01T00:00',
     ['2024-02-29T12:00', '2024-03-31T12:00']),
    ('0 12 LW * *', '2024-08-01T00:00',
     ['2024-08-30T12:00', '2024-09-30T12:00']),
    ('0 12 1W * *', '2024-06-01T00:00',
     ['2024-06-03T12:00', '2024-07-01T12:00']),
    ('0 12 15W * *', '2024-06-01T00:00',
     ['2024-06-14T12:00', '2024-07-15T12:00']),
    ('0 12 31W * *', '2024-03-01T00:00',
     ['2024-03-29T12:00', '2024-05-31T12:00']),
    ('0 9 * * 1#2', '2024-05-01T00:00',
     ['2024-05-13T09:00', '2024-06-10T09:00']),
    ('0 9 * * FRI#5', '2024-01-01T00:00',
     ['2024-03-29T09:00', '2024-05-31T09:00']),
    ('0 9 * * 5L', '2024-05-01T00:00',
     ['2024-05-31T09:00', '2024-06-28T09:00']),
    ('0 9 * * friL', '2024-05-01T00:00',
     ['2024-05-31T09:00', '2024-06-28T09:00']),
    ('0 0 1,15 * 1', '2024-05-01T00:00',
     ['2024-05-06T00:00', '2024-05-13T00:00', '2024-05-15T00:00']),
    ('0 0 */10 * MON', '2024-05-01T00:00',
     ['2024-07-01T00:00', '2024-10-21T00:00']),
    ('0 0 ? * 7', '2024-05-01T00:00',
     ['2024-05-05T00:00', '2024-05-12T00:00']),
    ('0 0 1 jan-mar/2 *', '2024-01-01T00:00',
     ['2024-03-01T00:00', '2025-01-01T00:00']),
    ('*/20 * * * * *', '2024-05-03T08:00:45',
     ['2024-05-03T08:01:00', '2024-05-03T08:01:20']),
    ('30 0 8 * * *', '2024-05-03T08:00:30',
     ['2024-05-04T08:00:30', '2024-05-05T08:00:30']),
    ('@yearly', '2024-01-01T00:00',
     ['2025-01-01T00:00', '2026-01-01T00:00']),
    ('@MONTHLY', '2024-01-01T00:00',
     ['2024-02-01T00:00', '2024-03-01T00:00']),
    ('@weekly', '2024-05-01T00:00',
     ['2024-05-05T00:00', '2024-05-12T00:00']),
    ('@midnight', '2024-05-01T00:00',
     ['2024-05-02T00:00', '2024-05-03T00:00']),
    ('@hourly', '2024-05-01T00:59:59.999999',
     ['2024-05-01T01:00', '2024-05-01T02:00']),
]


@pytest.mark.parametrize('expr, start, expected', NEXT_FIRES,
                         ids=[row[0] for row in NEXT_FIRES])
def test_next_fires(expr: str, start: str, expected: list[str]) -> None:
    """Successive fires of common and special expressions, in UTC."""
    schedule = Schedule(expr)
    found = fires(schedule, local(start, 'UTC'), len(expected))
    assert [when.replace(tzinfo=None) for when in found] == [
        datetime.fromisoformat(text) for text in expected]


# --- steps past the end of their range, as in Vixie cron and cronsim ---

def test_first_monday_of_the_month() -> None:
    """``*/100,1-7`` starts with ``*``, so day and weekday must both
    match: 01:01 on the first Monday of each month, and only then."""
    schedule = Schedule('1 1 */100,1-7 * MON')
    expected = []
    for year in (2024, 2025):
        for month in range(1, 13):
            day = date(year, month, 1)
            day += timedelta((7 - day.weekday()) % 7)
            expected.append(datetime.combine(day, datetime.min.time(), UTC)
                            + timedelta(hours=1, minutes=1))
    start = datetime(2023, 12, 31, tzinfo=UTC)
    assert fires(schedule, start, 24) == expected


VIXIE_STEPS = [
    # expression, start (UTC), first fires
    ('0 0 */100 * *', '2024-01-15T00:00',
     ['2024-02-01T00:00', '2024-03-01T00:00']),
    ('0 0 */45 * *', '2024-01-01T00:00',
     ['2024-02-01T00:00', '2024-03-01T00:00']),
    ('*/90 * * * *', '2024-05-03T08:00',
     ['2024-05-03T09:00', '2024-05-03T10:00']),
    ('0 */30 * * *', '2024-05-03T08:00',
     ['2024-05-04T00:00', '2024-05-05T00:00']),
    ('0 0 * */13 *', '2024-01-31T00:00',
     ['2025-01-01T00:00', '2025-01-02T00:00']),
    ('0 0 * * */8', '2024-05-01T00:00',
     ['2024-05-05T00:00', '2024-05-12T00:00']),
    ('*/61 * * * * *', '2024-05-03T08:00:00',
     ['2024-05-03T08:01:00', '2024-05-03T08:02:00']),
]


@pytest.mark.parametrize('expr, start, expected', VIXIE_STEPS,
                         ids=[row[0] for row in VIXIE_STEPS])
def test_steps_past_the_range(expr: str, start: str,
                              expected: list[str]) -> None:
    """A step past the end of its range fires on the range's first value."""
    found = fires(Schedule(expr), local(start, 'UTC'), len(expected))
    assert [when.replace(tzinfo=None) for when in found] == [
        datetime.fromisoformat(text) for text in expected]


CRONSIM_STEPS = [
    '0 0 */100 * *', '0 0 */45 * *', '0 0 */31 * *', '0 0 */30 * *',
    '1 1 */100,1-7 * MON', '1 1 */45,8-14 * FRI', '0 0 */100 * MON',
    '0 0 1-7 * */100', '*/100 * * * *', '*/45 * * * *', '50/20 * * * *',
    '10-20/50 * * * *', '0 */24 * * *', '0 */1000 * * *', '0 9/20 * * *',
    '0 0 * */12 *', '0 0 * JUN/9 *', '0 0 1 */100 *', '0 0 * * */7',
    '0 0 * * */8', '0 0 * * MON-FRI/10', '0 0 * * 6/5',
    '*/60 * * * * *', '7/99 */100 * * * *', '*/100 */100 */100 * * *',
]


@pytest.mark.parametrize('expr', CRONSIM_STEPS)
def test_steps_past_the_range_agree_with_cronsim(expr: str) -> None:
    """Steps past the end of their range fire exactly when cronsim says."""
    start = datetime(2024, 1, 15, 13, 37, 11, tzinfo=UTC)
    expected = list(itertools.islice(CronSim(expr, start), 40))
    assert fires(Schedule(expr), start, 40) == expected


def _stepped(low: int, high: int) -> st.SearchStrategy[str]:
    """A field of numbers, ranges and steps up to 40 past the end."""
    @st.composite
    def item(draw: st.DrawFn) -> str:
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, high - low + 40))
        # cronsim reads a one-value range with a step, 5-5/2, as 5/2
        stepped_range = f'{a}-{b}/{step}' if a < b else f'{a}-{b}'
        return draw(st.sampled_from([
            str(a), f'{a}-{b}', f'*/{step}', stepped_range, f'{a}/{step}',
            '*']))

    return st.lists(item(), min_size=1, max_size=3).map(','.join)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(st.tuples(_stepped(0, 59), _stepped(0, 59), _stepped(0, 23),
                 _stepped(1, 31), _stepped(1, 12),
                 _stepped(0, 7)).map(' '.join),
       st.datetimes(min_value=datetime(1990, 1, 1),
                    max_value=datetime(2060, 1, 1), timezones=st.just(UTC)))
def test_steps_agree_with_cronsim(expr: str, start: datetime) -> None:
    """Numbers, ranges and steps of any size fire when cronsim says."""
    try:
        expected = list(itertools.islice(CronSim(expr, start), 8))
    except CronSimError:  # a day no month has, when both must match
        expected = []
    schedule = _schedule_or_skip(expr, 'UTC')
    assert fires(schedule, start, 8) == expected


def test_result_is_strictly_after_and_in_the_zone() -> None:
    """A fire time equal to ``dt`` is not returned; results carry the zone."""
    schedule = Schedule('30 8 * * *', timezone='Europe/Zurich')
    at = local('2024-05-03T08:30', 'Europe/Zurich')
    result = schedule.next_after(at)
    assert result == local('2024-05-04T08:30', 'Europe/Zurich')
    assert result.tzinfo is ZoneInfo('Europe/Zurich')
    assert schedule.next_after(at - timedelta(microseconds=1)) == at


def test_input_in_another_zone() -> None:
    """The input instant matters, not its zone: 06:00 UTC is 08:00 Zurich."""
    schedule = Schedule('30 8 * * *', timezone='Europe/Zurich')
    result = schedule.next_after(datetime(2024, 5, 3, 6, 0, tzinfo=UTC))
    assert result == local('2024-05-03T08:30', 'Europe/Zurich')
    tokyo = datetime(2024, 5, 3, 15, 0, tzinfo=ZoneInfo('Asia/Tokyo'))
    assert schedule.next_after(tokyo) == result


def test_naive_datetime_is_refused() -> None:
    """A naive datetime raises ValueError: its instant is unknown."""
    with pytest.raises(ValueError, match='aware'):
        Schedule('@daily').next_after(datetime(2024, 5, 3))


def test_non_datetime_is_refused() -> None:
    """Anything but a datetime raises TypeError, even before any call."""
    with pytest.raises(TypeError):
        Schedule('@daily').next_after(date(2024, 5, 3))  # type: ignore
    with pytest.raises(TypeError):
        Schedule('@daily').next_after(None)  # type: ignore


def test_process_timezone_does_not_matter() -> None:
    """Results are the same whatever the process's TZ is."""
    cases = [('30 8 * * *', 'Europe/Zurich'), ('0 * * * *', 'UTC'),
             ('30 2 * * *', 'America/New_York'),
             ('*/30 * * * *', 'Australia/Lord_Howe')]
    start = datetime(2024, 3, 9, tzinfo=UTC)

    def run() -> list[list[datetime]]:
        return [fires(Schedule(expr, timezone=zone), start, 50)
                for expr, zone in cases]

    expected = run()
    saved = os.environ.get('TZ')
    try:
        for zone in ('Pacific/Kiritimati', 'America/Adak', 'Asia/Kolkata'):
            os.environ['TZ'] = zone
            time.tzset()
            assert run() == expected
    finally:
        if saved is None:
            del os.environ['TZ']
        else:
            os.environ['TZ'] = saved
        time.tzset()


# --- DST: wall-clock versus elapsed-time schedules ---

DST_CASES = [
    # zone, expr, start (local), expected fires (local, ~1 = second pass)
    ('Europe/Zurich', '30 2 * * *', '2024-03-30T12:00',
     ['2024-03-31T03:00+02:00', '2024-04-01T02:30+02:00'],
     'zurich-spring-wall-gap-time-runs-after-gap'),
    ('Europe/Zurich', '0 * * * *', '2024-03-31T00:30',
     ['2024-03-31T01:00+01:00', '2024-03-31T03:00+02:00'],
     'zurich-spring-hourly-skips'),
    ('Europe/Zurich', '30 2 * * *', '2024-10-26T12:00',
     ['2024-10-27T02:30+02:00', '2024-10-28T02:30+01:00'],
     'zurich-autumn-wall-once'),
    ('Europe/Zurich', '*/30 * * * *', '2024-10-27T01:45',
     ['2024-10-27T02:00+02:00', '2024-10-27T02:30+02:00',
      '2024-10-27T02:00+01:00~1', '2024-10-27T02:30+01:00~1',
      '2024-10-27T03:00+01:00'],
     'zurich-autumn-every-30-runs-twice'),
    ('America/New_York', '30 2 * * *', '2024-03-09T12:00',
     ['2024-03-10T03:00-04:00', '2024-03-11T02:30-04:00'],
     'new-york-spring-wall-gap-time-runs-at-0300'),
    ('America/New_York', '0,30 2 * * *', '2024-03-09T12:00',
     ['2024-03-10T03:00-04:00', '2024-03-11T02:00-04:00'],
     'new-york-spring-two-gap-times-run-once'),
    ('America/New_York', '*/30 * * * *', '2024-03-10T00:45',
     ['2024-03-10T01:00-05:00', '2024-03-10T01:30-05:00',
      '2024-03-10T03:00-04:00'],
     'new-york-spring-every-30-skips'),
    ('America/New_York', '0 * * * *', '2024-03-10T00:30',
     ['2024-03-10T01:00-05:00', '2024-03-10T03:00-04:00'],
     'new-york-spring-hourly-skips'),
    ('America/New_York', '30 1 * * *', '2024-11-02T12:00',
     ['2024-11-03T01:30-04:00', '2024-11-04T01:30-05:00'],
     'new-york-autumn-wall-once-first-occurrence'),
    ('America/New_York', '0 * * * *', '2024-11-02T23:30',
     ['2024-11-03T00:00-04:00', '2024-11-03T01:00-04:00',
      '2024-11-03T01:00-05:00~1', '2024-11-03T02:00-05:00'],
     'new-york-autumn-hourly-twice'),
    ('America/New_York', '*/30 * * * *', '2024-11-03T00:45',
     ['2024-11-03T01:00-04:00', '2024-11-03T01:30-04:00',
      '2024-11-03T01:00-05:00~1', '2024-11-03T01:30-05:00~1',
      '2024-11-03T02:00-05:00'],
     'new-york-autumn-every-30-twice'),
    ('America/New_York', '30 * * * *', '2024-11-03T01:30-05:00',
     ['2024-11-03T02:30-05:00'],
     'new-york-start-in-second-pass'),
    ('Australia/Lord_Howe', '15 2 * * *', '2024-10-05T12:00',
     ['2024-10-06T02:30+11:00', '2024-10-07T02:15+11:00'],
     'lord-howe-spring-30-minute-gap'),
    ('Australia/Lord_Howe', '*/15 * * * *', '2024-10-06T01:40',
     ['2024-10-06T01:45+10:30', '2024-10-06T02:30+11:00'],
     'lord-howe-spring-every-15-skips-half-hour'),
    ('Australia/Lord_Howe', '45 1 * * *', '2024-04-06T12:00',
     ['2024-04-07T01:45+11:00', '2024-04-08T01:45+10:30'],
     'lord-howe-autumn-wall-once'),
    ('Australia/Lord_Howe', '*/15 * * * *', '2024-04-07T01:20',
     ['2024-04-07T01:30+11:00', '2024-04-07T01:45+11:00',
      '2024-04-07T01:30+10:30~1', '2024-04-07T01:45+10:30~1',
      '2024-04-07T02:00+10:30'],
     'lord-howe-autumn-every-15-twice'),
    ('America/Sao_Paulo', '0 0 * * *', '2018-11-03T12:00',
     ['2018-11-04T01:00-02:00', '2018-11-05T00:00-02:00'],
     'sao-paulo-2018-midnight-gap-runs-at-0100'),
    ('America/Sao_Paulo', '0 * * * *', '2018-11-03T22:30',
     ['2018-11-03T23:00-03:00', '2018-11-04T01:00-02:00'],
     'sao-paulo-2018-hourly-skips-midnight'),
    ('America/Sao_Paulo', '0 23 * * *', '2019-02-16T12:00',
     ['2019-02-16T23:00-02:00', '2019-02-17T23:00-03:00'],
     'sao-paulo-2019-repeated-2300-once'),
    ('America/Sao_Paulo', '0 * * * *', '2019-02-16T22:30',
     ['2019-02-16T23:00-02:00', '2019-02-16T23:00-03:00~1',
      '2019-02-17T00:00-03:00'],
     'sao-paulo-2019-hourly-repeats-2300'),
    ('America/Santiago', '0 0 * * *', '2024-09-07T12:00',
     ['2024-09-08T01:00-03:00', '2024-09-09T00:00-03:00'],
     'santiago-spring-midnight-gap'),
    ('America/Santiago', '30 23 * * *', '2024-04-06T12:00',
     ['2024-04-06T23:30-03:00', '2024-04-07T23:30-04:00'],
     'santiago-autumn-repeated-2330-once'),
    ('America/Santiago', '*/30 * * * *', '2024-04-06T23:15',
     ['2024-04-06T23:30-03:00', '2024-04-06T23:00-04:00~1',
      '2024-04-06T23:30-04:00~1', '2024-04-07T00:00-04:00'],
     'santiago-autumn-every-30-repeats-across-midnight'),
    ('Pacific/Chatham', '0 3 * * *', '2024-09-28T12:00',
     ['2024-09-29T03:45+13:45', '2024-09-30T03:00+13:45'],
     'chatham-spring-0300-runs-at-0345'),
    ('Pacific/Chatham', '0 * * * *', '2024-09-29T01:30',
     ['2024-09-29T02:00+12:45', '2024-09-29T04:00+13:45'],
     'chatham-spring-hourly-skips'),
    ('Pacific/Chatham', '0 3 * * *', '2024-04-06T12:00',
     ['2024-04-07T03:00+13:45', '2024-04-08T03:00+12:45'],
     'chatham-autumn-wall-once'),
    ('Pacific/Chatham', '0 * * * *', '2024-04-07T01:30',
     ['2024-04-07T02:00+13:45', '2024-04-07T03:00+13:45',
      '2024-04-07T03:00+12:45~1', '2024-04-07T04:00+12:45'],
     'chatham-autumn-hourly-twice'),
    # Samoa skipped 30 December 2011: the whole day is one 24-hour gap.
    # The wall-clock rule still holds: a skipped time runs once right after
    # the gap, so the daily 12:00 of the 30th runs at 00:00 on the 31st and
    # the 31st's own 12:00 runs as usual.
    ('Pacific/Apia', '0 12 * * *', '2011-12-29T00:00',
     ['2011-12-29T12:00-10:00', '2011-12-31T00:00+14:00',
      '2011-12-31T12:00+14:00'],
     'apia-2011-skipped-day-noon-runs-at-midnight-after'),
    ('Pacific/Apia', '0 0 * * *', '2011-12-28T12:00',
     ['2011-12-29T00:00-10:00', '2011-12-31T00:00+14:00',
      '2012-01-01T00:00+14:00'],
     'apia-2011-daily-midnight-runs-once'),
    ('Pacific/Apia', '0 * * * *', '2011-12-29T22:30',
     ['2011-12-29T23:00-10:00', '2011-12-31T00:00+14:00'],
     'apia-2011-hourly-skips-the-day'),
    ('Pacific/Apia', '0 12 30 * *', '2011-12-01T00:00',
     ['2011-12-31T00:00+14:00', '2012-01-30T12:00+14:00'],
     'apia-2011-monthly-on-the-missing-30th'),
]


@pytest.mark.parametrize('zone, expr, start, expected',
                         [case[:4] for case in DST_CASES],
                         ids=[case[4] for case in DST_CASES])
def test_dst(zone: str, expr: str, start: str, expected: list[str]) -> None:
    """Across DST, wall-clock schedules run once per named time and
    elapsed-time schedules skip gaps and repeat folds."""
    schedule = Schedule(expr, timezone=zone)
    if '+' in start[10:] or '-' in start[10:]:
        begin = datetime.fromisoformat(start)
    else:
        begin = local(start, zone)
    found = fires(schedule, begin, len(expected))
    assert [iso(when) for when in found] == [
        iso(local_with_offset(text, zone)) for text in expected]


def local_with_offset(text: str, zone: str) -> datetime:
    """``2024-11-03T01:00-05:00~1`` as an aware datetime in ``zone``."""
    instant = datetime.fromisoformat(text.removesuffix('~1'))
    return instant.astimezone(ZoneInfo(zone))


@pytest.mark.parametrize('zone, expr, start, expected',
                         [case[:4] for case in DST_CASES],
                         ids=[case[4] for case in DST_CASES])
def test_dst_cases_agree_with_reference(zone: str, expr: str, start: str,
                                        expected: list[str]) -> None:
    """Every DST table row agrees with the minute-by-minute reference."""
    schedule = Schedule(expr, timezone=zone)
    begin = local(start[:16], zone)
    end = local_with_offset(expected[-1], zone)
    assert onecron_fires(schedule, begin, end) == reference_fires(
        expr, zone, begin, end)


def test_dst_seconds_field_matches_reference() -> None:
    """A 6-field schedule across a gap and a fold, second by second."""
    for zone, start in [('America/New_York', '2024-03-10T01:58'),
                        ('America/New_York', '2024-11-03T01:58'),
                        ('Australia/Lord_Howe', '2024-10-06T01:58')]:
        for expr in ('*/20 59 1 * * *', '*/15 * * * * *', '0 0 2 * * *'):
            schedule = Schedule(expr, timezone=zone)
            begin = local(start, zone)
            end = begin + timedelta(hours=2)
            assert onecron_fires(schedule, begin, end) == reference_fires(
                expr, zone, begin, end, step=1), (zone, expr)


# --- intervals ---

@pytest.mark.parametrize('every, start, expected', [
    (timedelta(minutes=5), '2024-05-03T08:02:10',
     ['2024-05-03T08:05', '2024-05-03T08:10']),
    (timedelta(minutes=90), '2024-05-03T00:00',
     ['2024-05-03T01:30', '2024-05-03T03:00']),
    (timedelta(seconds=7), '1970-01-01T00:00:00',
     ['1970-01-01T00:00:07', '1970-01-01T00:00:14']),
    (timedelta(hours=25), '1970-01-01T00:00',
     ['1970-01-02T01:00', '1970-01-03T02:00']),
], ids=['5-minutes', '90-minutes', '7-seconds', '25-hours'])
def test_every_is_aligned_to_the_epoch(every: timedelta, start: str,
                                       expected: list[str]) -> None:
    """Intervals fire where the time since the Unix epoch is a multiple."""
    schedule = Schedule(every=every)
    found = fires(schedule, local(start, 'UTC'), len(expected))
    assert [when.replace(tzinfo=None) for when in found] == [
        datetime.fromisoformat(text) for text in expected]


def test_every_ignores_dst() -> None:
    """An interval counts elapsed time, reported in the schedule's zone."""
    schedule = Schedule(every=timedelta(minutes=30), timezone='Europe/Zurich')
    found = fires(schedule, local('2024-10-27T02:10', 'Europe/Zurich'), 3)
    assert [iso(when) for when in found] == [
        '2024-10-27T02:30:00+02:00', '2024-10-27T02:00:00+01:00~1',
        '2024-10-27T02:30:00+01:00~1']


def test_every_macro_is_the_same_as_every() -> None:
    """``@every 1h30m`` equals ``every=timedelta(minutes=90)``."""
    macro = Schedule('@every 1h30m')
    keyword = Schedule(every=timedelta(minutes=90))
    assert macro == keyword and hash(macro) == hash(keyword)
    assert macro.every == timedelta(minutes=90)
    assert macro.expr == '@every 1h30m' and keyword.expr is None
    start = datetime(2024, 5, 3, 7, 59, tzinfo=UTC)
    assert fires(macro, start, 3) == fires(keyword, start, 3)


@pytest.mark.parametrize('every', [
    timedelta(0), timedelta(seconds=-5), timedelta(milliseconds=1500),
    300, '5m',
], ids=['zero', 'negative', 'sub-second', 'int', 'str'])
def test_bad_every(every: object) -> None:
    """``every`` must be a positive timedelta of whole seconds."""
    with pytest.raises(InvalidSchedule) as info:
        Schedule(every=every)  # type: ignore[arg-type]
    assert info.value.field == 'every'


# --- keyword form and construction ---

@pytest.mark.parametrize('keywords, expr', [
    ({'hour': 8}, '0 8 * * *'),
    ({'hour': 8, 'minute': 30}, '30 8 * * *'),
    ({'minute': 30}, '30 * * * *'),
    ({'minute': '*/15'}, '*/15 * * * *'),
    ({'hour': '*/2'}, '0 */2 * * *'),
    ({'hour': '9-17', 'minute': '0,30'}, '0,30 9-17 * * *'),
    ({'weekday': 1}, '0 0 * * 1'),
    ({'weekday': 'mon-fri', 'hour': 7}, '0 7 * * MON-FRI'),
    ({'day': 1}, '0 0 1 * *'),
    ({'day': 'L', 'hour': 23}, '0 23 L * *'),
    ({'month': 6}, '0 0 1 6 *'),
    ({'month': 'jun', 'weekday': 'fri#1'}, '0 0 * JUN FRI#1'),
    ({'minute': 0, 'hour': 0, 'day': 0 + 1}, '0 0 1 * *'),
], ids=lambda value: value if isinstance(value, str) else None)
def test_keyword_form(keywords: dict[str, object], expr: str) -> None:
    """Keywords render to five fields; smaller unset fields take their
    minimum, larger ones ``*``."""
    schedule = Schedule(**keywords)  # type: ignore[arg-type]
    assert schedule.expr == expr
    assert schedule == Schedule(expr)


def test_keyword_hour_runs_once_a_day() -> None:
    """``hour=8`` runs at 08:00 only, not every minute of that hour."""
    found = fires(Schedule(hour=8), datetime(2024, 5, 3, tzinfo=UTC), 2)
    assert [when.isoformat() for when in found] == [
        '2024-05-03T08:00:00+00:00', '2024-05-04T08:00:00+00:00']


@pytest.mark.parametrize('kwargs, field', [
    ({}, 'expr'),
    ({'expr': '@daily', 'hour': 8}, 'expr'),
    ({'expr': '@daily', 'every': timedelta(hours=1)}, 'expr'),
    ({'hour': 8, 'every': timedelta(hours=1)}, 'every'),
    ({'expr': 5}, 'expr'),
    ({'expr': b'* * * * *'}, 'expr'),
    ({'expr': '@daily', 'timezone': 'Mars/Olympus'}, 'timezone'),
    ({'expr': '@daily', 'timezone': 'Europe'}, 'timezone'),
    ({'expr': '@daily', 'timezone': ''}, 'timezone'),
    ({'expr': '@daily', 'timezone': UTC}, 'timezone'),
    ({'hour': 25}, 'hour'),
    ({'hour': True}, 'hour'),
    ({'hour': 8.5}, 'hour'),
    ({'minute': '*/0'}, 'minute'),
    ({'weekday': '1#6'}, 'weekday'),
    ({'day': 30, 'month': 2}, 'day'),
], ids=['nothing', 'expr-and-keyword', 'expr-and-every',
        'keyword-and-every', 'int-expr', 'bytes-expr', 'unknown-zone',
        'zone-directory', 'empty-zone', 'not-a-zoneinfo', 'hour-25',
        'bool-hour', 'float-hour', 'step-0', 'sixth-monday', 'feb-30'])
def test_invalid_construction(kwargs: dict[str, object], field: str) -> None:
    """Bad arguments raise InvalidSchedule naming the field at fault."""
    with pytest.raises(InvalidSchedule) as info:
        Schedule(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_unknown_zone_is_a_value_error() -> None:
    """An unknown zone is a ValueError that names the zone."""
    with pytest.raises(ValueError, match='Mars/Olympus'):
        Schedule('@daily', timezone='Mars/Olympus')


def test_attributes_repr_and_equality() -> None:
    """Public attributes, a repr for logs, and equality by value."""
    schedule = Schedule('30 8 * * mon-fri', timezone='Europe/Zurich')
    assert schedule.expr == '30 8 * * MON-FRI'
    assert schedule.timezone == 'Europe/Zurich'
    assert schedule.tz is ZoneInfo('Europe/Zurich')
    assert schedule.every is None
    assert schedule.wall_clock
    assert repr(schedule) == "<Schedule '30 8 * * MON-FRI' Europe/Zurich>"
    assert str(schedule) == '30 8 * * MON-FRI'
    same = Schedule('30 8 * * MON-FRI',
                    timezone=ZoneInfo('Europe/Zurich'))
    assert schedule == same and hash(schedule) == hash(same)
    assert schedule != Schedule('30 8 * * MON-FRI')
    assert schedule != '30 8 * * MON-FRI'
    assert repr(Schedule(every=timedelta(seconds=90))) == (
        "<Schedule '@every 1m30s' UTC>")


@pytest.mark.parametrize('expr, wall_clock', [
    ('30 8 * * *', True), ('0 0,12 * * *', True), ('0 9-17 * * *', True),
    ('0 * * * *', False), ('*/30 * * * *', False), ('30 */2 * * *', False),
    ('*/10 30 2 * * *', True), ('@daily', True), ('@hourly', False),
], ids=lambda value: value if isinstance(value, str) else None)
def test_wall_clock_flag(expr: str, wall_clock: bool) -> None:
    """Wall-clock mode is on when minute and hour both do not start with *."""
    assert Schedule(expr).wall_clock is wall_clock


@pytest.mark.parametrize('schedule, words', [
    (Schedule('30 8 * * *', timezone='Europe/Zurich'),
     'at 08:30 every day, Europe/Zurich'),
    (Schedule('*/15 * * * *'), 'every 15 minutes'),
    (Schedule('* * * * *'), 'every minute'),
    (Schedule('0 * * * *'), 'at minute 0 of every hour'),
    (Schedule(every=timedelta(minutes=90)), 'every 1 hour 30 minutes'),
    (Schedule(every=timedelta(hours=1)), 'every hour'),
    (Schedule('@every 45s'), 'every 45 seconds'),
    (Schedule('0 8,17 * * MON-FRI'),
     'at 08:00 and 17:00 on Monday to Friday, UTC'),
    (Schedule('15 9-17 * * MON-FRI'),
     'at minute 15 of every hour from 09:15 to 17:15 on Monday to '
     'Friday, UTC'),
    (Schedule('*/10 9-17 * * *'),
     'every 10 minutes from 09:00 to 17:50, UTC'),
    (Schedule('0 9 * * 1#2'),
     'at 09:00 on the second Monday of the month, UTC'),
    (Schedule('0 18 * * 5L'),
     'at 18:00 on the last Friday of the month, UTC'),
    (Schedule('0 0 L * *'), 'at 00:00 on the last day of the month, UTC'),
    (Schedule('0 0 15W * *'),
     'at 00:00 on the weekday nearest the 15th of the month, UTC'),
    (Schedule('@yearly'), 'at 00:00 on the 1st of January, UTC'),
    (Schedule('0 6 1 1,7 *'), 'at 06:00 on the 1st of January and July, '
     'UTC'),
    (Schedule('0 0 1,15 * 1'),
     'at 00:00 on the 1st and the 15th of the month or on Monday, UTC'),
    (Schedule('0 7 * * SAT,SUN'), 'at 07:00 on Saturday and Sunday, UTC'),
    (Schedule('30 0 8 * * *'), 'at 08:00:30 every day, UTC'),
    (Schedule('*/5 * * * * *'), 'every 5 seconds'),
    (Schedule('*/100 * * * *'), 'at minute 0 of every hour'),
    (Schedule('*/45 * * * *'), 'at minutes 0 and 45 of every hour'),
    (Schedule('*/100 * * * * *'), 'every minute'),
    (Schedule('*/7 * * * * *'), "cron '*/7 * * * * *', UTC"),
    (Schedule('*/45 9-17 * * *'), "cron '*/45 9-17 * * *', UTC"),
    (Schedule('0 0 */2 * *'), "cron '0 0 */2 * *', UTC"),
    (Schedule('7,9 */3 * * *'), "cron '7,9 */3 * * *', UTC"),
], ids=lambda value: str(value) if isinstance(value, Schedule) else None)
def test_describe(schedule: Schedule, words: str) -> None:
    """Common shapes read as English; exotic ones fall back to the text."""
    assert schedule.describe() == words


# --- properties ---

def _number(field: str) -> st.SearchStrategy[str]:
    low, high = {'minute': (0, 59), 'hour': (0, 23), 'day': (1, 31),
                 'month': (1, 12), 'weekday': (0, 7)}[field]
    values = st.integers(low, high)

    @st.composite
    def item(draw: st.DrawFn) -> str:
        kind = draw(st.sampled_from(['n', 'n', 'range', 'step', 'rstep',
                                     'start']))
        a = draw(values)
        if kind == 'n':
            return str(a)
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, high - low + 40))  # past the end too
        return {'range': f'{a}-{b}', 'step': f'*/{step}',
                'rstep': f'{a}-{b}/{step}', 'start': f'{a}/{step}'}[kind]

    return st.one_of(
        st.just('*'),
        st.lists(item(), min_size=1, max_size=3).map(','.join))


_DAY_SPECIALS = st.sampled_from(['L', 'LW', '1W', '15W', '31W', '?'])
_WEEKDAY_SPECIALS = st.sampled_from(['1#1', '5#5', 'FRI#3', '0#2', '5L',
                                     'sunL', 'MON-FRI', 'sat,sun', '?'])
EXPRESSIONS = st.tuples(
    st.one_of(_number('minute'), st.sampled_from(['0', '30', '*/15'])),
    st.one_of(_number('hour'), st.sampled_from(['0', '1', '2', '23'])),
    st.one_of(st.just('*'), _number('day'), _DAY_SPECIALS),
    st.one_of(st.just('*'), st.just('*'), _number('month')),
    st.one_of(st.just('*'), _number('weekday'), _WEEKDAY_SPECIALS),
).map(' '.join)

ZONES = ['UTC', 'Europe/Zurich', 'America/New_York', 'Australia/Lord_Howe',
         'America/Sao_Paulo', 'America/Santiago', 'Pacific/Chatham',
         'Pacific/Apia', 'Asia/Kolkata']
# starts near transitions, where the bugs live
STARTS = [datetime(2024, 3, 10, 5, tzinfo=UTC),
          datetime(2024, 3, 30, 23, tzinfo=UTC),
          datetime(2024, 10, 26, 23, tzinfo=UTC),
          datetime(2024, 11, 3, 4, tzinfo=UTC),
          datetime(2024, 4, 6, 13, tzinfo=UTC),
          datetime(2024, 10, 5, 14, tzinfo=UTC),
          datetime(2024, 9, 7, 12, tzinfo=UTC),
          datetime(2024, 4, 6, 12, tzinfo=UTC),
          datetime(2024, 9, 28, 12, tzinfo=UTC),
          datetime(2018, 11, 3, 12, tzinfo=UTC),
          datetime(2019, 2, 16, 12, tzinfo=UTC),
          datetime(2011, 12, 29, 0, tzinfo=UTC)]


def _examples(texts: list[str]) -> Callable[[_Test], _Test]:
    """Hypothesis examples, one per text."""
    def decorate(test: _Test) -> _Test:
        for text in texts:
            test = example(text)(test)
        return test
    return decorate


def _schedule_or_skip(expr: str, zone: str) -> Schedule:
    try:
        return Schedule(expr, timezone=zone)
    except InvalidSchedule:
        assume(False)  # a schedule that can never fire
        raise


def _check_text(text: str) -> None:
    """``text`` builds a schedule that passes :func:`check_parsed`, or
    raises InvalidSchedule naming a field (never for :data:`PARSES`)."""
    try:
        schedule = Schedule(text)
    except InvalidSchedule as error:
        assert text not in PARSES, error
        assert error.field in FIELDS
        return
    check_parsed(schedule)


@settings(max_examples=300, deadline=None)
@given(st.text())
@_examples(PARSES)
def test_any_text_parses_or_raises_invalid_schedule(text: str) -> None:
    """Arbitrary text builds a Schedule that round-trips and fires at times
    its fields allow, or raises InvalidSchedule naming a field."""
    _check_text(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(
    ['*', '?', '*/', '/', '-', ',', '#', 'L', 'W', '0', '1', '5', '7', '12',
     '31', '60', 'MON', 'jan', ' ', '@', 'every', 'h', 's']),
    max_size=12).map(''.join))
@_examples(PARSES)
def test_cron_like_text_parses_or_raises_invalid_schedule(text: str) -> None:
    """Text made of cron tokens builds a Schedule that round-trips and
    fires at times its fields allow, or raises InvalidSchedule."""
    _check_text(text)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(EXPRESSIONS, st.sampled_from(ZONES), st.sampled_from(STARTS),
       st.integers(-12, 12))
def test_matches_reference_near_transitions(expr: str, zone: str,
                                            start: datetime,
                                            hours: int) -> None:
    """Over two days around a transition, onecron lists exactly the fires
    of the minute-by-minute reference."""
    schedule = _schedule_or_skip(expr, zone)
    begin = start + timedelta(hours=hours)
    end = begin + timedelta(days=2)
    assert onecron_fires(schedule, begin, end) == reference_fires(
        expr, zone, begin, end)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(EXPRESSIONS, st.sampled_from(ZONES),
       st.datetimes(min_value=datetime(1990, 1, 1),
                    max_value=datetime(2060, 1, 1), timezones=st.just(UTC)))
def test_fires_increase_and_match(expr: str, zone: str,
                                  start: datetime) -> None:
    """Successive fires strictly increase and each matches the expression
    at its wall time (or is the first instant after a gap)."""
    schedule = _schedule_or_skip(expr, zone)
    cron = parse_cron(expr)
    previous = start
    for when in fires(schedule, start, 8):
        assert when.timestamp() > previous.timestamp()
        assert when.tzinfo is schedule.tz
        wall = when.replace(tzinfo=None, fold=0)
        before = datetime.fromtimestamp(when.timestamp() - 1, schedule.tz)
        after_gap = before.utcoffset() != when.utcoffset()
        assert reference_matches(cron, wall) or (
            schedule.wall_clock and after_gap)
        previous = when


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(EXPRESSIONS, st.datetimes(min_value=datetime(1990, 1, 1),
                                 max_value=datetime(2060, 1, 1),
                                 timezones=st.just(UTC)))
def test_no_fire_is_missed_across_months(expr: str, start: datetime) -> None:
    """In UTC, the next fires equal those of a day-by-day reference walk,
    however far apart they are."""
    schedule = _schedule_or_skip(expr, 'UTC')
    cron = parse_cron(expr)
    expected: list[datetime] = []
    day = start.date()
    while len(expected) < 5:
        times = [datetime.combine(day, datetime.min.time(), UTC)
                 + timedelta(hours=h, minutes=m)
                 for h in cron.hours for m in cron.minutes]
        expected += sorted(when for when in times if when > start
                           and reference_matches(cron, when.replace(
                               tzinfo=None)))
        day += timedelta(1)
    assert fires(schedule, start, 5) == expected[:5]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(EXPRESSIONS, st.sampled_from(ZONES),
       st.datetimes(min_value=datetime(1990, 1, 1),
                    max_value=datetime(2060, 1, 1), timezones=st.just(UTC)))
def test_iteration_agrees_with_fresh_schedules(expr: str, zone: str,
                                               start: datetime) -> None:
    """Memo tables change nothing: each fire of a long iteration equals
    the answer of a brand-new schedule asked the same question."""
    schedule = _schedule_or_skip(expr, zone)
    previous = start
    for when in fires(schedule, start, 25):
        fresh = Schedule(expr, timezone=zone).next_after(previous)
        assert iso(when) == iso(fresh)
        previous = when


def test_threads_share_a_schedule() -> None:
    """Threads iterating one schedule at once all get the right fires."""
    schedule = Schedule('*/10 * * * *', timezone='America/New_York')
    start = datetime(2024, 11, 2, tzinfo=UTC)
    expected = fires(Schedule('*/10 * * * *', timezone='America/New_York'),
                     start, 500)
    results: list[list[datetime]] = []

    def run() -> None:
        results.append(fires(schedule, start, 500))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [[iso(when) for when in result] for result in results] == [
        [iso(when) for when in expected]] * 4


def test_pickle_keeps_the_value() -> None:
    """A pickled schedule comes back equal and working."""
    for schedule in (Schedule('30 8 * * MON', timezone='Europe/Zurich'),
                     Schedule(every=timedelta(minutes=5)),
                     Schedule('@every 1h')):
        copy = pickle.loads(pickle.dumps(schedule))
        assert copy == schedule
        start = datetime(2024, 5, 3, tzinfo=UTC)
        assert copy.next_after(start) == schedule.next_after(start)


def test_iteration_uses_the_last_result() -> None:
    """Passing back the last result gives the same answer as a new copy."""
    schedule = Schedule('*/7 * * * *', timezone='America/New_York')
    when = datetime(2024, 11, 3, 4, 50, tzinfo=UTC)
    for _ in range(30):
        fresh = schedule.next_after(datetime.fromtimestamp(
            when.timestamp(), UTC))
        when = schedule.next_after(when)
        assert when == fresh and iso(when) == iso(fresh)


def test_far_future_and_past() -> None:
    """Dates from 1900 to the end of 9999 work; past them is an error."""
    assert Schedule('0 0 1 1 *').next_after(
        datetime(1900, 6, 1, tzinfo=UTC)).year == 1901
    assert Schedule('@daily').next_after(
        datetime(9999, 12, 29, tzinfo=UTC)) == datetime(9999, 12, 30,
                                                        tzinfo=UTC)
    with pytest.raises((OverflowError, ValueError)):
        Schedule('0 0 1 1 *').next_after(datetime(9999, 6, 1, tzinfo=UTC))


def test_a_year_of_daily_gap_times() -> None:
    """Day by day for a year, 02:30 runs at 02:30 where it exists and at
    the end of the gap where it does not."""
    for zone in ('America/New_York', 'Australia/Lord_Howe',
                 'Pacific/Chatham', 'America/Santiago', 'Europe/Zurich'):
        schedule = Schedule('30 2 * * *', timezone=zone)
        tz = ZoneInfo(zone)
        when = datetime(2024, 1, 1, tzinfo=tz)
        for n in range(366):
            day = date(2024, 1, 1) + timedelta(n)
            when = schedule.next_after(when)
            wall = datetime(day.year, day.month, day.day, 2, 30)
            aware = wall.replace(tzinfo=tz)
            exists = aware.astimezone(UTC).astimezone(tz).replace(
                tzinfo=None) == wall
            if exists:
                assert iso(when) == iso(aware), zone
            else:
                before = datetime.fromtimestamp(when.timestamp() - 1, tz)
                assert when.date() == day, zone
                assert before.utcoffset() != when.utcoffset(), zone
