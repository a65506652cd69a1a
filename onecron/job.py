"""A registered job: its function, its schedule and its jitter."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from .schedule import Schedule

JobFunction = Callable[[Any], Any]


def _unit_interval(*parts: str) -> float:
    """A number in [0, 1] that depends only on ``parts``.

    Hash-seed and process independent (unlike :func:`hash`), so every process
    on every host computes the same jitter for the same job and tenant.
    """
    digest = hashlib.blake2b(
        '\x00'.join(parts).encode('utf-8'), digest_size=8).digest()
    return int.from_bytes(digest, 'big') / 0xFFFF_FFFF_FFFF_FFFF


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f'an aware datetime is needed, got the naive '
                         f'{moment!r}')
    return moment.astimezone(timezone.utc)


class Job:
    """A function registered with ``@app.cronjob(...)``.

    :param name: unique name, by default ``module.qualname`` of ``func``
    :param func: called with the :class:`webob.Request` of the job URL
    :param schedule: when the job runs
    :param once: run only the first occurrence after the scheduler starts
    :param jitter: whether to add the deterministic offset
    :param max_offset: the largest offset in seconds
    """

    __slots__ = ('name', 'func', 'schedule', 'once', 'jitter', 'max_offset')

    def __init__(self, name: str, func: JobFunction, schedule: Schedule, *,
                 once: bool = False, jitter: bool = True,
                 max_offset: float = 30.0) -> None:
        self.name = name
        self.func = func
        self.schedule = schedule
        self.once = once
        self.jitter = jitter
        self.max_offset = max_offset

    def offset_for(self, application_id: str) -> float:
        """The jitter of this job for ``application_id``, in seconds.

        In ``[0, max_offset]``; the same in every process and after every
        restart, different per job and per application id, so a hundred
        tenants' midnight jobs do not hit the site in the same second.
        """
        if not self.jitter or self.max_offset <= 0:
            return 0.0
        return _unit_interval(self.name, application_id) * self.max_offset

    def next_runtime(self, after: datetime,
                     application_id: str = 'default') -> datetime:
        """The first fire strictly after ``after``, offset included.

        Aware, in the schedule's zone. The offset is added in UTC: adding
        a timedelta to a zoned datetime is wall-clock arithmetic, which
        would move a fire in a repeated hour by that hour.
        """
        offset = timedelta(seconds=self.offset_for(application_id))
        occurrence = self.schedule.next_after(_utc(after) - offset)
        return (_utc(occurrence) + offset).astimezone(self.schedule.tz)

    def occurrence_of(self, runtime: datetime,
                      application_id: str = 'default') -> datetime:
        """The nominal scheduled time (before jitter) of a fire time."""
        offset = timedelta(seconds=self.offset_for(application_id))
        return (_utc(runtime) - offset).astimezone(self.schedule.tz)

    def __repr__(self) -> str:
        return f'<Job {self.name!r} {self.schedule!r}>'
