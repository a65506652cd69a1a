"""``CronApp``: the WSGI application that registers, serves and schedules jobs.

Requests under ``prefix`` are onecron's (the job URLs); every other request
goes to the wrapped application untouched. A serving process whose
application id and base URL are configured starts its scheduler on its own
(see :mod:`onecron.running.autostart`); else the first request for an
application id (or :meth:`CronApp.start`) starts that id's scheduler.

The CronApp is a composition root: it checks its keywords into the
settings objects of :mod:`onecron.settings`, hands each to the part that
uses it (:class:`~onecron.operations.Operations`, the
:class:`~onecron.scheduling.Schedulers`, the job endpoint, the status page)
and delegates its methods to them.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from webob import Request

from onecron.job import DEFAULTS, Job, JobOptions, ShouldRun, schedule_from
from onecron.operations import ApplicationId as ApplicationId
from onecron.operations import BaseUrl as BaseUrl
from onecron.operations import Operations
from onecron.protocol.hosts import HostRule
from onecron.protocol.signing import JobSigner
from onecron.reporting import CallbackFailures, Reporter
from onecron.running import lock as _lock
from onecron.running.autostart import Deferred, in_child
from onecron.running.caller import Caller
from onecron.running.checkins import CheckIns
from onecron.running.clockwork import Clockwork
from onecron.running.mail import Mailer, SmtpSettings
from onecron.running.scheduler import Scheduler
from onecron.schedule.clock import Clock, utcnow
from onecron.scheduling import Schedulers
from onecron.settings import (
    CallSettings,
    Delegate,
    JobDefaults,
    JobUrls,
    Live,
    MisfireSettings,
    ReadOnly,
    Retention,
    SchedulerSettings,
    StatusPageSettings,
    checked_secrets,
)
from onecron.stores import open_store
from onecron.stores.base import Store
from onecron.stores.history import History
from onecron.web.access import Access, JobAccess
from onecron.web.endpoint import JobEndpoint
from onecron.web.metrics import EXTRA_PATHS
from onecron.web.router import PrefixRouter
from onecron.web.status.page import StatusPage, access_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

F = TypeVar('F', bound=Callable[..., Any])
StatusAccess = str | Callable[[Request], bool]


class CronApp:
    """A WSGI application that runs cron jobs inside your application.

    :param wrapped: the WSGI application served outside ``prefix``
        (404 there when None)
    :param secret: signs the job URLs; a list rotates keys: the first
        signs, all verify
    :param application_id: a str, or a callable taking the
        :class:`webob.Request` and returning the id (multi-tenant apps:
        each id is scheduled on its own), or None for a request that is
        no tenant's (it goes to ``wrapped`` untouched; job URLs are 404).
        The callable must return None for hosts that are no tenant's:
        every id it returns may start a scheduler, up to
        ``max_application_ids``
    :param base_url: the application URL the scheduler calls (and sends
        the job URLs to): a str, or a callable taking the application id
        and returning that id's URL
    :param allowed_hosts: without ``base_url``, the hosts (``host`` or
        ``host:port``; a leading dot allows subdomains) whose requests
        the scheduler may learn its base URL from; a request for any
        other host starts no scheduler
    :param max_application_ids: the most application ids this process
        schedules; ids beyond are served but not scheduled (and logged)
    :param prefix: where the job URLs live
    :param lock_dir: where the host locks live (default: a private
        directory of the user, see
        :func:`~onecron.running.lock.lock_directory`)
    :param enabled: False: no scheduler ever starts; job URLs still work
    :param autostart: ``'auto'``: with a fixed ``application_id`` and a
        configured ``base_url``, a process that serves the app (a worker of
        gunicorn, uWSGI or mod_wsgi, ``waitress-serve``, a dev reloader's
        serving child) starts scheduling about a second after building it,
        without a request; other processes that import the app (tests,
        shells, the ``onecron`` command) start nothing. True: any process
        does (a server onecron does not recognise). False: the first
        request or :meth:`start` starts it. See
        :mod:`onecron.running.autostart`
    :param slow_after: a run longer than this (seconds) is reported
    :param max_offset: the largest jitter (seconds); a job's own is at
        most half the shortest gap between two of its fires
    :param trigger_timeout: the scheduler's total time limit for one call
    :param connect_timeout: the scheduler's time limit to connect
    :param max_concurrent: calls the scheduler makes at once
    :param pool_size: jobs of one application id running at once (the
        rest wait in order); None: no limit but ``max_concurrent``
    :param store: where runs, switches and overrides are kept: a path of
        an SQLite file (shared by the host's processes), ``sqlite:///path``
        or a :class:`~onecron.stores.base.Store`; None keeps nothing
    :param keep_runs: runs kept per job (None: no limit)
    :param keep_days: days runs are kept (None: no limit)
    :param status_access: who sees the status page: ``'loopback'``,
        ``'any'`` (with basic auth) or ``callable(request) -> bool``
    :param status_user: the user of the page's HTTP basic auth
    :param status_password_hash: that user's password hash, made with
        :func:`onecron.access.hash_password`
    :param trusted_proxies: addresses whose ``X-Forwarded-For`` is believed
    :param job_access: who may call the job URLs: ``'any'`` (whoever has
        a valid token), ``'loopback'`` or ``callable(request) -> bool``
    :param occurrence_tokens: the scheduler calls per-occurrence URLs,
        valid near their occurrence and, with a store, once
    :param occurrence_window: seconds around its occurrence (and its
        making) an occurrence URL is accepted
    :param static_urls: False: the static job URLs run nothing (404), so
        only the scheduler's occurrence URLs do; needs
        ``occurrence_tokens``
    :param smtp: where run reports are mailed (see the jobs' ``notify``)
    :param misfire: the jobs' default ``misfire`` policy (``'once'``,
        ``'skip'`` or ``'all'``), see :mod:`onecron.running.misfire`
    :param grace: the jobs' default ``grace`` (seconds or a timedelta)
    :param lease_time: seconds after which another host takes over the
        jobs of an application id whose scheduler stopped renewing its
        lease (died, cut off); needs a store
    :param clock: gives the current aware datetime
    :param caller: makes the scheduler's HTTP calls
    :param reporter: where failures and slow runs are reported
    :param sentry_crons: with an active Sentry client, each run checks in
        with Sentry Crons (see :mod:`onecron.running.checkins`); False
        sends no check-ins
    """

    def __init__(self, wrapped: WSGIApplication | None = None, *,
                 secret: str | Sequence[str],
                 application_id: ApplicationId = 'default',
                 base_url: BaseUrl | None = None,
                 allowed_hosts: Sequence[str] = (),
                 max_application_ids: int = 10_000,
                 prefix: str = '/cronjobs',
                 lock_dir: str | None = None, enabled: bool = True,
                 autostart: bool | str = 'auto',
                 slow_after: float = 30.0, max_offset: float = 30.0,
                 trigger_timeout: float = 3600.0,
                 connect_timeout: float = 10.0, max_concurrent: int = 16,
                 pool_size: int | None = None,
                 store: str | os.PathLike[str] | Store | None = None,
                 keep_runs: int | None = 1000,
                 keep_days: float | None = 90,
                 status_access: StatusAccess = 'loopback',
                 status_user: str | None = None,
                 status_password_hash: str | None = None,
                 trusted_proxies: Sequence[str] = (),
                 job_access: StatusAccess = 'any',
                 occurrence_tokens: bool = False,
                 occurrence_window: float = 300.0,
                 static_urls: bool = True,
                 smtp: SmtpSettings | None = None,
                 misfire: str = 'once',
                 grace: float | timedelta | None = None,
                 lease_time: float = 30.0,
                 clock: Clock = utcnow, caller: Caller | None = None,
                 reporter: Reporter | None = None,
                 sentry_crons: bool = True) -> None:
        if wrapped is not None and not callable(wrapped):
            raise TypeError(f'wrapped must be a WSGI application, '
                            f'got {type(wrapped).__name__}')
        self.wrapped = wrapped
        checkins = CheckIns(sentry_crons, slow_after=slow_after)
        # each concern's settings, checked here, naming the keyword
        self._urls = JobUrls(
            prefix, occurrence_tokens=occurrence_tokens,
            occurrence_window=occurrence_window, static_urls=static_urls,
            job_access=job_access, trusted_proxies=trusted_proxies)
        self._status_settings = StatusPageSettings(
            status_access, status_user, status_password_hash,
            self._urls.trusted_proxies)
        self._calls = CallSettings(
            trigger_timeout, connect_timeout, max_concurrent, pool_size,
            slow_after, caller)
        self._retention = Retention(keep_runs, keep_days)
        scheduling = SchedulerSettings(enabled, autostart, lock_dir,
                                       lease_time)
        self._defaults = JobDefaults(max_offset,
                                     MisfireSettings(misfire, grace))
        secrets = checked_secrets(secret)
        reporter = reporter or Reporter()
        history = History(open_store(store), reporter=reporter, clock=clock)
        signer = JobSigner(secret)
        self._operations = Operations(
            {}, signer, urls=self._urls, calls=self._calls,
            status=self._status_settings, secrets=secrets,
            application_id=application_id, base_url=base_url,
            allowed_hosts=allowed_hosts,
            max_application_ids=max_application_ids, enabled=enabled,
            caller=caller or Caller(
                max_concurrent=max_concurrent,
                connect_timeout=connect_timeout, user_agent='onecron',
                clock=clock),
            history=history, clock=clock, reporter=reporter,
            failures=CallbackFailures(reporter),
            mailer=(Mailer(smtp, reporter=reporter)
                    if smtp is not None else None))
        ops = self._operations
        self._endpoint = JobEndpoint(
            ops._jobs, signer, prefix=self.prefix,
            application_id_of=ops.application_id_of,
            reporter=reporter, history=history,
            slow_after=slow_after, lock_dir=lock_dir, chain=ops.chain,
            notify=ops.notify, clock=clock,
            schedule_of=ops.schedule_in_force,
            occurrence_window=self._urls.occurrence_window,
            static_urls=self._urls.static_urls,
            legacy_static_tokens=ops.tenants.static_id is not None,
            access=JobAccess(job_access,
                             trusted_proxies=self._urls.trusted_proxies),
            failures=ops.failures, checkins=checkins)
        # the operator's page under the prefix; checks its settings now
        self._status = StatusPage(ops, access=access_of(ops))
        self._hosting = Schedulers(ops, settings=scheduling,
                                   retention=self._retention)
        self._router = PrefixRouter(
            self.prefix, self._endpoint, self._status, watched=self,
            extra=EXTRA_PATHS, reporter=reporter)
        _instances.add(self)
        if self._hosting.autostarts():
            self._hosting.autostart.arm()

    # -- settings fixed at construction ----------------------------------
    # Each was handed to a part (the endpoint, the status page, the
    # schedulers, the housekeeper, the caller's pools): setting one later
    # would leave the parts on the old value, so it raises AttributeError

    application_id = ReadOnly[ApplicationId](
        '_operations.tenants.application_id',
        'The application id, or the callable that finds it per request.')
    prefix = ReadOnly[str]('_urls.prefix', 'Where the job URLs live.')
    lock_dir = ReadOnly[str | None]('_hosting.settings.lock_dir',
                                    'Where the host locks live.')
    enabled = ReadOnly[bool]('_hosting.settings.enabled',
                             'False: no scheduler ever starts.')
    autostart = ReadOnly[bool | str]('_hosting.settings.autostart',
                                     "``'auto'``, True or False.")
    slow_after = ReadOnly[float]('_calls.slow_after', 'A run longer than '
                                 'this (seconds) is reported.')
    trigger_timeout = ReadOnly[float]('_calls.trigger_timeout', 'The '
                                      "scheduler's limit for one call.")
    lease_time = ReadOnly[float]('_hosting.settings.lease_time', 'Seconds '
                                 'before another host takes over.')
    clock = ReadOnly[Clock]('_operations.clock', 'Gives the time.')
    caller = ReadOnly[Caller]('_operations.caller', 'Makes the calls.')
    reporter = ReadOnly[Reporter]('_operations.reporter', 'Where failures '
                                  'and slow runs are reported.')
    pool_size = ReadOnly[int | None]('_calls.pool_size', 'Jobs of one '
                                     'application id running at once.')
    mailer = ReadOnly[Mailer | None]('_operations.mailer', 'Mails run '
                                     'reports (None without ``smtp``).')
    store = ReadOnly[Store | None]('_operations.store', 'Where runs, '
                                   'switches and overrides are kept.')
    history = ReadOnly[History]('_operations.history', 'The store, as the '
                                'endpoint and schedulers use it.')
    keep_runs = ReadOnly[int | None]('_retention.keep_runs', 'Runs kept.')
    keep_days = ReadOnly[float | None]('_retention.keep_days', 'Days kept.')
    status_access = ReadOnly[StatusAccess]('_status_settings.access',
                                           'Who sees the status page.')
    status_user = ReadOnly[str | None]('_status_settings.user', 'The user '
                                       "of the page's basic auth.")
    status_password_hash = ReadOnly[str | None](
        '_status_settings.password_hash', "That user's password hash.")
    trusted_proxies = ReadOnly[tuple[str, ...]](
        '_urls.trusted_proxies', 'Whose ``X-Forwarded-For`` is believed.')
    job_access = ReadOnly[StatusAccess]('_urls.job_access',
                                        'Who may call the job URLs.')
    occurrence_tokens = ReadOnly[bool]('_urls.occurrence_tokens', 'The '
                                       'scheduler calls occurrence URLs.')
    occurrence_window = ReadOnly[float]('_urls.occurrence_window', 'Seconds'
                                        ' an occurrence URL is accepted.')
    static_urls = ReadOnly[bool]('_urls.static_urls',
                                 'False: the static job URLs run nothing.')
    clockwork = ReadOnly[Clockwork]('_hosting.clockwork', 'The scheduler '
                                    'loop of this process.')
    page_access = ReadOnly[Access]('_status.access', 'Who may see the '
                                   'status page, and so /metrics.')
    jobs = ReadOnly[Mapping[str, Job]]('_operations.jobs', 'The registered '
                                       'jobs by name (read-only).')
    secrets = ReadOnly[list[str]]('_operations.secrets', 'The secrets (a '
                                  'copy): the first signs, all verify.', list)

    # -- settings that may change: checked, and live in every part -------

    base_url = Live[BaseUrl | None, BaseUrl | None](
        '_operations.tenants', 'The configured base URL: a str, a callable '
        'of the id, or None.')
    allowed_hosts = Live[tuple[HostRule, ...], Sequence[str | HostRule]](
        '_operations.tenants', 'The hosts a base URL may be learned from.')
    max_application_ids = Live[int, int]('_operations.tenants', 'The most '
                                         'application ids scheduled here.')
    max_offset = Live[float, float]('_defaults', "The jobs' default "
                                    'largest jitter (seconds).')
    misfire = Live[str, str]('_defaults', "The jobs' default ``misfire``.")
    sentry_crons = Live[bool, bool]('_endpoint.checkins', 'Whether runs '
                                    'check in with Sentry Crons.')
    grace = Live[float | timedelta | None, float | timedelta | None](
        '_defaults', "The jobs' default ``grace``.")

    @property
    def operations(self) -> Operations:
        """What the status page, the endpoint and the command use."""
        return self._operations

    # -- registration ---------------------------------------------------

    def cronjob(self, expr: str | None = None, *,
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
                grace: float | timedelta | None = DEFAULTS.grace
                ) -> Callable[[F], F]:
        """Register the decorated function as a job; it gets the request.

        The schedule and options are checked here, so a bad one fails at
        import time (:class:`~onecron.InvalidSchedule` for the schedule).
        Without any schedule the job is manual-only: it runs from the
        status page, its URL or :meth:`run_soon`. Returns the function as
        is. The options are :class:`~onecron.job.JobOptions` (see
        :class:`~onecron.job.Job` for what each means).
        """
        if callable(expr):
            raise TypeError('use @app.cronjob(...) with a schedule, '
                            'not bare @app.cronjob')
        schedule = schedule_from(expr, hour=hour, minute=minute, day=day,
                                 month=month, weekday=weekday,
                                 timezone=timezone, every=every)
        options = JobOptions(
            once=once, jitter=jitter, should_run=should_run, then=then,
            overlap=overlap, timeout=timeout, notify=notify,
            misfire=misfire, grace=grace)

        def register(func: F) -> F:
            self.add_job(self._defaults.job(
                name or f'{func.__module__}.{func.__qualname__}', func,
                schedule, options))
            return func

        return register

    def add_job(self, job: Job) -> None:
        """Register a :class:`~onecron.job.Job`; names must be unique."""
        self._hosting.add_job(job)

    # -- what Operations does (see there) --------------------------------

    check = Delegate('_operations', Operations.check)
    url_for = Delegate('_operations', Operations.url_for)
    base_url_of = Delegate('_operations', Operations.base_url_of)
    application_id_of = Delegate('_operations', Operations.application_id_of)
    pool_for = Delegate('_operations', Operations.pool_for)
    run_soon = Delegate('_operations', Operations.run_soon)
    application_ids = Delegate('_operations', Operations.application_ids)
    schedule_of = Delegate('_operations', Operations.schedule_of)
    next_run = Delegate('_operations', Operations.next_run)
    scheduler_info = Delegate('_operations', Operations.scheduler_info)
    set_enabled = Delegate('_operations', Operations.set_enabled)
    override_schedule = Delegate('_operations', Operations.override_schedule)
    hold = Delegate('_operations', Operations.hold)
    release = Delegate('_operations', Operations.release)
    _trigger_url = Delegate('_operations', Operations.trigger_url)
    _fire_url = Delegate('_operations', Operations.fire_url)
    _signer = ReadOnly[JobSigner]('_operations.signer', 'Signs the URLs.')

    # -- scheduling (see Schedulers) --------------------------------------

    def start(self, base_url: str | None = None,
              application_id: str | None = None) -> None:
        """Start scheduling now, without waiting for a first request."""
        self._hosting.start(base_url, application_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every scheduler thread and release the locks.

        Requests no longer start schedulers until :meth:`start` is called,
        and the autostart is off for good.
        """
        self._hosting.stop(timeout)
        self.caller.close(timeout)
        self._endpoint.close()
        if self.mailer is not None:
            self.mailer.close(timeout)

    @property
    def schedulers(self) -> Mapping[str, Scheduler]:
        """The schedulers of this process by application id."""
        return MappingProxyType(self._operations.schedulers)

    # internal: what tests and the integrations' request hooks look at
    _schedulers = ReadOnly[dict[str, Scheduler]]('_operations.schedulers',
                                                 'By application id.')
    _autostart = ReadOnly[Deferred]('_hosting.autostart', 'The autostart.')
    _watching = ReadOnly[bool]('_hosting.watching', 'Requests start '
                               'schedulers.')
    _static_id = ReadOnly[str | None]('_operations.tenants.static_id',
                                      'The fixed application id.')

    def _notice(self, environ: WSGIEnvironment) -> None:
        self._hosting.notice(Request(environ))

    # -- WSGI -----------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        # the hot path, taken by every request of the wrapped app: a dict
        # look-up when the scheduler runs, and a string comparison
        hosting = self._hosting
        if hosting.watching and hosting.static_id not in hosting.schedulers:
            hosting.notice(Request(environ))
        path = environ.get('PATH_INFO', '')
        if path.startswith(self.prefix) and self._endpoint.handles(path):
            return self._serve(path, environ, start_response)
        if self.wrapped is None:
            return self._endpoint.not_found(environ, start_response)
        return self.wrapped(environ, start_response)

    def _serve(self, path: str, environ: WSGIEnvironment,
               start_response: StartResponse) -> Iterable[bytes]:
        """A request under the prefix (see :class:`PrefixRouter`)."""
        return self._router(path, environ, start_response)

    def __repr__(self) -> str:
        return (f'<CronApp {self.application_id!r} prefix={self.prefix!r} '
                f'{len(self.jobs)} job(s)>')


_instances: weakref.WeakSet[CronApp] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for app in list(_instances):
        app._hosting.after_fork_in_child()


def _stop_all_at_exit() -> None:
    for app in list(_instances):
        if app._hosting.pid == os.getpid():
            app.stop(timeout=1.0)


in_child(_after_fork_in_child)
# uWSGI may fork its workers without Python's fork hooks: run the lock's
# there too, so a worker never takes its master's locks for its own
in_child(_lock._after_fork_in_child, register=False)
in_child(_lock._reset_job_locks_in_child, register=False)
atexit.register(_stop_all_at_exit)
