"""Helpers for your own tests of the jobs of a :class:`~onecron.CronApp`.

:func:`run_job` runs a job once, synchronously, through its signed URL,
in-process: no server, no scheduler started, nothing sent anywhere but
to your application. :func:`simulate` lists what the scheduler would fire
in a stretch of time, without running anything.

With ``pytest_plugins = ['onecron.testing']`` in your ``conftest.py``
the fixtures ``run_cronjob(name)`` and ``cron_simulation(start, end)``
give them to your tests; define a ``cronapp`` fixture that returns your
application first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from webob import Request

from onecron.app import CronApp
from onecron.errors import OnecronError
from onecron.protocol.headers import RUN_HEADER, TRIGGER_HEADER
from onecron.reporting import REDACTED
from onecron.running.checkins import observing
from onecron.stores.base import Trigger

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

__all__ = ['JobResult', 'run_job', 'simulate']

#: where a job runs when its application id has no base URL
_LOCAL = 'http://localhost'


@dataclass(frozen=True)
class JobResult:
    """What one :func:`run_job` gave."""

    #: the HTTP status of the job URL's answer: 200, 500 for a job that
    #: raised, 409 when it is still running elsewhere, ...
    status: int
    #: what the job printed to the log and returned (token redacted);
    #: ``''`` when it did not run
    output: str
    #: what the job raised as ``'Type: message'`` on one line
    #: (``'ValueError: bad row 3'``; the token redacted), else None
    error: str | None
    #: the traceback of a job that raised (token redacted), else None
    traceback: str | None = None


def run_job(app: CronApp, name: str, *,
            application_id: str | None = None) -> JobResult:
    """Run the job ``name`` of ``app`` once, now, in this thread, through
    its signed URL, as a manual run.

    It goes through everything a real call does (``job_access``, the
    job lock, the store, mails, Sentry) but for the network, and starts no
    scheduler. Chained (``then=``) jobs are called as usual: over HTTP, on
    the base URL of ``application_id``, when it has one.

    :param application_id: the tenant to run it for; default the app's
        fixed id (needed when ``application_id`` is a callable, which must
        give this id for a request to ``app.base_url_of(application_id)``)
    :raises KeyError: when ``app`` has no job ``name``
    :raises ValueError: when the request would be another application
        id's (or no tenant's)
    """
    if name not in app.jobs:
        raise KeyError(name)
    if application_id is None:
        if not isinstance(app.application_id, str):
            raise ValueError('the application_id of the CronApp is a '
                             'callable: pass run_job(..., '
                             'application_id=...)')
        application_id = app.application_id
    base = app.base_url_of(application_id) or _LOCAL
    key = uuid.uuid4().hex
    url = app.operations.trigger_url(name, base, application_id,
                                     Trigger.MANUAL, key, app.clock())
    # loopback, as the scheduler's own calls: job_access='loopback' lets
    # it through; the Host a client would send, as `onecron run` does
    request = Request.blank(url, method='POST', remote_addr='127.0.0.1',
                            headers={TRIGGER_HEADER: Trigger.MANUAL.value,
                                     RUN_HEADER: key,
                                     'Host': urlsplit(url).netloc})
    found = app.application_id_of(request)
    if found != application_id:
        raise ValueError(f'a request to {base} is application id '
                         f'{found!r}, not {application_id!r}: configure '
                         f'CronApp(base_url=...) to give each id its URL')
    with observing() as finished:
        status = _call(app, request)
    ran = [run for run in finished if run.job == name]
    if not ran:
        return JobResult(status, '', None)
    run = ran[-1]
    exc = run.exception
    error = None
    if exc is not None:
        # as the output and traceback: the URL's token redacted
        token = urlsplit(url).path.rsplit('/', 1)[-1]
        text = ' '.join(str(exc).replace(token, REDACTED).split())
        error = f'{type(exc).__name__}: {text}' if text \
            else type(exc).__name__
    elif run.error is not None:
        error = run.error.strip().splitlines()[-1]
    return JobResult(status, run.output, error, run.error)


def _call(app: CronApp, request: Request) -> int:
    """The HTTP status of ``request``'s answer from ``app``'s job URLs,
    without what a request does first in a serving process (start a
    scheduler)."""
    status: list[str] = []

    def start_response(line: str, headers: Any,
                       exc_info: Any = None) -> Callable[[bytes], object]:
        status.append(line)
        return lambda data: None

    respond: StartResponse = start_response
    body = app._serve(request.path_info, request.environ, respond)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, 'close', None)
        if close is not None:
            close()
    return int(status[-1].split(' ', 1)[0])


def simulate(app: CronApp, start: datetime, end: datetime, *,
             application_id: str = 'default'
             ) -> list[tuple[datetime, str]]:
    """The ``(fire time, job name)`` pairs ``app``'s scheduler would fire
    for ``application_id`` from ``start`` (included) to ``end`` (not
    included), in order of time (then name), jitter included.

    Each job's schedule in force (an operator's override in the store,
    else the code's) and its jitter offset for ``application_id`` are
    used, as :meth:`~onecron.job.Job.next_runtime` computes them; times
    are aware, in the job's zone. Manual-only jobs never fire; switches,
    holds, ``should_run`` and ``once=`` are not taken into account.

    :raises ValueError: for a naive ``start`` or ``end``
    """
    for label, moment in (('start', start), ('end', end)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f'simulate needs an aware {label}, got the '
                             f'naive {moment!r}')
    # next_runtime gives the first fire strictly after: from just before
    before = start.astimezone(timezone.utc) - timedelta(microseconds=1)
    fires: list[tuple[datetime, str]] = []
    for job in list(app.jobs.values()):
        schedule = app.operations.schedule_in_force(job, application_id)
        if schedule is None:
            continue
        moment = job.next_runtime(before, application_id, schedule)
        while moment < end:
            fires.append((moment, job.name))
            moment = job.next_runtime(moment, application_id, schedule)
    fires.sort(key=lambda fire: (fire[0].astimezone(timezone.utc), fire[1]))
    return fires


# -- the pytest plugin: pytest_plugins = ['onecron.testing'] ------------------

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only for the fixtures
    pass
else:
    @pytest.fixture
    def cronapp() -> CronApp:
        """The CronApp the other fixtures use: override it in your
        ``conftest.py`` to return your application."""
        raise OnecronError("define a 'cronapp' fixture that returns your "
                           'CronApp to use the onecron.testing fixtures')

    @pytest.fixture
    def run_cronjob(cronapp: CronApp) -> Callable[..., JobResult]:
        """:func:`run_job` on the ``cronapp`` fixture:
        ``run_cronjob('purge')``."""
        def run(name: str, *, application_id: str | None = None
                ) -> JobResult:
            return run_job(cronapp, name, application_id=application_id)
        return run

    @pytest.fixture
    def cron_simulation(cronapp: CronApp
                        ) -> Callable[..., list[tuple[datetime, str]]]:
        """:func:`simulate` on the ``cronapp`` fixture:
        ``cron_simulation(start, end)``."""
        def run(start: datetime, end: datetime, *,
                application_id: str = 'default'
                ) -> list[tuple[datetime, str]]:
            return simulate(cronapp, start, end,
                            application_id=application_id)
        return run

