"""Missed runs: which occurrences a scheduler missed, and what to do now.

Pure: the scheduler asks, on taking over an application id, which
occurrences fell due while no scheduler ran (:func:`missed`), takes out
those the store says were claimed, and :func:`plan` decides per the job's
policy which to run now and which are missed (the scheduler writes them
down as one record per job, not one per occurrence):

``'once'`` (the default)
    run the newest missed occurrence once, now, if it is at most ``grace``
    old; record the rest as missed
``'skip'``
    run nothing; record every missed occurrence as missed
``'all'``
    run each missed occurrence, oldest first, at most :data:`MAX_REPLAY`;
    record the older rest as missed

Without a ``grace`` of its own a job's is the shorter of an hour and its
interval (from the newest missed occurrence to the one after it): a job
that runs every five minutes does not catch up a run that the next regular
one will make anyway.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from onecron.job import POLICIES as POLICIES
from onecron.job import check_policy as check_policy

if TYPE_CHECKING:
    from onecron.job import Job
    from onecron.schedule.rules import Schedule

#: the grace when neither the job nor the app sets one: at most this long
DEFAULT_GRACE = timedelta(hours=1)
#: the newest missed occurrences of a job that are looked at; older ones
#: are counted and logged, not recorded one by one
MAX_MISSED = 1000
#: the most occurrences ``misfire='all'`` runs
MAX_REPLAY = 100


@dataclass
class Missed:
    """The occurrences of one job that fell due in a window, oldest first.

    At most :data:`MAX_MISSED`, the newest; ``older`` counts those left
    out before them, and ``first`` is the oldest of all.
    """

    occurrences: list[datetime] = field(default_factory=list)
    older: int = 0
    first: datetime | None = None


def missed(job: Job, schedule: Schedule, application_id: str,
           since: datetime, until: datetime) -> Missed:
    """The occurrences of ``job`` whose fire time (jitter included) fell
    after ``since`` and at or before ``until``.

    Nominal times (as claims are keyed), aware in the schedule's zone.
    """
    newest: deque[datetime] = deque(maxlen=MAX_MISSED)
    seen = 0
    first = None
    limit = until.timestamp()
    runtime = job.next_runtime(since, application_id, schedule)
    while runtime.timestamp() <= limit:
        newest.append(job.occurrence_of(runtime, application_id,
                                        schedule))
        if first is None:
            first = newest[0]
        seen += 1
        runtime = job.next_runtime(runtime, application_id, schedule)
    return Missed(list(newest), seen - len(newest), first)


@dataclass(frozen=True)
class Plan:
    """What to do about a job's missed occurrences."""

    #: run these now, oldest first
    run: list[datetime]
    #: record these as missed
    missed: list[datetime]
    #: ``'once'``: the grace the newest was measured against
    grace: timedelta | None = None


def plan(policy: str, occurrences: list[datetime], *, now: datetime,
         grace: timedelta | None, schedule: Schedule) -> Plan:
    """Split unclaimed missed ``occurrences`` (oldest first) per ``policy``.

    ``grace`` None: the default, see the module's documentation.
    """
    if not occurrences:
        return Plan([], [])
    if policy == 'skip':
        return Plan([], list(occurrences))
    if policy == 'all':
        return Plan(occurrences[-MAX_REPLAY:], occurrences[:-MAX_REPLAY])
    newest = occurrences[-1]
    if grace is None:
        # as instants: aware datetimes of one zone subtract as wall times
        interval = timedelta(seconds=schedule.next_after(newest).timestamp()
                             - newest.timestamp())
        grace = min(DEFAULT_GRACE, interval)
    if now.timestamp() - newest.timestamp() <= grace.total_seconds():
        return Plan([newest], occurrences[:-1], grace)
    return Plan([], list(occurrences), grace)


def nearest(schedule: Schedule, now: datetime,
            windows: tuple[timedelta, ...] = (timedelta(minutes=1),
                                              timedelta(hours=1)),
            ) -> datetime | None:
    """The occurrence of ``schedule`` nearest to ``now``, or None.

    Looked for within the first of ``windows`` around ``now`` that holds
    one, so a per-second job costs a few steps and an hourly one is still
    found; None if none is within the last window. An external scheduler
    that calls a little early or late, or twice, names the same one.
    """
    now = now.astimezone(timezone.utc)
    for window in windows:
        best = None
        moment = schedule.next_after(now - window).astimezone(timezone.utc)
        while moment - now <= window:
            if best is None or abs(moment - now) < abs(best - now):
                best = moment
            elif moment > now:
                break  # only further away from here on
            moment = schedule.next_after(moment).astimezone(timezone.utc)
        if best is not None:
            return best.astimezone(schedule.tz)
    return None
