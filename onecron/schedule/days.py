"""Which dates and which times of the day a cron expression matches.

Within a month the matching dates depend only on the month's length and the
weekday of its 1st, so there are at most 28 distinct answers per
expression. The times of the day are held as one bit set per field
(:class:`DayTimes`) and found field by field, so a schedule firing every
second costs no more than one firing once a day. Pure: no clock, no zone.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date
from functools import lru_cache
from operator import sub

from onecron.errors import InvalidSchedule
from onecron.schedule.cron import CronExpression

__all__ = ['DayTimes', 'MatchingDays', 'check_fires', 'day_times',
           'matching_days', 'month_length']

_LENGTHS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EPOCH = date(1970, 1, 1).toordinal()
# memo tables are cleared when they grow past this many entries
_CACHE_LIMIT = 1 << 14


# apps build many schedules of the same few expressions, and the parsed
# expressions are shared (see onecron.schedule.cron): so are their times of
# the day
@lru_cache(maxsize=256)
def day_times(cron: CronExpression) -> DayTimes:
    """The :class:`DayTimes` of ``cron``, shared by its schedules."""
    return DayTimes(cron)


class DayTimes:
    """The fire times of a day of ``cron``, as seconds since midnight.

    Two fixed-size tables, whatever the number of fires: which of the
    1,440 minutes of the day fire (a byte per minute, 1 when its hour and
    minute are allowed), and for each second of a minute how far away the
    next allowed second is. The next fire time is found field by field:
    the rest of this minute, else the next firing minute (``bytes.find``).
    """

    __slots__ = ('first', 'last', 'gap', 'minutes', 'later', 'first_second',
                 'last_second', '_seconds')

    def __init__(self, cron: CronExpression) -> None:
        seconds, minutes, hours = cron.seconds, cron.minutes, cron.hours
        in_minute, in_hour = bytearray(60), bytearray(60)
        for second in seconds:
            in_minute[second] = 1
        for minute in minutes:
            in_hour[minute] = 1
        # one byte past the day, always 0: no minute 1440 fires
        day = bytearray(1441)
        for hour in hours:
            day[hour * 60:hour * 60 + 60] = in_hour
        #: a byte per minute of the day, 1 for those that fire
        self.minutes = bytes(day)
        #: for each second of a minute up to the last allowed one, the
        #: seconds to the next allowed one
        self.later = bytes(in_minute.find(1, second) - second
                           for second in range(seconds[-1] + 1))
        self._seconds = bytes(in_minute)
        #: the first and the last allowed second of a minute
        self.first_second, self.last_second = seconds[0], seconds[-1]
        #: the first and the last fire time of the day
        self.first = (hours[0] * 60 + minutes[0]) * 60 + seconds[0]
        self.last = (hours[-1] * 60 + minutes[-1]) * 60 + seconds[-1]
        #: the shortest gap between consecutive fire times, in seconds
        self.gap = _field_gap(cron)

    def at_or_after(self, second: int) -> int:
        """The first fire time at or after ``second`` of the day, or -1
        when none is left (``second`` may be negative or past the day)."""
        if second <= 0:
            return self.first
        if second > 86400:
            return -1
        minute, rest = divmod(second, 60)
        if rest > self.last_second:  # none left in this minute
            minute += 1
        elif self.minutes[minute]:
            return second + self.later[rest]
        minute = self.minutes.find(1, minute)
        return -1 if minute < 0 else minute * 60 + self.first_second

    def before(self, second: int) -> int:
        """The last fire time before ``second`` of the day, or -1 when
        there is none (``second`` may be negative or past the day)."""
        if second <= 0:
            return -1
        if second > 86400:
            return self.last
        minute, rest = divmod(second - 1, 60)
        if self.minutes[minute]:
            earlier = self._seconds.rfind(1, 0, rest + 1)
            if earlier >= 0:
                return minute * 60 + earlier
        minute = self.minutes.rfind(1, 0, minute)
        return -1 if minute < 0 else minute * 60 + self.last_second


def _field_gap(cron: CronExpression) -> int:
    """The shortest gap between consecutive fire times of a day, the last
    one of a day and the first of the next included, in seconds.

    Fire times are the sorted products of hour, minute and second, so
    consecutive ones differ in the second alone (the smallest step between
    two seconds), or go from the last second of one minute to the first of
    the next allowed minute (the smallest step between two minutes, less
    the spread of the seconds), and the same for hours and days.
    """
    seconds, minutes, hours = cron.seconds, cron.minutes, cron.hours
    in_minute = seconds[-1] - seconds[0]
    in_hour = (minutes[-1] - minutes[0]) * 60 + in_minute
    in_day = (hours[-1] - hours[0]) * 3600 + in_hour
    return min(_step(seconds), 60 * _step(minutes) - in_minute,
               3600 * _step(hours) - in_hour, 86400 - in_day)


def _step(values: tuple[int, ...]) -> int:
    """The smallest difference of consecutive sorted ``values``; a day for
    a single one (longer than any gap within a field)."""
    return min(map(sub, values[1:], values), default=86400)


class MatchingDays:
    """The dates ``cron`` matches, as days since 1970-01-01, memoized.

    Only ever adds entries that are pure functions of the expression, so
    concurrent callers at worst compute one twice.
    """

    def __init__(self, cron: CronExpression) -> None:
        self.cron = cron
        # (month length, weekday of the 1st) -> matching days of the month
        self._shapes: dict[tuple[int, int], tuple[int, ...]] = {}
        #: day -> the first matching day on or after it, for the days asked
        #: about so far; hot paths read it directly before calling
        #: :meth:`first_from`
        self.known: dict[int, int] = {}
        # year * 12 + month -> (its 1st as a day number, matching days)
        self._months: dict[int, tuple[int, tuple[int, ...]]] = {}

    def first_from(self, day: int) -> int:
        """The first matching day on or after ``day``.

        :raises OverflowError: when that would be after the year 9999
        """
        found = self.known.get(day)
        if found is None:
            when = date.fromordinal(day + _EPOCH)
            first, days = self._month(when.year, when.month,
                                      day - when.day + 1)
            i = bisect_left(days, when.day)
            if i < len(days):
                found = first + days[i] - 1
            else:
                found = self._after_month(when.year, when.month)
                self.known[found] = found  # asked for next, mostly
            if len(self.known) >= _CACHE_LIMIT:
                self.known.clear()
            self.known[day] = found
        return found

    def matches(self, day: int) -> bool:
        """Whether ``day`` matches the day, month and weekday fields."""
        return self.first_from(day) == day

    def _after_month(self, year: int, month: int) -> int:
        """The first matching day after the given month."""
        # the calendar repeats every 400 years and check_fires proved some
        # month matches, so this ends long before the bound
        for _ in range(12 * 400 + 1):
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            if year > 9999:
                break
            first, days = self._month(year, month)
            if days:
                return first + days[0] - 1
        raise OverflowError(f'{self.cron.text!r} does not fire again '
                            f'before the year 10000')

    def _month(self, year: int, month: int,
               first: int | None = None) -> tuple[int, tuple[int, ...]]:
        """The 1st of a month as a day number (``first``, if known), and
        its matching days."""
        key = year * 12 + month
        found = self._months.get(key)
        if found is None:
            if first is None:
                first = date(year, month, 1).toordinal() - _EPOCH
            days: tuple[int, ...] = ()
            if month in self.cron.months:
                # 1970-01-01 was a Thursday, cron weekday 4
                shape = (month_length(year, month), (first + 4) % 7)
                shape_days = self._shapes.get(shape)
                if shape_days is None:
                    shape_days = self._shapes[shape] = matching_days(
                        self.cron, *shape)
                days = shape_days
            if len(self._months) >= _CACHE_LIMIT:
                self._months.clear()
            found = self._months[key] = (first, days)
        return found


def month_length(year: int, month: int) -> int:
    """Days in ``month`` of ``year`` (Gregorian)."""
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _LENGTHS[month - 1]


def matching_days(cron: CronExpression, length: int,
                  first_weekday: int) -> tuple[int, ...]:
    """The sorted days 1..``length`` of a month that ``cron`` matches.

    The month field is not looked at: the caller knows the month.

    :param length: days in the month, 28 to 31
    :param first_weekday: weekday of the 1st, cron numbering (0 = Sunday)
    """
    last_weekday = (first_weekday + length - 1) % 7
    by_day = {day for day in cron.days if day <= length}
    if cron.last_day:
        by_day.add(length)
    if cron.last_workday:
        by_day.add(_nearest_workday(length, length, first_weekday))
    for day in cron.nearest_workdays:
        if day <= length:  # 31W does not run in a 30-day month
            by_day.add(_nearest_workday(day, length, first_weekday))
    by_weekday = {day for day in range(1, length + 1)
                  if (first_weekday + day - 1) % 7 in cron.weekdays}
    for weekday, k in cron.nth_weekdays:
        day = 1 + (weekday - first_weekday) % 7 + 7 * (k - 1)
        if day <= length:
            by_weekday.add(day)
    for weekday in cron.last_weekdays:
        by_weekday.add(length - (last_weekday - weekday) % 7)
    # Vixie cron: both restricted means either may match, else both must
    if cron.day_restricted and cron.weekday_restricted:
        return tuple(sorted(by_day | by_weekday))
    return tuple(sorted(by_day & by_weekday))


def check_fires(cron: CronExpression) -> None:
    """Raise unless ``cron`` matches at least one day of some month.

    Every month of a given length starts on every weekday somewhere in the
    400-year Gregorian cycle, so trying each month, length and weekday of
    the 1st is exact (February counts with 29 days as well as 28).

    :raises InvalidSchedule: for ``* * 30 2 *`` and other dead schedules
    """
    # the common cases: a day every month has, on any weekday; or a
    # weekday, which every month has, alone or as an alternative
    if cron.days and min(cron.days) <= 28 and len(cron.weekdays) == 7:
        return
    if cron.weekdays and (len(cron.days) == 31 or cron.day_restricted
                          and cron.weekday_restricted):
        return
    for month in sorted(cron.months):
        lengths = (28, 29) if month == 2 else (_LENGTHS[month - 1],)
        for length in lengths:
            for first_weekday in range(7):
                if matching_days(cron, length, first_weekday):
                    return
    *_, day, month_text, weekday = cron.fields
    if not cron.weekday_restricted and len(cron.weekdays) == 7:
        message = f'day {day} never occurs in month {month_text}'
    else:
        message = (f'no day matches day {day}, month {month_text} and '
                   f'weekday {weekday}')
    raise InvalidSchedule(f'{message}: the schedule can never fire',
                          field='day', value=cron.text)


def _nearest_workday(day: int, length: int, first_weekday: int) -> int:
    """Quartz's ``nW``: the Monday-Friday nearest ``day``, same month."""
    weekday = (first_weekday + day - 1) % 7
    if weekday == 6:  # Saturday: Friday before, or Monday if the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 0:  # Sunday: Monday after, or Friday if the last day
        return day + 1 if day < length else day - 2
    return day
