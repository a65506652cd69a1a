"""Schedules in plain English, for status pages and log lines.

Common shapes get a sentence ("at 08:30 every day, Europe/Zurich", "every 15
minutes", "at 09:00 on the second Monday of the month, UTC"); anything more
exotic falls back to the expression itself, which is never wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta

from onecron.schedule.cron import CronExpression

__all__ = ['describe_cron', 'duration_words']

_MONTHS = ('January', 'February', 'March', 'April', 'May', 'June', 'July',
           'August', 'September', 'October', 'November', 'December')
_WEEKDAYS = ('Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday',
             'Friday', 'Saturday')
_COUNTS = ('first', 'second', 'third', 'fourth', 'fifth')
_STEP = re.compile(r'\*/([0-9]+)')
# more clock times than this read better as the expression
_MAX_TIMES = 6


def duration_words(every: timedelta, *, short: bool = False) -> str:
    """``1 hour 30 minutes`` (``hour`` for exactly one), or ``1h30m``."""
    seconds = int(every.total_seconds())
    parts = [(seconds // 3600, 'hour', 'h'),
             (seconds // 60 % 60, 'minute', 'm'),
             (seconds % 60, 'second', 's')]
    parts = [part for part in parts if part[0]]
    if short:
        return ''.join(f'{count}{unit}' for count, _, unit in parts)
    if len(parts) == 1 and parts[0][0] == 1:
        return parts[0][1]
    return ' '.join(f'{count} {word}{"s" * (count != 1)}'
                    for count, word, _ in parts)


def describe_cron(cron: CronExpression, zone: str) -> str:
    """``cron`` in words, naming ``zone`` wherever it changes the meaning."""
    time = _time_words(cron)
    months = _month_words(cron.months)
    days = _day_words(cron, months)
    if time is None or days is None:
        return f'cron {cron.text!r}, {zone}'
    if len(cron.hours) == 24 and days == 'every day':
        return time  # the same in every zone with whole-hour offsets
    if time.startswith('every ') and days == 'every day':
        return f'{time}, {zone}'
    return f'{time} {days}, {zone}'


def _time_words(cron: CronExpression) -> str | None:
    *seconds_text, minute_text, hour_text, _, _, _ = cron.fields
    seconds, minutes, hours = cron.seconds, cron.minutes, cron.hours
    every_hour = len(hours) == 24
    if len(seconds) > 1:
        if len(minutes) < 60 or not every_hour:
            return None
        if len(seconds) == 60:
            return 'every second'
        step = _even_step(seconds_text[0], 60)
        return f'every {step} seconds' if step else None
    second = seconds[0]
    if len(minutes) * len(hours) <= _MAX_TIMES:
        return 'at ' + _join(_clock(h, m, second)
                             for h in hours for m in minutes)
    if second:
        return None
    minute_step = _even_step(minute_text, 60)
    hour_step = _even_step(hour_text, 24)
    if every_hour:
        if len(minutes) == 60:
            return 'every minute'
        if minute_step:
            return f'every {minute_step} minutes'
        label = 'minute' if len(minutes) == 1 else 'minutes'
        return f'at {label} {_join(map(str, minutes))} of every hour'
    if len(minutes) == 1 and hour_step:
        return f'every {hour_step} hours at minute {minutes[0]}'
    if _is_run(hours):
        first = _clock(hours[0], minutes[0])
        last = _clock(hours[-1], minutes[-1])
        if len(minutes) == 60:
            return f'every minute from {first} to {last}'
        if minute_step:
            return (f'every {minute_step} minutes from {first} '
                    f'to {last}')
        if len(minutes) == 1:
            return (f'at minute {minutes[0]} of every hour from {first} '
                    f'to {last}')
    return None


def _even_step(text: str, size: int) -> str | None:
    """The n of a ``*/n`` field when it divides ``size``, so that fires
    are n apart all round: ``*/45`` minutes are :00 and :45, and ``*/100``
    is :00 alone."""
    step = _STEP.fullmatch(text)
    if step and len(step[1]) <= 2 and size % int(step[1]) == 0:
        return step[1]
    return None


def _day_words(cron: CronExpression, months: str) -> str | None:
    """``on Monday to Friday``, ``on the 1st of the month``, ...; None for
    ``*/n`` days or weekdays and other shapes that read badly."""
    *_, day_text, _, weekday_text = cron.fields
    every_date = day_text in ('*', '?')
    every_weekday = weekday_text in ('*', '?')
    if ((not every_date and day_text.startswith('*'))
            or (not every_weekday and weekday_text.startswith('*'))):
        return None
    of_month = f' of {months}' if months else ' of the month'
    in_months = f' in {months}' if months else ''
    parts = []
    if not every_date:
        dates = [_ordinal(day) for day in sorted(cron.days)]
        if _is_run(sorted(cron.days)) and len(dates) > 2:
            dates = [f'{dates[0]} to the {dates[-1]}']
        elif len(dates) > 4:
            return None
        dates = [f'the {day}' for day in dates]
        dates += ['the last day'] * cron.last_day
        dates += ['the last weekday'] * cron.last_workday
        dates += [f'the weekday nearest the {_ordinal(day)}'
                  for day in sorted(cron.nearest_workdays)]
        parts.append(f'on {_join(dates)}{of_month}')
    if not every_weekday:
        if cron.weekdays:
            parts.append(f'on {_weekday_words(cron.weekdays)}{in_months}')
        parts += [f'on the {_COUNTS[k - 1]} {_WEEKDAYS[weekday]}{of_month}'
                  for weekday, k in sorted(cron.nth_weekdays)]
        parts += [f'on the last {_WEEKDAYS[weekday]}{of_month}'
                  for weekday in sorted(cron.last_weekdays)]
    # both fields restricted: a day matching either one runs
    return ' or '.join(parts) if parts else f'every day{in_months}'


def _weekday_words(weekdays: Iterable[int]) -> str:
    # Monday first, the way a week reads
    days = sorted(weekdays, key=lambda day: (day + 6) % 7)
    if len(days) > 2 and _is_run([(day + 6) % 7 for day in days]):
        return f'{_WEEKDAYS[days[0]]} to {_WEEKDAYS[days[-1]]}'
    return _join(_WEEKDAYS[day] for day in days)


def _month_words(months: Iterable[int]) -> str:
    """'' for every month, else ``January to March``, ``May and July``."""
    ordered = sorted(months)
    if len(ordered) == 12:
        return ''
    if len(ordered) > 2 and _is_run(ordered):
        return f'{_MONTHS[ordered[0] - 1]} to {_MONTHS[ordered[-1] - 1]}'
    return _join(_MONTHS[month - 1] for month in ordered)


def _clock(hour: int, minute: int, second: int = 0) -> str:
    if second:
        return f'{hour:02}:{minute:02}:{second:02}'
    return f'{hour:02}:{minute:02}'


def _ordinal(n: int) -> str:
    suffix = 'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(
        n % 10, 'th')
    return f'{n}{suffix}'


def _is_run(values: Sequence[int]) -> bool:
    """Whether sorted ``values`` are consecutive integers."""
    return bool(values) and values[-1] - values[0] == len(values) - 1


def _join(words: Iterable[str]) -> str:
    items = list(words)
    if len(items) <= 1:
        return ''.join(items)
    return f'{", ".join(items[:-1])} and {items[-1]}'
