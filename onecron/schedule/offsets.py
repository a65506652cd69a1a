"""UTC offsets of a time zone as a function of the instant, memoized.

zoneinfo answers "what is the offset at this instant" in about a
microsecond but does not expose its transition table. Schedules ask two
questions over and over: the offset at an instant, and whether the offset
changes anywhere in a stretch of time. Both rest on one fact of the tz
database: consecutive offset changes of a zone are never close together.
From 1900 to 2040 the closest pair is 95 hours apart (Africa/Freetown,
1939); recent ones are a week or more apart. So:

* a stretch of at most three days holds at most one change, and has none
  exactly when the offsets at its two ends agree: two readings;
* longer stretches are cut into chunks of 2**17 s (about 36 hours); for
  each chunk the offsets at both ends are read, and when they differ the
  change between them is found to the second by bisection.

Readings and chunks are memoized per zone and shared by every schedule in
it; day boundaries, which most readings fall on, are common to them all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ['ZoneOffsets', 'offsets_for']

_SHIFT = 17
_CHUNK = 1 << _SHIFT
# the longest stretch checked by its two ends alone: 72 h, well under the
# 95 h between the closest two changes
_SHORT = 3 * 86400
# memo tables are cleared when they grow past this many entries
_CACHE_LIMIT = 1 << 16
_ZONES: dict[ZoneInfo, ZoneOffsets] = {}


def offsets_for(tz: ZoneInfo) -> ZoneOffsets:
    """The shared :class:`ZoneOffsets` of ``tz``: the offsets depend on
    nothing but the zone, so every schedule in it can use what one learnt.
    """
    offsets = _ZONES.get(tz)
    if offsets is None:
        if len(_ZONES) >= 1024:  # only zones made with ZoneInfo.no_cache
            _ZONES.clear()
        offsets = _ZONES[tz] = ZoneOffsets(tz)
    return offsets


class ZoneOffsets:
    """UTC offsets of one zone, in whole seconds, at instants in whole
    seconds since the epoch.

    Only ever adds entries that are pure functions of the zone, so
    concurrent callers at worst compute one twice.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        # instant -> offset, as read from zoneinfo
        self._readings: dict[int, int] = {}
        # chunk -> (offset at its start, first instant of the next offset
        # or a sentinel past the chunk, offset at its end)
        self._chunks: dict[int, tuple[int, int, int]] = {}

    def at(self, t: int) -> int:
        """The UTC offset in effect at instant ``t``."""
        chunk = self._chunks.get(t >> _SHIFT)
        if chunk is None:
            offset = self._readings.get(t)
            return self._read(t) if offset is None else offset
        return chunk[0] if t < chunk[1] else chunk[2]

    def steady(self, low: int, high: int) -> bool:
        """Whether the offset is the same at every instant from ``low`` to
        ``high``: no change happens in ``(low, high]``."""
        if high - low <= _SHORT:
            return self.at(low) == self.at(high)
        return not self.transitions(low + 1, high)

    def transitions(self, low: int, high: int) -> list[int]:
        """Instants in ``[low, high]`` where the offset changes (the first
        instant with the new offset)."""
        found = []
        for index in range(low >> _SHIFT, (high >> _SHIFT) + 1):
            before, change, after = (self._chunks.get(index)
                                     or self._chunk(index))
            if before != after and low <= change <= high:
                found.append(change)
        return found

    def _chunk(self, index: int) -> tuple[int, int, int]:
        low = index << _SHIFT
        high = low + _CHUNK
        before, after = self.at(low), self.at(high)
        change = high + 1  # past every instant of the chunk
        if before != after:
            while high - low > 1:  # offset(low) == before != offset(high)
                middle = (low + high) // 2
                if self._read(middle) == before:
                    low = middle
                else:
                    high = middle
            change = high
        if len(self._chunks) >= _CACHE_LIMIT:
            self._chunks.clear()
        chunk = self._chunks[index] = (before, change, after)
        return chunk

    def _read(self, t: int) -> int:
        """Ask zoneinfo: the offset at instant ``t``."""
        # datetime ends with the year 9999; chunks reach a little past it
        when = datetime.fromtimestamp(
            _FIRST if t < _FIRST else _LAST if t > _LAST else t, self.tz)
        offset = self.tz.utcoffset(when)
        assert offset is not None  # a ZoneInfo always has one
        if len(self._readings) >= _CACHE_LIMIT:
            self._readings.clear()
        seconds = self._readings[t] = offset // _ONE_SECOND
        return seconds


_ONE_SECOND = timedelta(seconds=1)
_FIRST = int((datetime(1, 1, 2) - datetime(1970, 1, 1)).total_seconds())
_LAST = int((datetime(9999, 12, 30) - datetime(1970, 1, 1)).total_seconds())
