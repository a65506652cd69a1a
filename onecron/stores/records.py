"""The store's records, and how every backend normalises what it keeps.

:class:`Run`, :class:`JobSettings`, :class:`Hold`, :class:`SchedulerInfo`
and :class:`Lease` are what the stores return; :func:`utc`,
:func:`storable` and :func:`bounded` are the checks and conversions that
:class:`~onecron.stores.base.Store` applies once, before any backend sees
an argument. No I/O happens here.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from onecron.text import encodable

#: the most characters of a run's output (and of its error) that are kept
MAX_OUTPUT = 64 * 1024

#: days a claim is kept: long after any retry or catch-up could ask again
CLAIM_DAYS = 7


class Outcome(str, enum.Enum):
    """How a run ended."""

    OK = 'ok'
    FAILED = 'failed'
    SKIPPED = 'skipped'
    TIMED_OUT = 'timed out'
    MISSED = 'missed'


class Trigger(str, enum.Enum):
    """Who started a run."""

    SCHEDULER = 'scheduler'
    URL = 'url'
    MANUAL = 'manual'
    CHAIN = 'chain'
    SOON = 'soon'


@dataclass(frozen=True, slots=True)  # slots: made on every job run
class Run:
    """One run of a job, finished or not."""

    id: int
    application_id: str
    job: str
    #: the nominal occurrence, before jitter; None for external calls
    scheduled: datetime | None
    trigger: Trigger
    started: datetime
    #: None while running, and forever after a crash mid-run
    ended: datetime | None
    #: None while running
    outcome: Outcome | None
    http_status: int | None
    #: the job's output, at most :data:`MAX_OUTPUT` characters and a marker
    output: str
    #: the error message and traceback, bounded like ``output``
    error: str | None
    #: the caller's run key, if one was given: unique per application id
    #: and job
    key: str | None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while running."""
        if self.ended is None:
            return None
        return (self.ended - self.started).total_seconds()

    @property
    def running(self) -> bool:
        """Whether the run has no outcome yet (or crashed mid-run)."""
        return self.outcome is None


@dataclass(frozen=True)
class JobSettings:
    """An operator's switches for one job; the defaults change nothing."""

    enabled: bool = True
    #: an overriding schedule (the expression text); None: the code's
    schedule: str | None = None
    #: the override's time zone; None: the job's own
    timezone: str | None = None


@dataclass(frozen=True)
class Hold:
    """Whether an application id's jobs are held, and since when.

    ``since`` is when the current state began (held since, or released
    since); None if the id was never held.
    """

    held: bool
    since: datetime | None


@dataclass(frozen=True)
class SchedulerInfo:
    """A scheduler thread's sign of life, one per application id and pid."""

    application_id: str
    host: str
    pid: int
    alive_since: datetime
    heartbeat: datetime


@dataclass(frozen=True)
class Lease:
    """Which scheduler fires the jobs of an application id, on all hosts.

    One holder at a time: it renews the lease while it runs; when it stops
    renewing (killed, cut off), another takes over once ``expires`` has
    passed. ``node`` is the scope of the holder's host lock: a holder on
    the same node can only be there because the old one let go of that
    lock (or died), so it takes over at once.
    """

    application_id: str
    #: who holds it: ``host:pid`` and a random part, unique per scheduler
    holder: str
    #: the holder's host lock scope (host name and lock directory)
    node: str
    acquired: datetime
    #: when the holder last renewed it; firing went on until then
    renewed: datetime
    expires: datetime


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; ``ValueError`` if it is naive."""
    if moment.tzinfo is timezone.utc:  # the clock's times, on every run
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f'naive datetime {moment.isoformat()}: the store '
                         'needs aware datetimes')
    return moment.astimezone(timezone.utc)


def storable(text: str) -> str:
    """``text`` as every backend stores it.

    A NUL (which PostgreSQL text cannot hold) becomes ``\\x00``, and a
    character UTF-8 cannot encode (a lone surrogate from undecodable bytes,
    say ``\\udcff``) its backslash escape, so that any text a job prints
    or a caller sends can be written, and reads back the same from every
    backend.
    """
    if not text.isascii():  # a flag: ASCII text costs no scan
        text = encodable(text)
    if '\x00' in text:
        text = text.replace('\x00', '\\x00')
    return text


def bounded(text: str) -> str:
    """``text`` cut to :data:`MAX_OUTPUT` characters, with a marker if cut,
    and made :func:`storable`."""
    if len(text) > MAX_OUTPUT:
        dropped = len(text) - MAX_OUTPUT
        text = (f'{text[:MAX_OUTPUT]}\n'
                f'[… output truncated: {dropped} characters dropped]')
    return storable(text)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _bounded_or_none(text: str | None) -> str | None:
    return None if text is None else bounded(text)


def _redacted(url: str) -> str:
    """``url`` without the password of its user part."""
    return re.sub(r'(://[^/@:]*):[^/@]*@', r'\1:***@', url)
