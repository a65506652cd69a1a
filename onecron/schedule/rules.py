"""``Schedule``: when a job runs, as a pure function of time.

A schedule is a cron expression (or the keyword form of one) in an IANA time
zone, or a fixed interval. It is checked completely when it is built, so a
bad one fails at registration; after that :meth:`Schedule.next_after` never
raises for an aware datetime. No clock is read: "now" is always passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from onecron.errors import InvalidSchedule
from onecron.schedule.cron import (
    CronExpression,
    fields_from_keywords,
    parse_cron,
    parse_every,
)
from onecron.schedule.days import check_fires
from onecron.schedule.timeline import Timeline
from onecron.schedule.words import describe_cron, duration_words

__all__ = ['Schedule']

_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
_SECOND = timedelta(seconds=1)
_NOTHING = object()


class Schedule:
    """When a job runs: a cron expression in a zone, or a fixed interval.

    ``Schedule('30 8 * * MON-FRI', timezone='Europe/Zurich')``,
    ``Schedule(hour=8, minute=30)``, ``Schedule('@daily')`` and
    ``Schedule(every=timedelta(minutes=5))`` are all schedules. Cron
    expressions are evaluated in ``timezone``, never the server's zone;
    across DST a schedule with fixed minute and hour follows the wall clock
    (a time skipped in spring runs once right after the gap, a repeated time
    once, at its first occurrence) and every other schedule follows elapsed
    time (skipped times do not run, repeated times run twice). Intervals fire
    whenever the time since the Unix epoch is a multiple of ``every``, so all
    processes agree on them.

    Schedules are immutable and compare and hash by value.

    :param expr: a cron expression of 5 fields (minute hour day month
        weekday) or 6 (seconds first), a macro such as ``@daily``, or
        ``@every 1h30m``
    :param minute, hour, day, month, weekday: the keyword form, instead of
        ``expr``: ints or field texts; fields after the last given one
        default to their minimum, so ``hour=8`` runs once, at 08:00
    :param timezone: an IANA zone name or a :class:`zoneinfo.ZoneInfo`
    :param every: a fixed interval of whole seconds, instead of ``expr``
    :raises InvalidSchedule: (a :exc:`ValueError`) for anything that cannot
        be parsed, is out of range, can never fire, or names an unknown zone
    """

    __slots__ = ('_expr', '_every', '_tz', '_zone', '_cron', '_next_fire',
                 '_last', '_gap')

    def __init__(self, expr: str | None = None, *,
                 hour: int | str | None = None,
                 minute: int | str | None = None,
                 day: int | str | None = None,
                 month: int | str | None = None,
                 weekday: int | str | None = None,
                 timezone: str | ZoneInfo = 'UTC',
                 every: timedelta | None = None) -> None:
        self._tz, self._zone = _zone(timezone)
        keywords = {'minute': minute, 'hour': hour, 'day': day,
                    'month': month, 'weekday': weekday}
        given = [name for name, value in keywords.items()
                 if value is not None]
        if expr is not None and (given or every is not None):
            others = ', '.join(given + ['every'] * (every is not None))
            raise InvalidSchedule(f'give one of a cron expression, keywords '
                                  f'or every=, not several: {expr!r} and '
                                  f'{others}', field='expr', value=expr)
        if every is not None and given:
            raise InvalidSchedule(f'give every= or keywords, not both: '
                                  f'{", ".join(given)}', field='every',
                                  value=every)
        if expr is not None:
            if not isinstance(expr, str):
                raise InvalidSchedule(f'a cron expression must be a str, '
                                      f'got {expr!r}', field='expr',
                                      value=expr)
            every = parse_every(expr)
        elif every is None:
            expr = ' '.join(fields_from_keywords(**keywords))
        # the last result and its instant, for the iteration fast path
        self._last: tuple[object, int] = (_NOTHING, 0)
        self._cron: CronExpression | None = None
        # instant -> the next fire, as an instant and a datetime
        self._next_fire: Callable[[int], tuple[int, datetime]]
        if every is not None:
            self._next_fire = partial(_next_multiple, _interval(every),
                                      self._tz)
            self._every: timedelta | None = every
            self._expr = (None if expr is None
                          else f'@every {duration_words(every, short=True)}')
            self._gap = every
        else:
            assert expr is not None
            self._cron = parse_cron(expr)
            check_fires(self._cron)
            timeline = Timeline(self._cron, self._tz)
            self._next_fire = timeline.next_after
            self._every = None
            self._expr = self._cron.text
            # once per schedule: the jitter reads it at every fire
            self._gap = timedelta(seconds=timeline.shortest_gap())

    @property
    def expr(self) -> str | None:
        """The cron expression as normalized text (the keyword form as its
        five fields), or None for ``every=``."""
        return self._expr

    @property
    def every(self) -> timedelta | None:
        """The fixed interval, or None for a cron schedule."""
        return self._every

    @property
    def shortest_gap(self) -> timedelta:
        """The shortest elapsed time between two consecutive fires.

        ``every`` for an interval. For a cron expression, a lower bound
        that counts clock changes: the first and second pass over a
        repeated hour can be closer than any two fires of a plain day
        (``0 0,50 */2 * * *`` in Europe/Zurich fires at 02:50 and, ten
        minutes later, at the second 02:00). It is exact when every day
        may fire; days without fires are not counted, so a job that skips
        days counts as firing daily (and, where clocks change, as at most
        three days apart). Computed once, when the schedule is built; it
        bounds the jitter (see :meth:`onecron.job.Job.offset_window`).
        """
        return self._gap

    @property
    def timezone(self) -> str:
        """The name of the zone the schedule is evaluated in."""
        return self._zone

    @property
    def tz(self) -> ZoneInfo:
        """The zone the schedule is evaluated in."""
        return self._tz

    @property
    def cron(self) -> CronExpression | None:
        """The parsed cron expression, or None for an interval."""
        return self._cron

    @property
    def wall_clock(self) -> bool:
        """Whether the schedule follows the wall clock across DST: True
        when minute and hour are both fixed (neither starts with ``*``)."""
        return self._cron is not None and self._cron.wall_clock

    def next_after(self, dt: datetime) -> datetime:
        """The first fire time strictly after ``dt``.

        :param dt: an aware datetime, in any zone
        :returns: an aware datetime in :attr:`tz`; its ``fold`` is 1 for the
            second pass over a repeated hour
        :raises ValueError: for a naive datetime
        """
        last, t = self._last
        if dt is not last:  # iterating s = next_after(s) skips this work
            t = _instant(dt)
        t, result = self._next_fire(t)
        self._last = (result, t)
        return result

    def describe(self) -> str:
        """The schedule in plain words, e.g. ``at 08:30 every day,
        Europe/Zurich`` or ``every 15 minutes``."""
        if self._cron is None:
            assert self._every is not None
            return f'every {duration_words(self._every)}'
        return describe_cron(self._cron, self._zone)

    def _key(self) -> tuple[object, ...]:
        return (None if self._cron is None else self._expr, self._every,
                self._zone)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        if self._expr is not None:
            return self._expr
        assert self._every is not None
        return f'@every {duration_words(self._every, short=True)}'

    def __repr__(self) -> str:
        return f'<Schedule {str(self)!r} {self._zone}>'

    def __reduce__(self) -> tuple[object, ...]:
        # rebuilt from its value: the memo tables stay behind
        if self._cron is None:
            return (_restore, (None, self._every, self._zone))
        return (_restore, (self._expr, None, self._zone))


def _restore(expr: str | None, every: timedelta | None,
             zone: str) -> Schedule:
    return Schedule(expr, every=every, timezone=zone)


def _zone(timezone: object) -> tuple[ZoneInfo, str]:
    if isinstance(timezone, ZoneInfo):
        return timezone, timezone.key or str(timezone)
    if not isinstance(timezone, str):
        raise InvalidSchedule(f'timezone must be an IANA name such as '
                              f"'Europe/Zurich' or a ZoneInfo, got "
                              f'{timezone!r}', field='timezone',
                              value=timezone)
    try:
        return ZoneInfo(timezone), timezone
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # not found, not a normalized key, a directory, a file that is not
        # TZif data: all the same to the caller
        raise InvalidSchedule(f'unknown time zone {timezone!r}; use an '
                              f"IANA name such as 'Europe/Zurich'",
                              field='timezone', value=timezone) from None


def _interval(every: object) -> int:
    """``every`` as whole seconds, checked."""
    if not isinstance(every, timedelta):
        raise InvalidSchedule(f'every must be a timedelta, got {every!r}',
                              field='every', value=every)
    if every <= timedelta(0):
        raise InvalidSchedule(f'every={every!r} must be positive',
                              field='every', value=every)
    if every % _SECOND:
        raise InvalidSchedule(f'every={every!r} must be a whole number of '
                              f'seconds', field='every', value=every)
    return every // _SECOND


def _next_multiple(interval: int, tz: ZoneInfo,
                   t: int) -> tuple[int, datetime]:
    """The first multiple of ``interval`` after ``t``: fixed intervals
    count from the Unix epoch, the same in every process."""
    t = (t // interval + 1) * interval
    return t, datetime.fromtimestamp(t, tz)


def _instant(dt: datetime) -> int:
    """``dt`` as whole seconds since the epoch, rounded down (fires are
    whole seconds, so the first fire after ``dt`` is the first one after
    this)."""
    if not isinstance(dt, datetime):
        raise TypeError(f'next_after needs a datetime, got {dt!r}')
    try:
        # exact integer arithmetic: float timestamps lose the microseconds
        # of far-future dates; subtracting refuses naive datetimes
        elapsed = dt - _EPOCH
    except TypeError:
        raise ValueError(f'next_after needs an aware datetime (with '
                         f'tzinfo), got the naive {dt!r}') from None
    return elapsed.days * 86400 + elapsed.seconds
