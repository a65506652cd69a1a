"""Missed runs, pure: which occurrences were missed, and what to do now."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from onecron import CronApp, Schedule
from onecron.job import Job
from onecron.running.misfire import (
    MAX_MISSED,
    MAX_REPLAY,
    check_policy,
    missed,
    nearest,
    plan,
)

T0 = datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)
ZURICH = ZoneInfo('Europe/Zurich')


def minutes(*values: float) -> list[datetime]:
    return [T0 + timedelta(minutes=value) for value in values]


def job(expr: str, *, jitter: bool = False, zone: str = 'UTC') -> Job:
    return Job('job', lambda request: None, Schedule(expr, timezone=zone),
               jitter=jitter, max_offset=30)


# --- missed ---------------------------------------------------------------


def test_missed_lists_the_occurrences_of_the_window() -> None:
    """Every occurrence after ``since`` up to ``until`` (both as fire
    times), oldest first."""
    every_minute = job('* * * * *')
    found = missed(every_minute, every_minute.schedule,  # type: ignore
                   'app', T0, T0 + timedelta(minutes=3))
    assert found.occurrences == minutes(1, 2, 3)
    assert found.older == 0


def test_missed_goes_by_fire_time_and_gives_nominal_times() -> None:
    """With jitter, an occurrence is missed once its fire time has passed;
    it is named by its nominal time, as claims are."""
    jittery = job('* * * * *', jitter=True)
    offset = timedelta(seconds=jittery.offset_for('app'))
    assert offset > timedelta(0)
    schedule = jittery.schedule
    assert schedule is not None
    # 08:30 fires after T0 (at 08:30 + offset): missed; 08:32 not yet
    until = T0 + timedelta(minutes=2) + offset / 2
    found = missed(jittery, schedule, 'app', T0, until)
    assert found.occurrences == minutes(0, 1)
    found = missed(jittery, schedule, 'app', T0, until + offset)
    assert found.occurrences == minutes(0, 1, 2)


def test_missed_keeps_the_newest_and_counts_the_older() -> None:
    """Past MAX_MISSED occurrences, the newest are kept, the rest counted."""
    every_second = job('* * * * * *')
    schedule = every_second.schedule
    assert schedule is not None
    until = T0 + timedelta(seconds=MAX_MISSED + 250)
    found = missed(every_second, schedule, 'app', T0, until)
    assert len(found.occurrences) == MAX_MISSED
    assert found.older == 250
    assert found.occurrences[-1] == until


def test_missed_across_a_dst_change_counts_instants() -> None:
    """In a zone's repeated hour each occurrence is missed once per
    instant: 02:30 Zurich on the autumn change happens twice."""
    nightly = job('30 2 * * *', zone='Europe/Zurich')
    schedule = nightly.schedule
    assert schedule is not None
    since = datetime(2024, 10, 26, 12, tzinfo=timezone.utc)
    found = missed(nightly, schedule, 'app', since,
                   since + timedelta(days=1))
    assert [occurrence.astimezone(timezone.utc).hour
            for occurrence in found.occurrences] == [0]  # Vixie: the first


# --- plan -------------------------------------------------------------------

HOURLY = Schedule('0 * * * *')


def test_once_runs_the_newest_within_grace() -> None:
    """'once': the newest missed runs now, the older are recorded missed."""
    occurrences = minutes(0, 60, 120)
    now = T0 + timedelta(minutes=125)
    result = plan('once', occurrences, now=now, grace=None,
                  schedule=HOURLY)
    assert result.run == minutes(120)
    assert result.missed == minutes(0, 60)


def test_once_past_grace_runs_nothing() -> None:
    """'once': a newest missed occurrence older than grace is recorded."""
    occurrences = minutes(0, 60)
    result = plan('once', occurrences, now=T0 + timedelta(minutes=70),
                  grace=timedelta(minutes=5), schedule=HOURLY)
    assert result.run == []
    assert result.missed == occurrences


@pytest.mark.parametrize('expr, late, runs', [
    ('*/5 * * * *', 4, True),     # interval 5 min: the default grace
    ('*/5 * * * *', 6, False),
    ('0 * * * *', 59, True),      # interval 1 h = the cap
    ('0 0 * * *', 61, False),     # a day: capped at an hour
], ids=['5min-in', '5min-out', 'hourly-in', 'daily-capped'])
def test_the_default_grace_is_the_interval_at_most_an_hour(
        expr: str, late: float, runs: bool) -> None:
    """Without grace, a missed run is caught up within the shorter of its
    interval and an hour."""
    midnight = T0.replace(hour=0, minute=0)  # an occurrence of each
    result = plan('once', [midnight], now=midnight + timedelta(minutes=late),
                  grace=None, schedule=Schedule(expr))
    assert bool(result.run) is runs


def test_the_default_grace_measures_instants_across_dst() -> None:
    """The interval across a DST change is measured in real time: 23 h
    from 00:00 to 00:00 on spring-forward day is below the cap too."""
    midnight = datetime(2024, 3, 31, 0, 0, tzinfo=ZURICH)
    result = plan('once', [midnight], now=midnight + timedelta(minutes=59),
                  grace=None, schedule=Schedule('0 0 * * *',
                                                timezone='Europe/Zurich'))
    assert result.run == [midnight]


def test_skip_records_everything() -> None:
    """'skip': nothing runs, every missed occurrence is recorded."""
    result = plan('skip', minutes(0, 1), now=T0 + timedelta(minutes=1),
                  grace=None, schedule=HOURLY)
    assert (result.run, result.missed) == ([], minutes(0, 1))


def test_all_replays_each_up_to_the_cap() -> None:
    """'all': each runs, oldest first, the newest MAX_REPLAY of them."""
    occurrences = minutes(*range(MAX_REPLAY + 3))
    result = plan('all', occurrences, now=occurrences[-1], grace=None,
                  schedule=HOURLY)
    assert result.run == occurrences[3:]
    assert result.missed == occurrences[:3]


def test_nothing_missed_plans_nothing() -> None:
    """No missed occurrence: nothing to run or record, whatever the
    policy."""
    for policy in ('once', 'skip', 'all'):
        result = plan(policy, [], now=T0, grace=None, schedule=HOURLY)
        assert (result.run, result.missed) == ([], [])


# --- nearest ----------------------------------------------------------------


@pytest.mark.parametrize('expr, now, expected', [
    ('30 8 * * *', T0 + timedelta(seconds=20), T0),
    ('30 8 * * *', T0 - timedelta(seconds=20), T0),
    ('0 * * * *', T0 - timedelta(minutes=1), T0 - timedelta(minutes=30)),
    ('0 * * * *', T0 + timedelta(minutes=1), T0 + timedelta(minutes=30)),
    ('* * * * * *', T0 + timedelta(milliseconds=400), T0),
    ('* * * * * *', T0 + timedelta(milliseconds=600), T0 + timedelta(
        seconds=1)),
], ids=['daily-late', 'daily-early', 'hourly-before', 'hourly-after',
        'second-down', 'second-up'])
def test_nearest_is_the_closest_occurrence(expr: str, now: datetime,
                                           expected: datetime) -> None:
    """The occurrence closest to now, before or after it."""
    assert nearest(Schedule(expr), now) == expected


def test_nearest_is_none_far_from_any_occurrence() -> None:
    """A daily job called at noon has no occurrence within an hour."""
    assert nearest(Schedule('30 8 * * *'), T0 + timedelta(hours=4)) is None


def test_nearest_is_in_the_schedules_zone() -> None:
    """The result is aware, in the schedule's zone, the same instant."""
    found = nearest(Schedule('30 9 * * *', timezone='Europe/Zurich'), T0)
    assert found is not None
    assert found.tzinfo == ZURICH
    assert found == T0


# --- checking the settings ---------------------------------------------------


def test_a_bad_policy_is_refused_at_registration() -> None:
    """misfire= outside once/skip/all fails when the job is registered."""
    app = CronApp(secret='s', enabled=False)
    with pytest.raises(ValueError, match="misfire must be one of once, "
                       "skip, all, got 'sometimes'"):
        app.cronjob('* * * * *', misfire='sometimes')(lambda request: None)


def test_a_bad_app_policy_is_refused_at_construction() -> None:
    """CronApp(misfire=...) and grace are checked at once, named."""
    with pytest.raises(ValueError, match="CronApp: misfire must be"):
        CronApp(secret='s', misfire='never')
    with pytest.raises(ValueError, match='CronApp: grace must be positive'):
        CronApp(secret='s', grace=0)


def test_grace_takes_seconds_or_a_timedelta() -> None:
    """grace in seconds or as a timedelta; anything else is a TypeError."""
    assert check_policy('once', 90, 'x') == timedelta(seconds=90)
    assert check_policy('once', timedelta(minutes=2), 'x') == timedelta(
        minutes=2)
    assert check_policy('once', None, 'x') is None
    with pytest.raises(TypeError, match="x: grace must be seconds"):
        check_policy('once', '1h', 'x')  # type: ignore[arg-type]


def test_the_job_takes_the_apps_defaults() -> None:
    """A job without misfire/grace of its own takes the CronApp's."""
    app = CronApp(secret='s', enabled=False, misfire='skip', grace=60)
    app.cronjob('* * * * *', name='a')(lambda request: None)
    app.cronjob('* * * * *', name='b', misfire='all', grace=5)(
        lambda request: None)
    assert (app.jobs['a'].misfire, app.jobs['a'].grace) == (
        'skip', timedelta(seconds=60))
    assert (app.jobs['b'].misfire, app.jobs['b'].grace) == (
        'all', timedelta(seconds=5))
