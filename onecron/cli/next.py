"""``onecron next APP JOB [--count N] [--after ISO-TIME]``: when a job fires.

One line per fire, in the job's zone, jitter included, from the schedule
in force. A fire that a DST change moved or doubled says so on its line:

* ``moved``: a wall-clock schedule's time fell into the hour skipped in
  spring; it fires once, right after the gap;
* ``repeated``: the fire's wall time happens twice when the clocks go
  back; a wall-clock schedule fires at the first pass only, others at
  both (each line says which pass it is).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from typing import TextIO

from onecron.app import CronApp
from onecron.errors import OnecronError
from onecron.schedule.rules import Schedule

__all__ = ['add_next_parser', 'dst_note', 'next_command', 'parse_after']

_SECOND = timedelta(seconds=1)


def parse_after(text: str) -> datetime:
    """``--after``: an ISO 8601 time; without an offset, a wall time of
    the job's zone (resolved later), else aware."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'must be an ISO 8601 time such as 2026-10-24T12:00:00+02:00, '
            f'got {text!r}') from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(
            f'must be a whole number from 1 to 10000, got {text!r}')
    return value


def add_next_parser(sub: argparse.ArgumentParser) -> None:
    """The arguments of ``onecron next`` after ``APP``."""
    sub.add_argument('job', metavar='JOB')
    sub.add_argument('--count', type=_count, default=5, metavar='N',
                     help='how many fire times (default 5)')
    sub.add_argument('--after', type=parse_after, metavar='ISO-TIME',
                     help='the fire times after this time (default: now); '
                     "without an offset, a time of the job's zone")
    sub.add_argument('--application-id', metavar='ID',
                     help="the application id (default: the app's own, "
                     "or 'default'); the jitter depends on it")


def next_command(app: CronApp, args: argparse.Namespace,
                 out: TextIO) -> int:
    """Print the next ``args.count`` fire times of ``args.job``."""
    name = args.job
    if name not in app.jobs:
        known = ', '.join(sorted(app.jobs)[:5]) or 'none'
        raise OnecronError(f'no job named {name!r}; the jobs are: {known}'
                           + (', ...' if len(app.jobs) > 5 else ''))
    application_id = args.application_id or (
        app.application_id if isinstance(app.application_id, str)
        else 'default')
    job = app.jobs[name]
    schedule = app.operations.schedule_in_force(job, application_id)
    if schedule is None:
        raise OnecronError(f'job {name!r} has no schedule: it runs only '
                           f'when asked to (onecron run, its URL or the '
                           f'status page)')
    after = args.after or app.clock()
    if after.tzinfo is None or after.utcoffset() is None:
        after = after.replace(tzinfo=schedule.tz)
    moment = after
    for _ in range(args.count):
        moment = job.next_runtime(moment, application_id, schedule)
        occurrence = job.occurrence_of(moment, application_id, schedule)
        line = moment.isoformat(' ', 'seconds')
        note = dst_note(schedule, occurrence)
        out.write(f'{line}  {note}\n' if note else f'{line}\n')
    return 0


def dst_note(schedule: Schedule, occurrence: datetime) -> str | None:
    """What a DST change did to ``occurrence`` (a nominal fire of
    ``schedule``, in its zone), or None when it did nothing."""
    tz = schedule.tz
    local = occurrence.astimezone(tz)
    other = local.replace(fold=1 - local.fold)
    if other.utcoffset() != local.utcoffset():
        wall = local.strftime('%H:%M:%S' if local.second else '%H:%M')
        first, second = sorted((local.utcoffset() or timedelta(),
                                other.utcoffset() or timedelta()),
                               reverse=True)
        if schedule.wall_clock:
            return (f'(DST: repeated, {wall} happens twice as the clocks '
                    f'go back; runs once, at the first)')
        which = 'first' if local.utcoffset() == first else 'second'
        return (f'(DST: repeated, {wall} happens twice as the clocks go '
                f'back; this is the {which} of its two runs)')
    cron = schedule.cron
    if cron is None or not schedule.wall_clock:
        return None
    if (local.second in cron.seconds and local.minute in cron.minutes
            and local.hour in cron.hours):
        return None
    before = (occurrence.astimezone(timezone.utc) - _SECOND).astimezone(tz)
    jump = (local.utcoffset() or timedelta()) - (before.utcoffset()
                                                 or timedelta())
    if jump <= timedelta(0):
        return None
    start = local.replace(tzinfo=None) - jump
    skipped = [f'{hour:02}:{minute:02}' for hour in cron.hours
               for minute in cron.minutes
               if start.time() <= start.replace(hour=hour, minute=minute
                                                ).time() < local.time()]
    due = skipped[0] if skipped else 'its time'
    return (f'(DST: moved, {due} does not exist on this day, the clocks '
            f'go forward from {start:%H:%M} to {local:%H:%M}; runs once, '
            f'right after the gap)')
