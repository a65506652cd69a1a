"""Tests for onecron.offsets: UTC offsets of a zone, learnt once."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onecron.schedule.offsets import ZoneOffsets, offsets_for

UTC = timezone.utc


def instant(text: str) -> int:
    """Seconds since the epoch of an ISO text with offset."""
    return int(datetime.fromisoformat(text).timestamp())


def zoneinfo_offset(zone: str, t: int) -> int:
    """The offset zoneinfo itself gives, in seconds."""
    offset = datetime.fromtimestamp(t, ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


TRANSITIONS = [
    ('Europe/Zurich', '2024-01-01T00:00+00:00', '2025-01-01T00:00+00:00',
     ['2024-03-31T01:00+00:00', '2024-10-27T01:00+00:00']),
    ('America/New_York', '2024-01-01T00:00+00:00',
     '2025-01-01T00:00+00:00',
     ['2024-03-10T07:00+00:00', '2024-11-03T06:00+00:00']),
    ('Australia/Lord_Howe', '2024-01-01T00:00+00:00',
     '2025-01-01T00:00+00:00',
     ['2024-04-06T15:00+00:00', '2024-10-05T15:30+00:00']),
    ('Pacific/Apia', '2011-12-01T00:00+00:00', '2012-01-01T00:00+00:00',
     ['2011-12-30T10:00+00:00']),
    ('UTC', '2024-01-01T00:00+00:00', '2025-01-01T00:00+00:00', []),
]


@pytest.mark.parametrize('zone, low, high, expected', TRANSITIONS,
                         ids=[row[0] for row in TRANSITIONS])
def test_transitions_are_found_to_the_second(zone: str, low: str,
                                             high: str,
                                             expected: list[str]) -> None:
    """Offset changes are found exactly, and nothing else."""
    offsets = ZoneOffsets(ZoneInfo(zone))
    found = offsets.transitions(instant(low), instant(high))
    assert found == [instant(text) for text in expected]
    for change in found:
        assert offsets.at(change - 1) != offsets.at(change)


def test_steady() -> None:
    """A stretch is steady when no change happens inside it."""
    offsets = ZoneOffsets(ZoneInfo('Europe/Zurich'))
    change = instant('2024-03-31T01:00+00:00')
    assert offsets.steady(change - 86400, change - 1)
    assert not offsets.steady(change - 1, change)
    assert offsets.steady(change, change + 86400)
    assert not offsets.steady(change - 86400 * 10, change + 86400 * 10)
    assert offsets.steady(change + 3600, change + 86400 * 100)


def test_offsets_are_shared_per_zone() -> None:
    """Every schedule in a zone uses the same learnt offsets."""
    tz = ZoneInfo('Europe/Zurich')
    assert offsets_for(tz) is offsets_for(tz)
    assert offsets_for(tz) is not offsets_for(ZoneInfo('UTC'))


ZONES = ['Europe/Zurich', 'America/New_York', 'Australia/Lord_Howe',
         'America/Sao_Paulo', 'America/Santiago', 'Pacific/Chatham',
         'Pacific/Apia', 'Asia/Kolkata', 'Africa/Casablanca',
         'Europe/Dublin']


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES),
       st.integers(int(datetime(1950, 1, 1, tzinfo=UTC).timestamp()),
                   int(datetime(2060, 1, 1, tzinfo=UTC).timestamp())),
       st.booleans())
def test_offset_at_agrees_with_zoneinfo(zone: str, t: int,
                                        learn: bool) -> None:
    """at() gives zoneinfo's offset, whether or not the chunk is learnt."""
    offsets = ZoneOffsets(ZoneInfo(zone))
    if learn:
        offsets.transitions(t - 200000, t + 200000)
    assert offsets.at(t) == zoneinfo_offset(zone, t)
