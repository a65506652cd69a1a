"""Sentry Crons: a check-in as each run of a job starts and as it ends.

Every run the job endpoint serves (a scheduled call, run now, an external
call of the job's URL) is one :class:`CheckIn`: when a Sentry client is
active it sends ``in_progress`` through
:func:`sentry_sdk.crons.capture_checkin` as the run starts, with the
monitor's configuration, then ``ok`` or ``error`` with the duration and
the same ``check_in_id``. Without an active client, or with
``CronApp(sentry_crons=False)``, nothing is sent.

The monitor's configuration (:func:`monitor_config`) comes from the
schedule in force. Schedules Sentry cannot express (a seconds field,
``L``, ``W`` or ``#`` in a day field, an interval that is not whole
minutes) and manual-only jobs check in without one: Sentry takes such
check-ins only for a monitor made by hand with the same slug. Sentry
computes the expected times of a crontab with its own rules, which across
a DST change may differ from onecron's.

A check-in holds nothing but the slug (from the job's name and the
application id), the status, the duration and the configuration; it is
sent in a scope of its own, so that no span or transaction of the
request (whose URL holds the job's token) reaches it.

:func:`observing` lets :mod:`onecron.testing` see how the runs that the
current thread serves end (output and error), without a store.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sentry_sdk
from sentry_sdk.crons import capture_checkin

from onecron.job import Job
from onecron.running.misfire import DEFAULT_GRACE
from onecron.schedule.rules import Schedule

__all__ = ['CheckIn', 'CheckIns', 'FinishedRun', 'checkin_margin',
           'max_runtime', 'monitor_config', 'monitor_slug', 'observing',
           'sentry_schedule']

log = logging.getLogger(__name__)

#: the longest monitor slug Sentry takes
SLUG_LENGTH = 50
#: hex digits of the hash a changed or shortened slug ends with
_HASH_LENGTH = 8
_NOT_SLUG = re.compile(r'[^a-z0-9_-]+')
#: the units of an interval Sentry takes, largest first, in seconds
_UNITS = (('day', 86400), ('hour', 3600), ('minute', 60))

#: the schedule in force for a job and application id
ScheduleOf = Callable[[Job, str], Schedule | None]


def monitor_slug(job: str, application_id: str = 'default') -> str:
    """The Sentry monitor slug of ``job`` for ``application_id``.

    The job's name, prefixed with ``application_id`` and ``/`` when that
    is not ``'default'``, made lower case, with every run of characters
    but ``a-z0-9_-`` made one ``-``. A slug that this changed, or that is
    all digits, or longer than :data:`SLUG_LENGTH` (50) is cut and ends
    with ``-`` and 8 hex digits of a hash of the original text, so two
    names never share a slug: ``nightly_billing`` stays as it is,
    ``app.jobs.Purge`` becomes ``app-jobs-purge-`` and a hash.
    """
    text = job if application_id == 'default' else f'{application_id}/{job}'
    slug = _NOT_SLUG.sub('-', text.lower()).strip('-')
    if slug == text and len(slug) <= SLUG_LENGTH and not slug.isdigit():
        return slug
    # the pair, not the text: job 'a/b' is not job 'b' of application 'a'
    digest = hashlib.blake2b(
        f'{application_id}\x00{job}'.encode('utf-8', 'surrogatepass'),
        digest_size=_HASH_LENGTH // 2).hexdigest()
    head = slug[:SLUG_LENGTH - _HASH_LENGTH - 1].rstrip('-') or 'job'
    return f'{head}-{digest}'


def sentry_schedule(schedule: Schedule | None) -> dict[str, Any] | None:
    """``schedule`` as Sentry's ``monitor_config['schedule']``, or None
    when Sentry cannot express it.

    A cron expression of five fields without ``L``, ``W`` or ``#`` is
    ``{'type': 'crontab', 'value': '<5 fields>'}``; ``every=`` of whole
    minutes, hours or days is ``{'type': 'interval', 'value': N,
    'unit': 'minute' | 'hour' | 'day'}`` (the largest unit that divides
    it). None for a seconds field, ``L``/``W``/``#``, an interval of
    seconds, and no schedule at all.
    """
    if schedule is None:
        return None
    every = schedule.every
    if every is not None:
        seconds = every // timedelta(seconds=1)
        for unit, size in _UNITS:
            if seconds % size == 0:
                return {'type': 'interval', 'value': seconds // size,
                        'unit': unit}
        return None
    cron = schedule.cron
    assert cron is not None
    fields = cron.fields
    if len(fields) != 5 or (
            cron.last_day or cron.last_workday or cron.nearest_workdays
            or cron.nth_weekdays or cron.last_weekdays):
        return None
    return {'type': 'crontab', 'value': ' '.join(fields)}


def checkin_margin(job: Job, schedule: Schedule) -> int:
    """How late (whole minutes, at least 1) Sentry waits for a run to
    start before it calls the run missed.

    ``ceil((jitter window + grace) / 60)``: the jitter window is
    :meth:`~onecron.job.Job.offset_window` under ``schedule`` (a fire comes
    that much after its occurrence at most), and ``grace`` how late a
    missed occurrence still runs when a scheduler takes over: the job's
    ``grace``, else the default (the shorter of an hour and the
    schedule's shortest gap, see :mod:`onecron.running.misfire`).
    """
    grace = job.grace
    if grace is None:
        grace = min(DEFAULT_GRACE, schedule.shortest_gap)
    seconds = job.offset_window(schedule) + grace.total_seconds()
    return max(1, math.ceil(seconds / 60))


def max_runtime(job: Job, slow_after: float) -> int:
    """How long (whole minutes, at least 1) a run may take before Sentry
    calls it timed out: ``ceil(timeout / 60)`` with the job's
    ``timeout``, else ``ceil(slow_after / 60)``, where onecron reports it
    as slow."""
    limit = job.timeout if job.timeout is not None else slow_after
    return max(1, math.ceil(limit / 60))


def monitor_config(job: Job, schedule: Schedule | None, *,
                   slow_after: float) -> dict[str, Any] | None:
    """The ``monitor_config`` of ``job``'s check-ins under ``schedule``
    (the one in force), or None when Sentry cannot express the schedule
    (:func:`sentry_schedule`): ``schedule``, ``timezone``,
    ``checkin_margin`` (:func:`checkin_margin`) and ``max_runtime``
    (:func:`max_runtime`)."""
    expressed = sentry_schedule(schedule)
    if expressed is None or schedule is None:
        return None
    return {'schedule': expressed, 'timezone': schedule.timezone,
            'checkin_margin': checkin_margin(job, schedule),
            'max_runtime': max_runtime(job, slow_after)}


@dataclass(frozen=True)
class FinishedRun:
    """How a run that :func:`observing` saw ended."""

    job: str
    application_id: str
    #: the run's output, token redacted
    output: str
    #: the traceback of a failed run (token redacted), else None
    error: str | None
    #: what the job raised, else None
    exception: BaseException | None
    #: seconds
    duration: float


#: the lists :func:`observing` fills, in this context
_observers: ContextVar[tuple[list[FinishedRun], ...]] = ContextVar(
    'onecron_observers', default=())


@contextmanager
def observing() -> Iterator[list[FinishedRun]]:
    """The runs that end in this context (this thread, while inside),
    appended to the list given, in order."""
    finished: list[FinishedRun] = []
    reset = _observers.set((*_observers.get(), finished))
    try:
        yield finished
    finally:
        _observers.reset(reset)


def _client_active() -> bool:
    """Whether ``sentry_sdk.init`` made a client that sends: with a DSN
    or a transport of its own."""
    client = sentry_sdk.get_client()
    return client.is_active() and client.transport is not None


class CheckIns:
    """Makes a :class:`CheckIn` of each run the job endpoint serves.

    :param sentry_crons: whether to send check-ins; it may be set later
        (``CronApp.sentry_crons`` is this attribute), and is read at each run
    :param slow_after: the app's ``slow_after`` (see :func:`max_runtime`)
    """

    def __init__(self, sentry_crons: bool = True, *,
                 slow_after: float = 30.0) -> None:
        self.sentry_crons = sentry_crons
        self.slow_after = slow_after

    @property
    def sentry_crons(self) -> bool:
        """Whether runs check in (with an active Sentry client)."""
        return self._on

    @sentry_crons.setter
    def sentry_crons(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f'sentry_crons must be True or False, '
                            f'got {value!r}')
        self._on = value

    def start(self, job: Job, application_id: str,
              schedule_of: ScheduleOf) -> CheckIn:
        """A run of ``job`` starts: its ``in_progress`` check-in is sent
        when the check-ins are on and a Sentry client is active."""
        checkin = CheckIn(job, application_id)
        try:
            if self._on and _client_active():
                checkin.send_start(monitor_config(
                    job, schedule_of(job, application_id),
                    slow_after=self.slow_after))
        except Exception:  # never a reason for a run to fail
            log.exception('job %s (%s): the Sentry check-in failed',
                          job.name, application_id)
        return checkin

    def __repr__(self) -> str:
        return f'<CheckIns slow_after={self.slow_after}>'


class CheckIn:
    """One run's check-ins: see :meth:`CheckIns.start`."""

    def __init__(self, job: Job, application_id: str) -> None:
        self.job = job
        self.application_id = application_id
        self.slug = monitor_slug(job.name, application_id)
        #: the ``check_in_id`` of the ``in_progress`` check-in, if sent
        self.check_in_id: str | None = None
        #: what the job raised, set by the endpoint
        self.exception: BaseException | None = None

    def send_start(self, config: dict[str, Any] | None) -> None:
        """Send ``in_progress``, with ``config`` as the monitor's."""
        self.check_in_id = _send(self.slug, status='in_progress',
                                 monitor_config=config)

    def finish(self, duration: float, *, output: str = '',
               error: str | None = None) -> None:
        """The run ended after ``duration`` seconds, failed if ``error``
        (its traceback) is given: ``ok`` or ``error`` with the duration
        and the ``check_in_id`` of the start, if that was sent; and the
        observers of :func:`observing` told."""
        for finished in _observers.get():
            finished.append(FinishedRun(
                self.job.name, self.application_id, output, error,
                self.exception, duration))
        if self.check_in_id is None:
            return
        try:
            _send(self.slug, status='ok' if error is None else 'error',
                  check_in_id=self.check_in_id, duration=duration)
        except Exception:  # never a reason for a run to fail
            log.exception('job %s (%s): the Sentry check-in failed',
                          self.job.name, self.application_id)

    def __repr__(self) -> str:
        return f'<CheckIn {self.slug!r} {self.check_in_id}>'


def _send(slug: str, **fields: Any) -> str | None:
    """One check-in, in fresh scopes: no span, transaction or trace of
    the request (its URL holds a token) goes with it."""
    with sentry_sdk.isolation_scope() as isolation, \
            sentry_sdk.new_scope() as scope:
        isolation.set_new_propagation_context()
        scope.set_new_propagation_context()
        scope.span = None
        return capture_checkin(monitor_slug=slug, **fields)
