"""Flask support: :class:`Cron`, a Flask extension.

``pip install 'onecron-wsgi[flask]'``. Settings come from ``app.config``,
one ``ONECRON_<KEYWORD>`` key per keyword of :class:`~onecron.CronApp`
(``ONECRON_SECRET``, required; ``ONECRON_BASE_URL``, ``ONECRON_STORE``,
``ONECRON_LOCK_DIR``, ...)::

    from onecron.flask import Cron

    cron = Cron()

    @cron.cronjob(hour=3)
    def purge():                      # no arguments: Flask's request,
        db.session.execute(...)       # current_app and g work

    def create_app():
        app = Flask(__name__)
        app.config.from_object('settings')
        db.init_app(app)
        cron.init_app(app)
        return app

A job runs inside a real Flask request made of its job URL's environ (the
token replaced by ``[token]``, so a hook that logs ``request.url`` logs no
token), in an app context of its own: the ``before_request`` hooks run
first (one that answers, such as a login redirect, keeps the job from
running: the run fails saying so), the ``teardown_request`` and
``teardown_appcontext`` hooks after it (with the exception it raised), so
Flask-SQLAlchemy's session is removed as after a view. ``after_request``
hooks do not run: onecron, not Flask, answers the call. ``flask onecron
...`` runs the ``onecron`` command's subcommands (``list``, ``run JOB``,
``history``, ``status``, ``export`` ...) for the app.
"""

from __future__ import annotations

import difflib
import inspect
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from webob import Request

from onecron import CronApp, DuplicateJob, Job, OnecronError, Schedule
from onecron.cli import run_command
from onecron.job import check_job_function

__all__ = ['Cron']

F = TypeVar('F', bound=Callable[..., Any])

#: the key of ``app.extensions`` under which an app's CronApp is kept
_EXTENSION = 'onecron'
#: what every config key of onecron starts with
_PREFIX = 'ONECRON_'
#: what a job's Flask request shows in place of the job URL's token
_TOKEN = '[token]'


def _config_keys() -> dict[str, str]:
    """The ``app.config`` keys onecron reads and the
    :class:`~onecron.CronApp` keyword each sets: one per keyword, so a new
    keyword has its key at once."""
    return {f'{_PREFIX}{name.upper()}': name
            for name, parameter in inspect.signature(
                CronApp).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`~onecron.CronApp` keywords that ``config`` sets.

    :raises OnecronError: ``ONECRON_SECRET`` is missing, or a key starting
        with ``ONECRON_`` names no setting (a typo would otherwise leave
        the default in force, unseen)
    """
    keys = _config_keys()
    found = {}
    for key, value in config.items():
        if not (isinstance(key, str) and key.startswith(_PREFIX)):
            continue
        if key not in keys:
            # on the keyword alone: the prefix all share would make any
            # key close to some setting
            close = difflib.get_close_matches(
                key[len(_PREFIX):].lower(), keys.values(), n=1)
            hint = (f'did you mean {_PREFIX}{close[0].upper()}?' if close else
                    f'the settings are {", ".join(sorted(keys))}')
            raise OnecronError(f'app.config[{key!r}] is no onecron '
                               f'setting: {hint}')
        found[keys[key]] = value
    if found.get('secret') is None:
        raise OnecronError(
            f'{_PREFIX}SECRET is not set: put a long random string in '
            f"app.config['{_PREFIX}SECRET'] before Cron.init_app(app); it "
            f'signs the job URLs')
    return found


@dataclass(frozen=True)
class _Registered:
    """A job registered on a :class:`Cron`: what each app gets."""

    name: str
    func: Callable[[], Any]
    #: the keywords of :meth:`onecron.CronApp.cronjob`, but ``name``
    arguments: dict[str, Any]


class Cron:
    """onecron for one or more Flask apps.

    ``Cron(app)``, or ``cron = Cron()`` and ``cron.init_app(app)`` in an
    app factory: each app gets a :class:`~onecron.CronApp` of its own,
    made from its ``ONECRON_*`` config keys, that wraps its ``wsgi_app``
    and is kept in ``app.extensions['onecron']``. The jobs registered on
    the ``Cron``, before or after ``init_app``, run in every app it serves.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._jobs: dict[str, _Registered] = {}
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Serve ``app``: wrap its ``wsgi_app`` in a
        :class:`~onecron.CronApp` with this Cron's jobs, and add the
        ``flask onecron`` command.

        :raises OnecronError: ``ONECRON_SECRET`` is not set, an
            ``ONECRON_`` key names no setting, or ``app`` has onecron
            already
        """
        if _EXTENSION in app.extensions:
            raise OnecronError(f'Flask app {app.name!r} has onecron '
                               f'already: call init_app once per app')
        cronapp = CronApp(app.wsgi_app, **_settings(app.config))
        try:
            for job in self._jobs.values():
                _register(cronapp, app, job)
        except BaseException:
            cronapp.stop()
            raise
        app.extensions[_EXTENSION] = cronapp
        app.wsgi_app = cronapp  # type: ignore[method-assign]
        app.cli.add_command(_command(cronapp))
        self._apps.add(app)

    def cronapp(self, app: Flask | None = None) -> CronApp:
        """The :class:`~onecron.CronApp` of ``app`` (default: the current
        app): ``url_for``, ``run_soon``, ``start`` and the rest.

        :raises OnecronError: this Cron does not serve ``app``
        """
        if app is None:
            # the app behind Flask's proxy: the apps are kept by identity
            proxy: Any = current_app
            app = proxy._get_current_object()
        if app not in self._apps:
            raise OnecronError(f'Flask app {app.name!r} is not served by '
                               f'this Cron: call cron.init_app(app) first')
        found: CronApp = app.extensions[_EXTENSION]
        return found

    def cronjob(self, expr: str | None = None, *,
                hour: int | str | None = None,
                minute: int | str | None = None,
                day: int | str | None = None,
                month: int | str | None = None,
                weekday: int | str | None = None,
                timezone: str = 'UTC', every: timedelta | None = None,
                name: str | None = None, once: bool = False,
                jitter: bool = True,
                should_run: Callable[[str], bool] | None = None,
                then: Iterable[str] = (), overlap: str = 'skip',
                timeout: float | None = None,
                notify: str = 'failure', misfire: str | None = None,
                grace: float | timedelta | None = None
                ) -> Callable[[F], F]:
        """Register the decorated function, called with no arguments, as
        a job of every app this Cron serves.

        Takes the keywords of :meth:`onecron.CronApp.cronjob`; the job is
        named ``module.qualname`` of the function unless ``name`` is
        given. The schedule, the options and the function's signature are
        checked here, at import, even before ``init_app``.
        """
        if callable(expr):
            raise TypeError('use @cron.cronjob(...) with a schedule, '
                            'not bare @cron.cronjob')
        schedule = None
        if expr is not None or every is not None or any(
                value is not None for value in (hour, minute, day, month,
                                                weekday)):
            schedule = Schedule(expr, hour=hour, minute=minute, day=day,
                                month=month, weekday=weekday,
                                timezone=timezone, every=every)
        options: dict[str, Any] = dict(
            once=once, jitter=jitter, should_run=should_run, then=then,
            overlap=overlap, timeout=timeout, notify=notify,
            misfire=misfire, grace=grace)
        arguments = dict(expr=expr, hour=hour, minute=minute, day=day,
                         month=month, weekday=weekday, timezone=timezone,
                         every=every, **options)

        def register(func: F) -> F:
            job_name = name or f'{func.__module__}.{func.__qualname__}'
            check_job_function(func, job_name, with_request=False,
                               hint="; a Flask job reads Flask's request "
                               'instead')
            # checks the options now; None leaves one to the app's default
            Job(job_name, func, schedule, check_signature=False, **{
                option: value for option, value in options.items()
                if value is not None})
            if job_name in self._jobs:
                raise DuplicateJob(f'a job named {job_name!r} is already '
                                   f'registered')
            job = _Registered(job_name, func, arguments)
            self._jobs[job_name] = job
            for app in list(self._apps):
                _register(app.extensions[_EXTENSION], app, job)
            return func

        return register

    def __repr__(self) -> str:
        return f'<Cron {len(self._jobs)} job(s), {len(self._apps)} app(s)>'


def _register(cronapp: CronApp, app: Flask, job: _Registered) -> None:
    cronapp.cronjob(name=job.name, **job.arguments)(_runner(app, job))


def _runner(app: Flask, job: _Registered) -> Callable[[Request], Any]:
    """The function ``app``'s CronApp calls for ``job``: it runs the job
    in a Flask request, as Flask's ``wsgi_app`` runs a view."""

    def run(request: Request) -> Any:
        # a context of its own, even inside another one of the app (a
        # `flask` command pushes one): its own g, its own teardown
        app_context = app.app_context()
        app_context.push()
        error: BaseException | None = None
        try:
            context = app.request_context(_without_token(request))
            context.push()
            try:
                answered = app.preprocess_request()
                if answered is not None:
                    raise OnecronError(
                        f'job {job.name!r} did not run: a before_request '
                        f'hook answered {_status(app, answered)} before it')
                return job.func()
            except BaseException as exc:
                # the teardown hooks get it, as after a view that raised
                error = None if app.should_ignore_error(exc) else exc
                raise
            finally:
                context.pop(error)
        except BaseException as exc:
            error = None if app.should_ignore_error(exc) else exc
            raise
        finally:
            app_context.pop(error)

    # the job's own name and doc; no __wrapped__, which would make the
    # CronApp check the job's signature instead of this one's
    for attribute in ('__module__', '__name__', '__qualname__', '__doc__'):
        setattr(run, attribute, getattr(job.func, attribute, None))
    return run


def _without_token(request: Request) -> dict[str, Any]:
    """A copy of the job request's environ with its token replaced in
    every string (the path, a server's ``REQUEST_URI``): Flask's request
    and the app's hooks (one that logs ``request.url``, an error tracker
    reading the environ) never see it."""
    token = request.path_info.rsplit('/', 1)[-1]
    if not token:
        return dict(request.environ)
    return {key: value.replace(token, _TOKEN)
            if isinstance(value, str) else value
            for key, value in request.environ.items()}


def _status(app: Flask, answered: Any) -> str:
    """The status of what a ``before_request`` hook returned."""
    try:
        return str(app.make_response(answered).status)
    except Exception:  # not a response Flask can make
        return f'a {type(answered).__name__}'


def _command(cronapp: CronApp) -> click.Command:
    """``flask onecron ...``: the ``onecron`` command's subcommands for
    ``cronapp``, their arguments passed through (``--help`` too)."""

    @click.command(
        'onecron', add_help_option=False,
        context_settings={'ignore_unknown_options': True,
                          'allow_extra_args': True},
        short_help='Look at, run and export the onecron jobs.')
    @click.argument('arguments', nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def onecron(context: click.Context, arguments: Sequence[str]) -> None:
        """The onecron command for this app (see: flask onecron --help)."""
        context.exit(run_command(cronapp, arguments, prog='flask onecron'))

    return onecron
