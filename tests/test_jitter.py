"""The jitter within the schedule: an offset never moves a fire to or past
the next occurrence of its job, and tenants are still spread over what is
left of the window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webob import Request

from onecron import CronApp
from onecron.job import Job
from onecron.schedule.rules import Schedule

from .conftest import wait_for

UTC = timezone.utc
T0 = datetime(2024, 3, 1, 8, 11, 3, tzinfo=UTC)
#: zones with changes of an hour, of half an hour, at midnight, and none
ZONES = ['UTC', 'Europe/Zurich', 'America/New_York', 'Australia/Lord_Howe',
         'America/Havana', 'Asia/Beirut', 'Asia/Kolkata']


def job(schedule: Schedule, name: str = 'pkg.job', **options: Any) -> Job:
    return Job(name, lambda request: None, schedule, **options)


def local(text: str, zone: str, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone),
                                                fold=fold)


def fires_before_next(job: Job, application_id: str, after: datetime,
                      count: int,
                      schedule: Schedule | None = None) -> list[float]:
    """Walk ``count`` fires of ``job`` after ``after``; check each comes
    after its occurrence and before the next one; the offsets.

    ``schedule`` is one in force other than the job's own."""
    override = () if schedule is None else (schedule,)
    schedule = schedule or job.schedule
    assert schedule is not None
    offsets = []
    runtime = job.next_runtime(after, application_id, schedule)
    for _ in range(count):
        occurrence = job.occurrence_of(runtime, application_id, *override)
        # in UTC: arithmetic on a zoned datetime is wall-clock arithmetic
        nominal = schedule.next_after(occurrence.astimezone(UTC)
                                      - timedelta(seconds=1))
        assert nominal.timestamp() == occurrence.timestamp()
        following = schedule.next_after(occurrence)
        offset = runtime.timestamp() - occurrence.timestamp()
        assert 0 <= offset, (runtime, occurrence)
        assert runtime.timestamp() < following.timestamp(), (
            f'{application_id}: the fire {runtime} for {occurrence} is not '
            f'before the next occurrence {following}')
        offsets.append(offset)
        runtime = job.next_runtime(runtime, application_id, schedule)
    return offsets


# --- the shortest gap -------------------------------------------------------


@pytest.mark.parametrize('expr, zone, gap', [
    ('*/10 * * * * *', 'UTC', timedelta(seconds=10)),
    ('*/10 * * * * *', 'Europe/Zurich', timedelta(seconds=10)),
    ('0 * * * *', 'UTC', timedelta(hours=1)),
    ('0 * * * *', 'Europe/Zurich', timedelta(hours=1)),
    ('@hourly', 'America/New_York', timedelta(hours=1)),
    # half-hour changes: the hour from 01:30 repeats, so 01:45 runs twice
    ('45 * * * *', 'Australia/Lord_Howe', timedelta(minutes=30)),
    # from the last fire of a day to the first of the next
    ('0 0,23 * * *', 'UTC', timedelta(hours=1)),
    ('30 15 9 * * *', 'UTC', timedelta(days=1)),
    ('@daily', 'Europe/Zurich', timedelta(hours=23)),
    # 02:50 CEST, then ten minutes later 02:00 CET
    ('0 0,50 */2 * * *', 'Europe/Zurich', timedelta(minutes=10)),
    # 01:59 CET, then 03:00 CEST a minute later: 02:00-02:59 do not exist
    ('0 0,59 1,3 * * *', 'Europe/Zurich', timedelta(minutes=1)),
    # a wall-clock time skipped in spring runs at 03:00 CEST, a second
    # after 01:59:59 CET
    ('0,59 59 1,2 * * *', 'Europe/Zurich', timedelta(seconds=1)),
])
def test_shortest_gap_of_cron_schedules(expr: str, zone: str,
                                        gap: timedelta) -> None:
    """The shortest gap is read off the fields, clock changes included."""
    assert Schedule(expr, timezone=zone).shortest_gap == gap


def test_shortest_gap_of_an_interval() -> None:
    """An interval's gap is the interval."""
    assert Schedule(every=timedelta(seconds=5)).shortest_gap == timedelta(
        seconds=5)
    assert Schedule('@every 1h30m').shortest_gap == timedelta(minutes=90)


@pytest.mark.parametrize('expr, zone, first, second', [
    ('0 0,50 */2 * * *', 'Europe/Zurich',
     local('2024-10-27 02:50', 'Europe/Zurich'),
     local('2024-10-27 02:00', 'Europe/Zurich', fold=1)),
    ('0 0,59 1,3 * * *', 'Europe/Zurich',
     local('2024-03-31 01:59', 'Europe/Zurich'),
     local('2024-03-31 03:00', 'Europe/Zurich')),
    ('45 * * * *', 'Australia/Lord_Howe',
     local('2024-04-07 01:45', 'Australia/Lord_Howe'),
     local('2024-04-07 01:45', 'Australia/Lord_Howe', fold=1)),
])
def test_clock_changes_really_bring_fires_that_close(
        expr: str, zone: str, first: datetime, second: datetime) -> None:
    """The gaps clock changes make are real: two consecutive fires are
    exactly the shortest gap apart."""
    schedule = Schedule(expr, timezone=zone)
    fired = schedule.next_after(first - timedelta(seconds=1))
    assert fired.timestamp() == first.timestamp()
    following = schedule.next_after(fired)
    assert following.timestamp() == second.timestamp()
    assert (following.timestamp() - fired.timestamp()
            == schedule.shortest_gap.total_seconds())


@cache
def changes(zone: str) -> tuple[int, ...]:
    """The instants of 2024 where ``zone``'s offset changes, found by
    reading it every hour and bisecting to the second."""
    tz = ZoneInfo(zone)

    def offset(t: int) -> timedelta | None:
        return datetime.fromtimestamp(t, tz).utcoffset()

    found = []
    start = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    for low in range(start, start + 366 * 86400, 3600):
        high = low + 3600
        if offset(low) != offset(high):
            while high - low > 1:
                middle = (low + high) // 2
                if offset(middle) == offset(low):
                    low = middle
                else:
                    high = middle
            found.append(high)
    return tuple(found)


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    """A cron field: ``*``, values, ranges and steps."""

    @st.composite
    def item(draw: st.DrawFn) -> str:
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, high - low))
        return draw(st.sampled_from([
            '*', f'*/{step}', f'{a}', f'{a}-{b}', f'{a}-{b}/{step}',
            f'{a}/{step}']))

    return st.lists(item(), min_size=1, max_size=3).map(','.join)


EXPRESSIONS = st.builds(
    lambda second, minute, hour, days: f'{second} {minute} {hour} {days}',
    _field(0, 59), _field(0, 59), _field(0, 23),
    st.sampled_from(['* * *', '* * *', '*/2 * *', '* * MON-FRI', 'L * *']))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS, st.sampled_from(ZONES[1:-1]), st.integers(0, 3),
       st.integers(0, 7200))
def test_shortest_gap_bounds_the_gaps_across_clock_changes(
        expr: str, zone: str, which: int, lead: int) -> None:
    """No two consecutive fires are closer than the shortest gap, also
    around the clock changes of the zone (real fires of the timeline)."""
    schedule = Schedule(expr, timezone=zone)
    gap = schedule.shortest_gap.total_seconds()
    assert gap >= 1
    found = changes(zone)
    change = found[which % len(found)]
    # start close enough that the change is reached within the walk
    at = datetime.fromtimestamp(change - min(lead, 100 * gap), UTC)
    previous = schedule.next_after(at).timestamp()
    for _ in range(300):
        fire = schedule.next_after(datetime.fromtimestamp(previous, UTC))
        assert fire.timestamp() - previous >= gap, (fire, previous)
        previous = fire.timestamp()
        if previous > change + 2 * 86400:
            break


# --- offsets within the gap -------------------------------------------------


def test_every_ten_seconds_never_reaches_the_next_occurrence() -> None:
    """A ``*/10 * * * * *`` job fires before its next occurrence for a
    thousand application ids, spread over a 5 s window."""
    every_ten = job(Schedule('*/10 * * * * *'))
    offsets = []
    for number in range(1000):
        offsets += fires_before_next(every_ten, f'tenant-{number}', T0, 3)
    assert max(offsets) <= 5.0
    assert min(offsets) < 0.1 and max(offsets) > 4.9, 'spread over 5 s'
    assert every_ten.offset_window() == 5.0


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS, st.sampled_from(ZONES), st.text(min_size=1),
       st.integers(0, 3), st.sampled_from([-600, 0, 1, 10, 60, 600, 3600]),
       st.sampled_from([30.0, 300.0, 3600.0]))
def test_no_fire_reaches_the_next_occurrence(
        expr: str, zone: str, application_id: str, which: int, lead: int,
        max_offset: float) -> None:
    """For any schedule, application id and window, around clock changes
    too: each fire comes before the next occurrence, offset below the
    shortest gap, and some window is left to spread tenants over."""
    schedule = Schedule(expr, timezone=zone)
    jittery = job(schedule, max_offset=max_offset)
    found = changes(zone) or (int(T0.timestamp()),)
    at = datetime.fromtimestamp(found[which % len(found)] - lead, UTC)
    offsets = fires_before_next(jittery, application_id, at, 40)
    gap = schedule.shortest_gap.total_seconds()
    window = jittery.offset_window()
    assert 0 < window <= min(max_offset, gap / 2)
    assert all(offset <= window for offset in offsets)


@pytest.mark.parametrize('zone', ZONES)
def test_hourly_keeps_the_whole_window(zone: str) -> None:
    """An hourly job's window is the whole max_offset (30 s by default):
    its gap is an hour (half an hour at Lord Howe's changes)."""
    hourly = job(Schedule('@hourly', timezone=zone))
    assert hourly.offset_window() == 30.0
    offsets = [hourly.offset_for(f'tenant-{number}')
               for number in range(1000)]
    assert {int(offset) for offset in offsets} == set(range(30))


def test_every_five_seconds_is_bounded() -> None:
    """``every=timedelta(seconds=5)``: offsets below 2.5 s, each fire
    before the next occurrence."""
    interval = job(Schedule(every=timedelta(seconds=5)))
    for number in range(200):
        offsets = fires_before_next(interval, f'tenant-{number}', T0, 3)
        assert max(offsets) <= 2.5
    assert interval.offset_window() == 2.5


def test_repeated_hour_fires_before_the_second_pass() -> None:
    """Fall back: 02:59:50 CEST fires before the 02:00:00 CET ten seconds
    later, for every tenant; the window shrinks to 5 s."""
    schedule = Schedule('0,50 0,59 */2 * * *', timezone='Europe/Zurich')
    repeated = job(schedule)
    first = local('2024-10-27 02:59:50', 'Europe/Zurich')
    second = local('2024-10-27 02:00:00', 'Europe/Zurich', fold=1)
    assert second.timestamp() - first.timestamp() == 10
    for number in range(200):
        offsets = fires_before_next(repeated, f'tenant-{number}',
                                    first.astimezone(UTC)
                                    - timedelta(seconds=1), 2)
        assert max(offsets) <= 5.0
    assert schedule.shortest_gap == timedelta(seconds=10)
    assert repeated.offset_window() == 5.0


def test_skipped_hour_fires_before_the_first_after_it() -> None:
    """Spring forward: 01:59:50 CET fires before 03:00:00 CEST, ten
    seconds later, for every tenant."""
    schedule = Schedule('0,50 0,59 1,3 * * *', timezone='Europe/Zurich')
    skipped = job(schedule)
    first = local('2024-03-31 01:59:50', 'Europe/Zurich')
    for number in range(200):
        offsets = fires_before_next(skipped, f'tenant-{number}',
                                    first - timedelta(seconds=1), 2)
        assert max(offsets) <= 5.0
    assert schedule.shortest_gap == timedelta(seconds=10)


def test_offsets_are_the_same_unit_scaled_to_the_window() -> None:
    """Per job and id the offset is one point of the unit interval, scaled
    to each schedule's window: tenants keep their order."""
    daily = job(Schedule('@daily'))
    every_ten = Schedule('*/10 * * * * *')
    for number in range(50):
        tenant = f'tenant-{number}'
        assert daily.offset_for(tenant, every_ten) == pytest.approx(
            daily.offset_for(tenant) / 6)


def test_no_jitter_has_no_window() -> None:
    """jitter=False and max_offset=0 leave no window."""
    every_ten = Schedule('*/10 * * * * *')
    assert job(every_ten, jitter=False).offset_window() == 0
    assert job(every_ten, max_offset=0).offset_for('a') == 0


# --- overrides --------------------------------------------------------------


def test_an_override_gets_its_own_bound() -> None:
    """A schedule in force other than the job's bounds the offsets by its
    own gap: a daily job overridden to every ten seconds."""
    daily = job(Schedule('@daily'))
    assert daily.offset_window() == 30.0
    override = Schedule('*/10 * * * * *')
    assert daily.offset_window(override) == 5.0
    for number in range(200):
        offsets = fires_before_next(daily, f'tenant-{number}', T0, 3,
                                    schedule=override)
        assert max(offsets) <= 5.0


def test_next_run_of_an_overridden_job_is_bounded(tmp_path: Path) -> None:
    """The status page's next run of a job overridden to every ten seconds
    comes before that schedule's next occurrence, for every tenant."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), enabled=False,
                  store=str(tmp_path / 'runs.sqlite'))
    app.cronjob('@daily', name='nightly')(lambda request: None)
    override = Schedule('*/10 * * * * *')
    for number in range(20):
        tenant = f'tenant-{number}'
        app.override_schedule('nightly', '*/10 * * * * *', tenant)
        next_run = app.next_run('nightly', tenant, now=T0)
        assert next_run is not None and next_run > T0
        occurrence = app.jobs['nightly'].occurrence_of(next_run, tenant,
                                                        override)
        assert occurrence.second % 10 == 0 and occurrence.microsecond == 0
        assert next_run < occurrence + timedelta(seconds=10)


class Runs:
    """Records each run: when it happened and which occurrence it was."""

    def __init__(self) -> None:
        self.items: list[tuple[float, datetime]] = []

    def __call__(self, request: Request) -> None:
        self.items.append((time.time(), datetime.fromisoformat(
            request.headers['X-Onecron-Occurrence'])))


@pytest.fixture
def stored_app(tmp_path: Path) -> Iterator[CronApp]:
    app = CronApp(secret='s', lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs.sqlite'))
    yield app
    app.stop()


def test_scheduler_bounds_an_overridden_job_by_the_override(
        stored_app: CronApp, live_server: Any) -> None:
    """A daily job overridden to every second runs every second, each run
    named by its whole-second occurrence: the scheduler offsets it, and
    names the occurrence, by the override's window."""
    runs = Runs()
    stored_app.cronjob('@daily', name='tick')(runs)
    stored_app.override_schedule('tick', '* * * * * *')
    stored_app.start(base_url=live_server(stored_app).url)
    wait_for(lambda: len(runs.items) >= 3, timeout=8)
    occurrences = [occurrence for _, occurrence in runs.items]
    assert all(occurrence.microsecond == 0 for occurrence in occurrences)
    assert len(set(occurrences)) == len(occurrences)
    for ran_at, occurrence in runs.items:
        # the offset is below half a second (a whole day's 30 s window
        # would make it 25 s); the rest is leeway for a loaded machine
        assert 0 <= ran_at - occurrence.timestamp() < 5
