"""A :class:`~onecron.schedule.Schedule` in other schedulers' terms:
five cron fields and a zone (:func:`cron_expression`) or systemd
``OnCalendar=`` values (:func:`on_calendar`).

What cannot be translated raises
:class:`~onecron.errors.UntranslatableSchedule` naming the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from onecron.errors import UntranslatableSchedule
from onecron.schedule.cron import CronExpression
from onecron.schedule.rules import Schedule

#: which cron reads the expression: Vixie cron and cronie, or Kubernetes
#: (robfig/cron, which reads ``*/n`` days as restricted)
Dialect = Literal['cron', 'kubernetes']

_DAY = 86400
# systemd weekday names in cron numbering (0 = Sunday)
_SYSTEMD_DAYS = ('Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat')
# OnCalendar= lines one interval may take before it is refused
_MAX_EVENTS = 24


# -- translation ------------------------------------------------------------

def cron_expression(schedule: Schedule, *,
                    dialect: Dialect = 'cron') -> tuple[str, str]:
    """``schedule`` as five cron fields and the zone to read them in.

    Fields are rebuilt from the parsed values (``*``, ``*/n``, ``a-b/n``,
    ranges and lists; weekdays 0-6), so ``SAT-SUN`` or a 7 for Sunday
    reach no cron that reads them differently. Intervals are given in UTC.

    :param dialect: ``'cron'`` (Vixie cron, cronie) or ``'kubernetes'``
    :raises UntranslatableSchedule: naming the job's field and the reason
    """
    if schedule.every is not None:
        seconds, minutes, hours = _interval_fields(schedule)
        if seconds != {0}:
            raise UntranslatableSchedule(
                f'{schedule} fires at seconds other than :00; 5-field cron '
                f'fires on whole minutes')
        return (f'{_cron_field(minutes, 0, 59)} {_cron_field(hours, 0, 23)}'
                ' * * *'), 'UTC'
    cron = _cron_of(schedule)
    if cron.seconds != (0,):
        raise UntranslatableSchedule(
            f'{cron.text!r} has a seconds field ({cron.fields[0]}); 5-field '
            f'cron fires on whole minutes')
    day, weekday = _cron_days(cron, dialect)
    return ' '.join((_cron_field(cron.minutes, 0, 59),
                     _cron_field(cron.hours, 0, 23), day,
                     _cron_field(cron.months, 1, 12),
                     weekday)), schedule.timezone


def on_calendar(schedule: Schedule) -> list[str]:
    """``schedule`` as systemd ``OnCalendar=`` values, zone appended.

    One value for most schedules, e.g. ``*-*-* 08:30:00 Europe/Zurich``;
    several when a day matching either the day or the weekday field runs
    (systemd requires both), or for an interval whose times of day are not
    one list of hours by one of minutes. ``L``, ``n#k`` and ``nL`` become
    ``~01``, a week of days and ``~07/1``.

    :raises UntranslatableSchedule: for ``W`` days, intervals that do not
        divide a day, and combinations systemd cannot say
    """
    if schedule.every is not None:
        return [f'*-*-* {clock} UTC' for clock in _interval_clocks(schedule)]
    cron = _cron_of(schedule)
    clock = ':'.join((_calendar_part(cron.hours, 0, 23),
                      _calendar_part(cron.minutes, 0, 59),
                      _calendar_part(cron.seconds, 0, 59)))
    month = _calendar_part(cron.months, 1, 12)
    events = []
    for weekdays, day in _calendar_days(cron):
        names = '' if weekdays is None else f'{_weekday_names(weekdays)} '
        separator = '' if day.startswith('~') else '-'
        events.append(f'{names}*-{month}{separator}{day} {clock} '
                      f'{schedule.timezone}')
    return events


def _cron_of(schedule: Schedule) -> CronExpression:
    assert schedule.cron is not None  # not an interval
    return schedule.cron


def _interval_times(schedule: Schedule) -> list[int]:
    """The interval's fire times as seconds of the (UTC) day."""
    assert schedule.every is not None
    step = int(schedule.every.total_seconds())
    if _DAY % step:
        raise UntranslatableSchedule(
            f'{schedule} does not divide a day: its times of day shift from '
            f'day to day, which no calendar expression can follow')
    return list(range(0, _DAY, step))


def _interval_fields(schedule: Schedule) -> tuple[set[int], set[int],
                                                  set[int]]:
    """Seconds, minutes and hours whose every combination is a fire time."""
    times = _interval_times(schedule)
    seconds = {t % 60 for t in times}
    minutes = {t // 60 % 60 for t in times}
    hours = {t // 3600 for t in times}
    if len(seconds) * len(minutes) * len(hours) != len(times):
        raise UntranslatableSchedule(
            f'{schedule} fires at different minutes in different hours; one '
            f'cron line takes each listed minute in each listed hour')
    return seconds, minutes, hours


def _interval_clocks(schedule: Schedule) -> list[str]:
    """``HH:MM:SS`` patterns that together cover the interval's times."""
    try:
        seconds, minutes, hours = _interval_fields(schedule)
    except UntranslatableSchedule:
        times = _interval_times(schedule)
        by_minute: dict[tuple[int, int], set[int]] = {}
        for t in times:
            by_minute.setdefault((t // 60 % 60, t % 60), set()).add(t // 3600)
        if len(by_minute) > _MAX_EVENTS:
            raise UntranslatableSchedule(
                f'{schedule} would take {len(by_minute)} OnCalendar= lines '
                f'(at most {_MAX_EVENTS})') from None
        return [f'{_calendar_part(hours_, 0, 23)}:{minute:02}:{second:02}'
                for (minute, second), hours_ in sorted(by_minute.items())]
    return [':'.join((_calendar_part(hours, 0, 23),
                      _calendar_part(minutes, 0, 59),
                      _calendar_part(seconds, 0, 59)))]


def _quartz_days(cron: CronExpression) -> str | None:
    """The Quartz extensions ``cron`` uses, in words, or None."""
    *_, day, _, weekday = cron.fields
    if cron.last_day or cron.last_workday or cron.nearest_workdays:
        return f'day {day!r} (L and W)'
    if cron.nth_weekdays or cron.last_weekdays:
        return f'weekday {weekday!r} (# and L)'
    return None


def _cron_days(cron: CronExpression, dialect: Dialect) -> tuple[str, str]:
    """The day and weekday fields, read by ``dialect`` as onecron does.

    Vixie cron, cronie and onecron run a day matching either field when
    both are restricted (neither starts with ``*``), one matching both
    otherwise; robfig/cron (Kubernetes) takes only a plain ``*`` as
    unrestricted.
    """
    target = 'Kubernetes' if dialect == 'kubernetes' else 'cron'
    quartz = _quartz_days(cron)
    if quartz is not None:
        raise UntranslatableSchedule(
            f'{cron.text!r} uses Quartz extensions in {quartz}, which '
            f'{target} does not support')
    every_day = len(cron.days) == 31
    every_weekday = len(cron.weekdays) == 7
    if cron.day_restricted and cron.weekday_restricted:  # either matches
        if every_day or every_weekday:
            return '*', '*'
        return (_cron_field(cron.days, 1, 31, star=False),
                _cron_field(cron.weekdays, 0, 6, star=False))
    # both must match: one field must read as unrestricted
    if every_day:
        return '*', _cron_field(cron.weekdays, 0, 6)
    if every_weekday:
        return _cron_field(cron.days, 1, 31), '*'
    day = _cron_field(cron.days, 1, 31)
    weekday = _cron_field(cron.weekdays, 0, 6)
    unrestricted = [text for text, restricted in (
        (day, cron.day_restricted), (weekday, cron.weekday_restricted))
        if not restricted]
    if dialect == 'kubernetes' or not any(
            text.startswith('*') for text in unrestricted):
        *_, day_text, _, weekday_text = cron.fields
        raise UntranslatableSchedule(
            f'{cron.text!r} runs on days matching both day {day_text!r} and '
            f'weekday {weekday_text!r}; {target} would run on days matching '
            f'either')
    return day, weekday


def _calendar_days(
        cron: CronExpression) -> list[tuple[frozenset[int] | None, str]]:
    """(weekdays or None for any, day part) pairs; a day matching any pair
    runs. systemd requires a weekday and a date to match both."""
    *_, day_text, _, weekday_text = cron.fields
    if cron.last_workday or cron.nearest_workdays:
        raise UntranslatableSchedule(
            f'{cron.text!r}: systemd has no "nearest weekday" for day '
            f'{day_text!r}')
    days: list[str] = []
    if cron.days:
        days.append(_calendar_part(cron.days, 1, 31))
    if cron.last_day:
        days.append('~01')
    weekly: list[tuple[frozenset[int] | None, str]] = []
    if cron.weekdays:
        weekly.append((_any_weekday(cron.weekdays), '*'))
    weekly += [(frozenset({weekday}), f'{7 * k - 6:02}..{7 * k:02}')
               for weekday, k in sorted(cron.nth_weekdays)]
    weekly += [(frozenset({weekday}), '~07/1')
               for weekday in sorted(cron.last_weekdays)]
    if cron.day_restricted and cron.weekday_restricted:  # either matches
        if days == ['*'] or weekly == [(None, '*')]:
            return [(None, '*')]
        return [(None, day) for day in days] + weekly
    if not cron.day_restricted:  # '*', '?' or '*/n' days: plain ones
        plain = cron.days
        if cron.last_day and len(plain) < 31:
            raise UntranslatableSchedule(
                f'{cron.text!r}: systemd cannot say day {day_text!r}')
        days = days[:1]
        pairs = []
        for weekdays, part in weekly:
            if part == '*':
                pairs.append((weekdays, days[0]))
            elif part.startswith('~'):
                if len(plain) < 31:
                    raise UntranslatableSchedule(
                        f'{cron.text!r}: systemd cannot combine day '
                        f'{day_text!r} with weekday {weekday_text!r}')
                pairs.append((weekdays, part))
            else:
                first = int(part[:2])
                week = plain & set(range(first, first + 7))
                if week:
                    pairs.append((weekdays, _calendar_part(week, 1, 31)))
        return pairs
    # restricted days, unrestricted ('*', '?', '*/n') weekdays
    if len(weekly) > 1 and len(cron.weekdays) < 7:
        raise UntranslatableSchedule(
            f'{cron.text!r}: systemd cannot say weekday {weekday_text!r}')
    return [(_any_weekday(cron.weekdays), day) for day in days]


def _any_weekday(weekdays: frozenset[int]) -> frozenset[int] | None:
    return None if len(weekdays) == 7 else weekdays


def _progression(values: Sequence[int]) -> int | None:
    """The step of sorted ``values`` if they are evenly spaced (step > 1)."""
    if len(values) < 2:
        return None
    step = values[1] - values[0]
    if step > 1 and all(b - a == step for a, b in zip(values, values[1:])):
        return step
    return None


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted ``values`` as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _listed(values: Sequence[int], dash: str, width: int = 0) -> str:
    """Runs of three or more as ranges, other values one by one."""
    items = []
    for first, last in _runs(values):
        if last - first >= 2:
            items.append(f'{first:0{width}}{dash}{last:0{width}}')
        else:
            items += [f'{value:0{width}}' for value in range(first, last + 1)]
    return ','.join(items)


def _cron_field(values: Iterable[int], low: int, high: int, *,
                star: bool = True) -> str:
    """A cron field for ``values``; ``star=False`` never starts with ``*``
    (Vixie cron reads such a day or weekday field as unrestricted)."""
    ordered = sorted(values)
    step = _progression(ordered)
    if star:
        if ordered == list(range(low, high + 1)):
            return '*'
        # '*/6' reads badly for Saturday and Sunday: steps over weekdays
        # only for three or more
        if (step and ordered[0] == low and ordered[-1] + step > high
                and (len(ordered) > 2 or high > 7)):
            return f'*/{step}'
    if step and len(ordered) > 2:
        return f'{ordered[0]}-{ordered[-1]}/{step}'
    return _listed(ordered, '-')


def _calendar_part(values: Iterable[int], low: int, high: int) -> str:
    """A component of a systemd calendar event: ``*``, ``05/15``, lists."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return '*'
    step = _progression(ordered)
    if step and len(ordered) > 2 and ordered[-1] + step > high:
        return f'{ordered[0]:02}/{step}'
    return _listed(ordered, '..', width=2)


def _weekday_names(weekdays: Iterable[int]) -> str:
    monday_first = sorted((day + 6) % 7 for day in weekdays)
    named = _listed(monday_first, '..')
    return re.sub('[0-6]', lambda m: _SYSTEMD_DAYS[(int(m[0]) + 1) % 7],
                  named)
