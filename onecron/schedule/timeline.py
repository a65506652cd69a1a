"""The fire instants of a cron expression in one time zone, DST included.

Instants are whole seconds since the Unix epoch (UTC); days are counted
since 1970-01-01; wall seconds are what a local clock reads, counted the
same way. The timeline is cut into local days: day *n* covers the instants
from the first one whose wall clock reads day *n* or later, up to the same
instant of day *n + 1*. Every instant lies in exactly one day, even where
the wall clock jumps.

Almost every day is *regular*: its midnight exists, it lasts 86,400 s and
no UTC offset change comes within a day of it, so its fires are its first
instant plus each fire second-of-day. A day near a transition is
*irregular*: it is cut where the offset changes, and each piece keeps the
range of wall times it fires at, following the rules of
:class:`~onecron.schedule.Schedule` (wall-clock schedules run a skipped
time once right after the gap and a repeated time once, at its first
occurrence; others skip what does not exist and run repeats twice).

Fire times of the day are never listed:
:class:`~onecron.schedule.days.DayTimes`
finds the next one field by field, so the cost of a timeline does not grow
with how often it fires. The fast path needs no days at all: within a
*steady span*, a stretch of instants with one offset and no transition in
the day before it, wall time is instant plus offset and the fires are
exactly the matching wall times, so the next one is a dict look-up and a
walk over three bit sets. Offsets come from :mod:`onecron.schedule.offsets`,
which
learns each zone's transitions once.

:meth:`Timeline.shortest_gap` bounds the time between two consecutive
fires, clock changes included, for the jitter (see :mod:`onecron.job`).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from onecron.schedule.cron import CronExpression
from onecron.schedule.days import MatchingDays, day_times
from onecron.schedule.offsets import offsets_for

__all__ = ['Timeline', 'clock_changes']

_EPOCH = date(1970, 1, 1).toordinal()
_DAY = 86400
# how far a steady span grows at a time, when a fire lies just past it
_SPAN = 8 * _DAY
# memo tables are cleared when they grow past this many entries
_CACHE_LIMIT = 4096
# clock changes are looked for from the epoch to 2040: past the end of a
# zone's table (2037 at the latest) zoneinfo repeats its last rule every
# year, so later years hold no new kind of change
_CHANGES_FROM = 0
_CHANGES_UNTIL = 70 * 365 * _DAY + 17 * _DAY  # 2040-01-01
# consecutive offset changes of a zone are more than three days apart (see
# :mod:`onecron.schedule.offsets`): readings three days apart see every
# offset, and
# two fires with two changes between them are more than that apart
_APART = 3 * _DAY


# a piece of an irregular day: the instants [a, b) with one offset, the
# wall times [low, high) it fires at, and whether it also fires at ``a``
# (a wall-clock schedule running the times a gap skipped)
_Piece = tuple[int, int, int, int, int, bool]


class _Day:
    """One local day of the timeline: the instants ``[start, end)``."""

    __slots__ = ('day', 'start', 'end', 'matching', 'fires')

    def __init__(self, day: int, start: int, end: int, matching: bool,
                 fires: tuple[_Piece, ...] | None) -> None:
        self.day = day
        self.start = start
        self.end = end
        #: whether the date itself matches the day fields
        self.matching = matching
        #: None for a regular day, else its pieces in time order
        self.fires = fires


class Timeline:
    """Next fire instants of ``cron`` in ``tz``, memoized.

    The memo tables only ever gain entries that are pure functions of the
    expression and the zone, so concurrent callers at worst compute an
    entry twice.
    """

    __slots__ = ('cron', 'tz', 'wall_clock', '_offsets', '_dates',
                 '_known', '_times', '_days', '_span', '_zero',
                 '_midnights')

    def __init__(self, cron: CronExpression, tz: ZoneInfo) -> None:
        self.cron = cron
        self.tz = tz
        self.wall_clock = cron.wall_clock
        self._offsets = offsets_for(tz)
        self._dates = MatchingDays(cron)
        self._known = self._dates.known.get
        # fire seconds of the day, as bit sets
        self._times = day_times(cron)
        self._days: dict[int, _Day] = {}
        # (low, high, offset): a steady span [low, high)
        self._span = (0, 0, 0)
        # local midnights by day, for next_after
        self._zero = time(tzinfo=tz)
        self._midnights: dict[int, datetime] = {}

    def next_after(self, t: int) -> tuple[int, datetime]:
        """The first fire strictly after instant ``t``: as an instant, and
        as an aware datetime in the zone (``fold=1`` for the second pass
        over a repeated hour)."""
        low, high, offset = self._span
        if not low <= t < high:
            return self._answer(self._walk(t))
        wall = t + offset
        day = wall // _DAY
        match = self._known(day) or self._dates.first_from(day)
        times = self._times
        if match != day:
            second = times.first
        else:
            # times.at_or_after(wall - day * _DAY + 1), inlined: the rest
            # of this minute, else the next firing minute of the day
            second = wall - day * _DAY + 1
            minute, rest = second // 60, second % 60
            if rest <= times.last_second and times.minutes[minute]:
                second += times.later[rest]
            else:
                minute = times.minutes.find(1, minute + 1)
                if minute >= 0:
                    second = minute * 60 + times.first_second
                else:  # none left today
                    second = times.first
                    match = self._known(day + 1) or self._dates.first_from(
                        day + 1)
        fire = match * _DAY + second - offset
        if fire < high:
            # in the span, wall-clock arithmetic is exact, and cheaper
            # than converting the instant
            midnight = self._midnights.get(match) or self._midnight(match)
            delta = _DELTAS.get(second) or _delta(second)
            return fire, midnight + delta
        if fire < high + _SPAN:
            return self._answer(self._extend(t, fire))
        return self._answer(self._jump(t, day, match))

    def shortest_gap(self) -> int:
        """The shortest time between two consecutive fires, in seconds.

        Never more than the true shortest gap, and equal to it when every
        day may fire: the days are not looked at, as if every day fired
        (days with no fire only make gaps longer), so a job that skips
        days counts as one firing daily at its times. Between the fires of
        one offset the gap is read off the fields; a clock change can make
        two fires closer in elapsed time (the first pass over a repeated
        hour and the second, a time run right after a spring gap and the
        one before it), so each kind of change of the zone from 1970 on
        (:func:`clock_changes`) is tried too. Two changes are more than
        three days apart, and so are two fires with both between them: in
        a zone that changes its clocks the gap counts as three days at
        most.

        Cheap: a few bisections per kind of change; meant to be called once
        per schedule.
        """
        gap = self._times.gap
        changes = clock_changes(self.tz)
        if changes:
            gap = min(gap, _APART, *(self._across(wall, jump)
                                      for wall, jump in changes))
        return gap

    def _across(self, wall: int, jump: int) -> int:
        """The shortest gap between fires on either side of a clock change
        whose clock reads ``wall`` (seconds of the day) when it jumps by
        ``jump`` seconds (back when negative), as if every day fired.

        Follows :meth:`_irregular`: before the change, fires are the
        matching wall times before ``wall``; after it, those from where
        the clock resumes, except that a wall-clock schedule skips the
        repeated times and runs the skipped ones once, at the change.
        """
        before = self._wall_before(wall)  # the last fire before the change
        resumed = wall + jump  # what the clock reads right after it
        if self.wall_clock:
            if jump < 0:  # repeated times do not run again
                return self._wall_from(wall) - before - jump
            if self._wall_from(wall) < resumed:  # times skipped run once
                return min(wall - before,
                           self._wall_from(resumed + 1) - resumed)
        return self._wall_from(resumed) - before - jump

    def _wall_from(self, wall: int) -> int:
        """The first fire time at or after wall second ``wall``, any day."""
        day, second = divmod(wall, _DAY)
        found = self._times.at_or_after(second)
        if found < 0:
            return (day + 1) * _DAY + self._times.first
        return day * _DAY + found

    def _wall_before(self, wall: int) -> int:
        """The last fire time before wall second ``wall``, any day."""
        day, second = divmod(wall, _DAY)
        found = self._times.before(second)
        if found < 0:
            return (day - 1) * _DAY + self._times.last
        return day * _DAY + found

    def _midnight(self, day: int) -> datetime:
        if len(self._midnights) >= _CACHE_LIMIT:
            self._midnights.clear()
        midnight = self._midnights[day] = datetime.combine(
            date.fromordinal(day + _EPOCH), self._zero)
        return midnight

    def _answer(self, fire: int) -> tuple[int, datetime]:
        return fire, datetime.fromtimestamp(fire, self.tz)

    def _extend(self, t: int, fire: int) -> int:
        """``fire``, just past the span, if the span can grow over it."""
        low, high, offset = self._span
        changes = self._offsets.transitions(high, high + _SPAN)
        if changes and changes[0] <= fire:
            return self._walk(t)
        self._span = (low, changes[0] if changes else high + _SPAN, offset)
        return fire

    def _jump(self, t: int, today: int, target: int) -> int:
        """The first fire of day ``target``, the next matching day after
        ``today``, far past the span, when nothing can happen in between.

        ``t`` is in the span, so ``today`` is steady up to the span's end.
        Days before ``target`` do not match, and a transition among them
        changes nothing; only one soon after ``today`` could still bring
        back one of its times. If the target day is regular, its first
        fire is plain arithmetic (and the span moves there); anything else
        is left to :meth:`_walk`.
        """
        high, offset = self._span[1:]
        if (high < (today + 3) * _DAY - offset and self._dates.matches(today)
                and self._spills(self._day(today, offset))):
            return self._walk(t)
        start = target * _DAY - offset
        at = self._offsets.at
        before, after = at(start - _DAY), at(start + _DAY)
        if before == after != offset:  # DST changed on the way: retry
            offset = before
            start = target * _DAY - offset
            before, after = at(start - _DAY), at(start + _DAY)
        if not before == offset == after:
            return self._walk(t)
        # the span moves there; if nothing changes in the two days after
        # the target either, its fires cannot spill: look that far
        end = start + _DAY
        if at(end + 2 * _DAY) == offset:
            end += 2 * _DAY
        self._span = (start, end, offset)
        return start + self._times.first

    def _walk(self, t: int) -> int:
        """:meth:`next_after` day by day, for what the span does not cover.
        """
        offset = self._offsets.at(t)
        today = (t + offset) // _DAY
        dates = self._dates
        # t's own day can only hold fires of its date or of the day before
        if dates.matches(today) or dates.matches(today - 1):
            day = self._day(today, offset)
            while t >= day.end:  # a repeated hour after midnight
                day = self._day(day.day + 1)
        else:  # nothing can fire before the next matching day
            day = self._day(dates.first_from(today), offset)
        times = self._times
        while True:
            if day.fires is None:
                if day.matching:
                    second = times.at_or_after(t - day.start + 1)
                    if second >= 0:
                        # regular: steady from a day before its start
                        self._span = (day.start, day.end,
                                      day.day * _DAY - day.start)
                        return day.start + second
            else:
                fire = self._in_pieces(day.fires, t)
                if fire >= 0:
                    return fire
            if day.matching and self._spills(day):
                day = self._day(day.day + 1)
            else:
                day = self._day(dates.first_from(day.day + 1),
                                day.day * _DAY - day.start)

    def _spills(self, day: _Day) -> bool:
        """Whether fires of ``day``'s date may fall into the next day: a
        repeated hour or a gap soon after its end can carry them there."""
        return day.fires is not None or not self._offsets.steady(
            day.end, day.end + 2 * _DAY)

    def _day(self, number: int, offset: int | None = None) -> _Day:
        """Day ``number``; ``offset`` is a guess at its UTC offset."""
        day = self._days.get(number)
        if day is None:
            offsets = self._offsets
            midnight = number * _DAY
            if offset is None:
                offset = offsets.at(midnight)
            start = midnight - offset
            # regular: no offset change within a day of the start either
            # way, so midnight exists once, with that offset; the offsets
            # are read at midnights, which every schedule in the zone
            # shares
            before, after = offsets.at(start - _DAY), offsets.at(start + _DAY)
            if before == after != offset:  # a wrong guess: try theirs
                start = midnight - before
                after = offsets.at(start + _DAY)
                regular = offsets.at(start - _DAY) == after == before
            else:
                regular = before == after
            matching = self._dates.matches(number)
            if regular:
                day = _Day(number, start, start + _DAY, matching, None)
            else:
                start, end = self._start(number), self._start(number + 1)
                day = _Day(number, start, end, matching,
                           self._irregular(start, end))
            if len(self._days) >= _CACHE_LIMIT:
                self._days.clear()
            self._days[number] = day
        return day

    def _start(self, number: int) -> int:
        """The first instant whose wall clock reads day ``number`` or
        later."""
        midnight = datetime.fromordinal(number + _EPOCH)
        wall = number * _DAY
        # fold=0 reads a repeated midnight as its first occurrence and a
        # skipped one with the offset from before the gap
        offset = _seconds(self.tz.utcoffset(midnight))
        start = wall - offset
        if self._offsets.at(start) != offset:
            # midnight falls in a gap: the day starts where the gap ends
            later = _seconds(self.tz.utcoffset(midnight.replace(fold=1)))
            start = self._offsets.transitions(wall - later, start)[0]
        return start

    def _irregular(self, start: int, end: int) -> tuple[_Piece, ...]:
        """The pieces of ``[start, end)``, a day with a transition.

        The day is cut where the offset changes; in each piece wall time is
        instant plus a constant offset, so matching wall times map back
        directly. Wall-clock schedules drop the second pass over repeated
        wall times and run once at the end of a gap that skipped any.
        """
        offsets = self._offsets
        cuts = [start]
        cuts += [t for t in offsets.transitions(start, end - 1) if t > start]
        cuts.append(end)
        previous = offsets.at(start - 1)
        pieces: list[_Piece] = []
        for a, b in zip(cuts, cuts[1:]):
            if a >= b:
                continue
            offset = offsets.at(a)
            low, high = a + offset, b + offset
            skipped = False
            if self.wall_clock:
                resumed = a + previous  # where the clock would have gone on
                if resumed > low:  # it went back: these wall times repeat
                    low = min(resumed, high)
                elif resumed < low:  # it jumped: run the skipped times now
                    skipped = self._wall_first(resumed, low) >= 0
            pieces.append((a, b, offset, low, high, skipped))
            previous = offset
        return tuple(pieces)

    def _in_pieces(self, pieces: tuple[_Piece, ...], t: int) -> int:
        """The first fire after instant ``t`` in ``pieces``, or -1."""
        for a, b, offset, low, high, skipped in pieces:
            if b <= t + 1:
                continue
            if skipped and a > t:
                return a
            wall = self._wall_first(max(low, t + 1 + offset), high)
            if wall >= 0:
                return wall - offset
        return -1

    def _wall_first(self, low: int, high: int) -> int:
        """The first matching wall time in ``[low, high)``, as a wall
        second, or -1."""
        for day in range(low // _DAY, (high - 1) // _DAY + 1):
            if self._dates.matches(day):
                base = day * _DAY
                second = self._times.at_or_after(low - base)
                if second >= 0:
                    return base + second if base + second < high else -1
        return -1


# seconds of the day -> the same as a timedelta, shared by all schedules
_DELTAS: dict[int, timedelta] = {}


def _delta(seconds: int) -> timedelta:
    # the zero delta is falsy and lands here each time: harmless
    if len(_DELTAS) >= _CACHE_LIMIT:
        _DELTAS.clear()
    delta = _DELTAS[seconds] = timedelta(seconds=seconds)
    return delta


def _seconds(offset: timedelta | None) -> int:
    if offset is None:  # only a naive datetime has none; ours never are
        raise ValueError('the time zone gave no UTC offset')
    return offset.days * _DAY + offset.seconds


@lru_cache(maxsize=1024)
def clock_changes(tz: ZoneInfo) -> frozenset[tuple[int, int]]:
    """The kinds of clock change of ``tz`` from 1970 on: pairs of the wall
    second of the day the clock reads when it changes and the change in
    seconds (negative when it goes back).

    Read from zoneinfo every three days up to 2040, and to the second
    where the offset differs; a zone's rules repeat from 2037 on. Takes
    some milliseconds, once per zone.
    """
    found: set[tuple[int, int]] = set()
    t = _CHANGES_FROM
    before = _offset(tz, t)
    while t < _CHANGES_UNTIL:
        after = _offset(tz, t + _APART)
        if after != before:
            low, high = t, t + _APART  # one change, in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(tz, middle) == before:
                    low = middle
                else:
                    high = middle
            found.add(((high + before) % _DAY, after - before))
            before = after
        t += _APART
    return frozenset(found)


def _offset(tz: ZoneInfo, t: int) -> int:
    """The UTC offset of ``tz`` at instant ``t``, in seconds."""
    return _seconds(datetime.fromtimestamp(t, tz).utcoffset())
