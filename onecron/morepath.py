"""Morepath support: ``@App.cronjob(...)`` as a Morepath directive.

Subclass :class:`CronjobApp` instead of :class:`morepath.App`, register jobs
with the ``cronjob`` directive (the keywords of
:meth:`onecron.CronApp.cronjob`), and serve :func:`cron_app`::

    class App(CronjobApp):
        pass

    @App.cronjob(hour=8, minute=30, timezone='Europe/Zurich')
    def morning_report(request):      # a morepath.Request bound to the app
        send_report(request.app.settings.mail.sender)

    application = cron_app(App(), secret='long random string')

The directive is a :mod:`dectate` action like Morepath's own: jobs are
registered when the app class is committed, a subclass inherits its base's
jobs and overrides one by registering a job of the same ``name=``, and a
bad schedule or option, or a function that cannot be called with the
request as its one positional argument (:exc:`TypeError`), fails the
commit (:class:`~onecron.InvalidSchedule` for the schedule), before
anything is served.

A job runs as a Morepath view does: it gets a :class:`morepath.Request`
bound to the app (``request.app``, ``request.link(...)``), inside the app's
tweens (``more.transaction`` commits after it and aborts when it raises).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dectate
import morepath
from webob import Request, Response

from onecron.app import CronApp
from onecron.errors import OnecronError
from onecron.job import (
    DEFAULTS,
    Job,
    JobOptions,
    ShouldRun,
    schedule_from,
)

__all__ = ['CronjobAction', 'CronjobApp', 'Cronjob', 'cron_app']

#: the WSGI environ key under which a job call reaches the tweens' core
_CALL = 'onecron.morepath.call'

Tween = Callable[[Any], Response]


@dataclass(frozen=True)
class Cronjob:
    """A job registered with the directive, as found in the app's config.

    :param name: the job's unique name
    :param func: the decorated function
    :param arguments: the directive's keywords, for
        :meth:`onecron.CronApp.cronjob`
    """

    name: str
    func: Callable[[Any], Any]
    arguments: dict[str, Any]


class CronjobAction(dectate.Action):
    """Register the decorated function as a onecron job.

    Takes the keywords of :meth:`onecron.CronApp.cronjob`. The function
    gets the :class:`morepath.Request` of the job's URL as its one
    positional argument. The schedule is checked when the action is made,
    the options and the function's signature when it is performed: both
    at commit.
    """

    config = {'onecron_jobs': dict}

    def __init__(self, expr: str | None = None, *,
                 hour: int | str | None = None,
                 minute: int | str | None = None,
                 day: int | str | None = None,
                 month: int | str | None = None,
                 weekday: int | str | None = None,
                 timezone: str = 'UTC', every: timedelta | None = None,
                 name: str | None = None, once: bool = DEFAULTS.once,
                 jitter: bool = DEFAULTS.jitter,
                 should_run: ShouldRun | None = DEFAULTS.should_run,
                 then: Iterable[str] = DEFAULTS.then,
                 overlap: str = DEFAULTS.overlap,
                 timeout: float | None = DEFAULTS.timeout,
                 notify: str = DEFAULTS.notify,
                 misfire: str | None = DEFAULTS.misfire,
                 grace: float | timedelta | None = DEFAULTS.grace) -> None:
        # the keywords of CronApp.cronjob (tests/test_composition.py
        # checks they stay the same), checked as it checks them
        self.name = name
        self.schedule = schedule_from(
            expr, hour=hour, minute=minute, day=day, month=month,
            weekday=weekday, timezone=timezone, every=every)
        self.job_options = JobOptions(
            once=once, jitter=jitter, should_run=should_run, then=then,
            overlap=overlap, timeout=timeout, notify=notify,
            misfire=misfire, grace=grace)
        self.options: dict[str, Any] = self.job_options.keywords()
        self.arguments: dict[str, Any] = dict(
            expr=expr, hour=hour, minute=minute, day=day, month=month,
            weekday=weekday, timezone=timezone, every=every, **self.options)

    def identifier(self, onecron_jobs: dict[str, Cronjob]) -> object:
        # a named job is what a subclass app overrides; an unnamed one is
        # named after its function, which an action does not know yet
        return self.name if self.name is not None else self

    def perform(self, obj: Callable[[Any], Any],
                onecron_jobs: dict[str, Cronjob]) -> None:
        name = self.name or f'{obj.__module__}.{obj.__qualname__}'
        if name in onecron_jobs:
            raise dectate.DirectiveError(
                f'a job named {name!r} is already registered')
        # checks the options now; None leaves one to the CronApp's default
        Job(name, obj, self.schedule, **self.job_options.given())
        onecron_jobs[name] = Cronjob(name, obj, self.arguments)


class CronjobApp(morepath.App):
    """A :class:`morepath.App` with the ``cronjob`` directive."""

    cronjob = dectate.directive(CronjobAction)


def cron_app(app: morepath.App, **options: Any) -> CronApp:
    """A :class:`~onecron.CronApp` wrapping ``app``, with its jobs.

    ``options`` are :class:`~onecron.CronApp`'s. Commits the app class
    first if it is not committed yet; jobs of apps mounted into ``app``
    are not collected.
    """
    if not app.is_committed():
        app.commit()
    jobs: dict[str, Cronjob] = getattr(app.config, 'onecron_jobs', {})
    cron = CronApp(app, **options)
    core = _Core(app)
    for job in jobs.values():
        cron.cronjob(name=job.name, **job.arguments)(core.runner(job))
    return cron


@dataclass
class _Call:
    """One job call on its way through the tweens."""

    job: Cronjob
    done: bool = False
    result: Any = None
    error: Exception | None = None


class _Core:
    """Runs jobs inside ``app``'s tweens, where Morepath publishes a view."""

    def __init__(self, app: morepath.App) -> None:
        self.app = app
        handler: Tween = _run_call
        for factory in reversed(
                app.config.tween_registry.sorted_tween_factories()):
            handler = factory(app, handler)
        self._handler = handler

    def runner(self, job: Cronjob) -> Callable[[Request], Any]:
        """The function onecron calls for ``job``: it gets a webob request."""

        def run(request: Request) -> Any:
            environ = request.environ
            call = environ[_CALL] = _Call(job)
            try:
                response = self._handler(self.app.request(environ))
            finally:
                del environ[_CALL]
            if call.error is not None:
                raise call.error  # an exception view must not hide it
            if not call.done:
                raise OnecronError(
                    f'job {job.name!r} did not run: a tween answered '
                    f'{response.status} before it')
            return call.result

        return functools.update_wrapper(run, job.func)


def _run_call(request: morepath.Request[Any]) -> Response:
    call: _Call = request.environ[_CALL]
    try:
        call.result = call.job.func(request)
    except Exception as exc:
        call.error = exc
        raise
    call.done = True
    return Response()
