"""``CronApp``: the WSGI application that registers, serves and schedules jobs.

Requests under ``prefix`` are onecron's (the job URLs); every other request
goes to the wrapped application untouched. A serving process whose
application id and base URL are configured starts its
:class:`~onecron.running.scheduler.Scheduler` on its own (see
:mod:`onecron.running.autostart`); else the first request for an application id
(or :meth:`CronApp.start`) starts that id's scheduler.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from webob import Request

from onecron.errors import DuplicateJob, OnecronError, UnknownJob
from onecron.job import Job, ShouldRun, printable
from onecron.operations import Controls
from onecron.protocol.hosts import (
    check_base_url,
    host_allowed,
    parse_allowed_hosts,
)
from onecron.protocol.signing import (
    GOOD_SECRET,
    JobSigner,
    secrets_list,
    weak_secret,
)
from onecron.reporting import CallbackFailures, Reporter
from onecron.running import lock as _lock
from onecron.running.autostart import Deferred, in_child
from onecron.running.caller import Caller
from onecron.running.clockwork import Clockwork
from onecron.running.housekeeping import Housekeeper
from onecron.running.lock import HostLock, lock_directory, lock_path
from onecron.running.mail import Mailer, SmtpSettings
from onecron.running.misfire import check_policy
from onecron.running.pool import Pool
from onecron.running.scheduler import Scheduler, holder_name, node_name
from onecron.schedule.clock import Clock, utcnow
from onecron.schedule.rules import Schedule
from onecron.stores import open_store
from onecron.stores.base import Outcome, Store, Trigger
from onecron.stores.history import History
from onecron.web.access import JobAccess
from onecron.web.endpoint import OCCURRENCE_PATH, TRIGGER_PATH, JobEndpoint
from onecron.web.status.page import StatusPage

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

F = TypeVar('F', bound=Callable[..., Any])
ApplicationId = str | Callable[[Request], 'str | None']
#: ``base_url``: one URL, or the URL of each application id
BaseUrl = str | Callable[[str], str]
StatusAccess = str | Callable[[Request], bool]


class CronApp(Controls):
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
                 reporter: Reporter | None = None) -> None:
        if wrapped is not None and not callable(wrapped):
            raise TypeError(f'wrapped must be a WSGI application, '
                            f'got {type(wrapped).__name__}')
        if not (callable(application_id) or (
                isinstance(application_id, str) and application_id
                and printable(application_id))):
            raise ValueError('application_id must be a non-empty str of '
                             'printable characters or a callable, '
                             f'got {application_id!r:.80}')
        if base_url is not None and not callable(base_url):
            base_url = check_base_url(base_url)
        self.allowed_hosts = parse_allowed_hosts(allowed_hosts)
        if (isinstance(max_application_ids, bool)
                or not isinstance(max_application_ids, int)
                or max_application_ids < 1):
            raise ValueError(f'max_application_ids must be a positive int, '
                             f'got {max_application_ids!r}')
        self.max_application_ids = max_application_ids
        check_policy(misfire, grace, 'CronApp')
        for label, number in (('slow_after', slow_after),
                              ('lease_time', lease_time),
                              ('trigger_timeout', trigger_timeout),
                              ('connect_timeout', connect_timeout)):
            if not number > 0:
                raise ValueError(f'{label} must be positive, got {number!r}')
        if not max_offset >= 0:
            raise ValueError(f'max_offset must be 0 or more, '
                             f'got {max_offset!r}')
        self.wrapped = wrapped
        self._application_id = application_id
        # None when the id is computed per request: always look it up
        self._static_id = (application_id if isinstance(application_id, str)
                           else None)
        #: the configured base URL: a str, a callable of the id, or None
        self.base_url: BaseUrl | None = base_url
        # the base URLs given to start() or learned from an allowed host
        self._bases: dict[str, str] = {}
        # the ids warned about: no base URL, or over the cap (bounded)
        self._warned: set[str] = set()
        self._warned_full = False  # said once: more ids than the cap
        self._prefix = _normalise_prefix(prefix)
        self._lock_dir = lock_dir
        self._enabled = enabled
        self._slow_after = slow_after
        self.max_offset = max_offset
        self._trigger_timeout = trigger_timeout
        self.misfire = misfire
        self.grace = grace
        self._lease_time = lease_time
        self._clock = clock
        if caller is not None and (max_concurrent != 16
                                   or connect_timeout != 10.0):
            # they configure the Caller made here; a given one has its own
            raise ValueError(
                'CronApp(caller=...) with max_concurrent or connect_timeout:'
                ' those configure the Caller onecron makes, and would be '
                'ignored; pass them to your Caller(max_concurrent=..., '
                'connect_timeout=...) instead')
        # the one time source: armed calls start on the app's clock
        self._caller = caller or Caller(
            max_concurrent=max_concurrent, connect_timeout=connect_timeout,
            user_agent='onecron', clock=clock)
        self._reporter = reporter or Reporter()
        #: the application's callbacks that raise, reported once
        self._failures = CallbackFailures(self._reporter)
        Pool(self.caller, pool_size)  # checks pool_size now, not later
        self._pool_size = pool_size
        self._pools: dict[str, Pool] = {}
        for label, keep in (('keep_runs', keep_runs),
                            ('keep_days', keep_days)):
            if keep is not None and not keep > 0:
                raise ValueError(f'{label} must be positive or None, '
                                 f'got {keep!r}')
        self._mailer = (Mailer(smtp, reporter=self.reporter)
                        if smtp is not None else None)
        self._store = open_store(store)
        self._history = History(self.store, reporter=self.reporter,
                                clock=clock)
        self._keep_runs = keep_runs
        self._keep_days = keep_days
        self._status_access = status_access
        self._status_user = status_user
        self._status_password_hash = status_password_hash
        self._trusted_proxies = tuple(trusted_proxies)
        for label, flag in (('occurrence_tokens', occurrence_tokens),
                            ('static_urls', static_urls)):
            if not isinstance(flag, bool):
                raise TypeError(f'{label} must be True or False, '
                                f'got {flag!r}')
        if (isinstance(occurrence_window, bool)
                or not isinstance(occurrence_window, (int, float))
                or not 0 < occurrence_window < float('inf')):
            raise ValueError(f'occurrence_window must be a positive number '
                             f'of seconds, got {occurrence_window!r}')
        if not static_urls and not occurrence_tokens:
            raise ValueError('static_urls=False needs occurrence_tokens=True'
                             ': without either, no URL could run a job')
        if occurrence_tokens and self.store is None:
            log.warning('occurrence_tokens without a store: an occurrence '
                        'URL is refused outside its window, but can run '
                        'more than once within it')
        self._occurrence_tokens = occurrence_tokens
        self._occurrence_window = float(occurrence_window)
        self._static_urls = static_urls
        self._job_access = job_access
        #: the secrets: the first signs, all verify
        self._secrets = secrets_list(secret)
        for index, entry in enumerate(self.secrets):
            weakness = weak_secret(entry)
            if weakness is not None:
                # the secret itself is never shown, nor any part of it
                log.warning('CronApp(secret=...): secret %d of %d is weak, '
                            '%s: whoever guesses it runs every job; %s',
                            index + 1, len(self.secrets), weakness,
                            GOOD_SECRET)
        self._signer = JobSigner(secret)
        self._jobs: dict[str, Job] = {}
        self._jobs_view: Mapping[str, Job] = MappingProxyType(self._jobs)
        self._schedulers: dict[str, Scheduler] = {}
        #: the one thread that drives every application id's scheduler
        self._clockwork = Clockwork(clock)
        #: this process's name in the store's leases
        self._holder = holder_name(socket.gethostname())
        self._keeper: Housekeeper | None = None
        self._mutex = threading.Lock()
        self._pid = os.getpid()
        # whether requests start schedulers: off when disabled or stopped
        self._watching = enabled
        self._endpoint = JobEndpoint(
            self._jobs, self._signer, prefix=self.prefix,
            application_id_of=self.application_id_of,
            reporter=self.reporter, history=self.history,
            slow_after=slow_after, lock_dir=lock_dir, chain=self._chain,
            notify=self._notify, clock=clock,
            schedule_of=self._schedule_in_force,
            occurrence_window=self.occurrence_window,
            static_urls=static_urls,
            legacy_static_tokens=self._static_id is not None,
            access=(job_guard := JobAccess(
                job_access, trusted_proxies=self.trusted_proxies)),
            failures=self._failures)
        if job_guard.refuses_direct_local_calls():
            log.warning("job_access='loopback' with a loopback address in "
                        'trusted_proxies: calls from this host must come '
                        'through that proxy, so point base_url at it; the '
                        "scheduler's calls straight to the application "
                        'server name no client and are refused (403)')
        # the operator's page under the prefix; checks its settings now
        self._status = StatusPage(self)
        if not (isinstance(autostart, bool) or autostart == 'auto'):
            raise ValueError(f"autostart must be 'auto', True or False, "
                             f'got {autostart!r:.80}')
        self._autostart_mode = autostart
        # the one time source: the autostart delay is on the app's clock
        self._autostart = Deferred(autostart, self._autostarted, clock=clock)
        if autostart is True and enabled and not self._autostarts():
            raise ValueError('autostart=True needs a fixed (str) '
                             'application_id and a configured base_url')
        _instances.add(self)
        if self._autostarts():
            self._autostart.arm()

    # -- settings fixed at construction ----------------------------------
    #
    # Each is copied into a part (the endpoint, the status page, the
    # schedulers, the housekeeper, the caller's pools) or checked together
    # with another when the app is made: setting one later would leave the
    # parts on the old value, so it raises AttributeError (see _FIXED).
    # base_url, allowed_hosts, wrapped and the jobs' defaults (max_offset,
    # misfire, grace), read where they are used, may be set.

    @property
    def application_id(self) -> ApplicationId:
        """The application id, or the callable that finds it per request."""
        return self._application_id

    @property
    def prefix(self) -> str:
        """Where the job URLs and the status page live."""
        return self._prefix

    @property
    def lock_dir(self) -> str | None:
        """Where the host locks live (None: the default)."""
        return self._lock_dir

    @property
    def enabled(self) -> bool:
        """False: no scheduler ever starts."""
        return self._enabled

    @property
    def autostart(self) -> bool | str:
        """``'auto'``, True or False: see the class."""
        return self._autostart_mode

    @property
    def slow_after(self) -> float:
        """A run longer than this (seconds) is reported."""
        return self._slow_after

    @property
    def trigger_timeout(self) -> float:
        """The scheduler's time limit for one call."""
        return self._trigger_timeout

    @property
    def lease_time(self) -> float:
        """Seconds before another host takes over."""
        return self._lease_time

    @property
    def clock(self) -> Clock:
        """Gives the current aware datetime."""
        return self._clock

    @property
    def caller(self) -> Caller:
        """Makes the scheduler's HTTP calls."""
        return self._caller

    @property
    def reporter(self) -> Reporter:
        """Where failures and slow runs are reported."""
        return self._reporter

    @property
    def pool_size(self) -> int | None:
        """Jobs of one application id running at once."""
        return self._pool_size

    @property
    def mailer(self) -> Mailer | None:
        """Mails run reports (None without ``smtp``)."""
        return self._mailer

    @property
    def store(self) -> Store | None:
        """Where runs, switches and overrides are kept."""
        return self._store

    @property
    def history(self) -> History:
        """The store as the endpoint and schedulers use it."""
        return self._history

    @property
    def keep_runs(self) -> int | None:
        """Runs kept per job."""
        return self._keep_runs

    @property
    def keep_days(self) -> float | None:
        """Days runs are kept."""
        return self._keep_days

    @property
    def status_access(self) -> StatusAccess:
        """Who sees the status page."""
        return self._status_access

    @property
    def status_user(self) -> str | None:
        """The user of the page's basic auth."""
        return self._status_user

    @property
    def status_password_hash(self) -> str | None:
        """That user's password hash."""
        return self._status_password_hash

    @property
    def trusted_proxies(self) -> tuple[str, ...]:
        """Addresses whose ``X-Forwarded-For`` is believed."""
        return self._trusted_proxies

    @property
    def job_access(self) -> StatusAccess:
        """Who may call the job URLs."""
        return self._job_access

    @property
    def occurrence_tokens(self) -> bool:
        """Whether the scheduler calls per-occurrence URLs."""
        return self._occurrence_tokens

    @property
    def occurrence_window(self) -> float:
        """Seconds around its occurrence an occurrence URL is accepted."""
        return self._occurrence_window

    @property
    def static_urls(self) -> bool:
        """False: the static job URLs run nothing."""
        return self._static_urls

    @property
    def secrets(self) -> list[str]:
        """The secrets (a copy): the first signs, all verify."""
        return list(self._secrets)

    @property
    def jobs(self) -> Mapping[str, Job]:
        """The registered jobs by name (read-only)."""
        return self._jobs_view

    # -- registration ---------------------------------------------------

    def cronjob(self, expr: str | None = None, *,
                hour: int | str | None = None,
                minute: int | str | None = None,
                day: int | str | None = None,
                month: int | str | None = None,
                weekday: int | str | None = None,
                timezone: str = 'UTC', every: timedelta | None = None,
                name: str | None = None, once: bool = False,
                jitter: bool = True, should_run: ShouldRun | None = None,
                then: Iterable[str] = (), overlap: str = 'skip',
                timeout: float | None = None,
                notify: str = 'failure', misfire: str | None = None,
                grace: float | timedelta | None = None
                ) -> Callable[[F], F]:
        """Register the decorated function as a job; it gets the request.

        The schedule and options are checked here, so a bad one fails at
        import time (:class:`~onecron.InvalidSchedule` for the schedule).
        Without any schedule the job is manual-only: it runs from the
        status page, its URL or :meth:`run_soon`. Returns the function as
        is. See :class:`~onecron.job.Job` for the options.
        """
        if callable(expr):
            raise TypeError('use @app.cronjob(...) with a schedule, '
                            'not bare @app.cronjob')
        schedule = None
        if expr is not None or every is not None or any(
                value is not None for value in (hour, minute, day, month,
                                                weekday)):
            schedule = Schedule(expr, hour=hour, minute=minute, day=day,
                                month=month, weekday=weekday,
                                timezone=timezone, every=every)

        def register(func: F) -> F:
            job_name = name or f'{func.__module__}.{func.__qualname__}'
            self.add_job(Job(
                job_name, func, schedule, once=once, jitter=jitter,
                max_offset=self.max_offset, should_run=should_run,
                then=then, overlap=overlap, timeout=timeout, notify=notify,
                misfire=misfire or self.misfire,
                grace=grace if grace is not None else self.grace))
            return func

        return register

    def add_job(self, job: Job) -> None:
        """Register a :class:`~onecron.job.Job`; names must be unique."""
        with self._mutex:
            if job.name in self._jobs:
                raise DuplicateJob(f'a job named {job.name!r} is already '
                                   f'registered')
            self._jobs[job.name] = job
            schedulers = list(self._schedulers.values())
        for scheduler in schedulers:
            scheduler.add_job(job)

    def check(self) -> None:
        """Check what can only be checked once every job is registered.

        Called by :meth:`start` and before the first request's scheduler:
        a ``then=`` naming an unknown job raises :class:`UnknownJob`.
        """
        for job in list(self._jobs.values()):
            for other in job.then:
                if other not in self._jobs:
                    raise UnknownJob(f'job {job.name!r} chains to '
                                     f'{other!r}, which is not registered')

    # -- URLs -----------------------------------------------------------

    def url_for(self, name: str, base_url: str | None = None, *,
                application_id: str | None = None,
                occurrence: str | None = None) -> str:
        """The absolute signed URL of the job called ``name``.

        The URL runs the job for ``application_id`` alone (default: the
        app's fixed id; needed when ``application_id`` is a callable), on
        ``base_url`` or the base URL of that id (see :meth:`base_url_of`).

        ``occurrence='nearest'`` makes the URL stand for the job's nominal
        occurrence nearest to the time it is called: the run claims that
        occurrence, so a second call for it (another replica of an
        external scheduler, a retried ``curl``) is refused with 409
        instead of running the job again. It needs a store.

        Raises :class:`~onecron.OnecronError` with ``static_urls=False``:
        there are no static URLs then.
        """
        if name not in self._jobs:
            raise UnknownJob(name)
        if not self.static_urls:
            raise OnecronError(
                'static URLs are off (CronApp(static_urls=False)): only the '
                "scheduler's occurrence URLs run jobs")
        if application_id is None:
            application_id = self._static_id
            if application_id is None:
                raise OnecronError('application_id is a callable: pass '
                                   'url_for(..., application_id=...)')
        base = (check_base_url(base_url) if base_url
                else self.base_url_of(application_id))
        if not base:
            raise OnecronError(
                'no base_url: pass one, or configure CronApp(base_url=...)')
        url = self._job_url(name, base, application_id)
        if occurrence is None:
            return url
        if occurrence != 'nearest':
            raise ValueError(f"occurrence must be None or 'nearest', "
                             f'got {occurrence!r}')
        if self._jobs[name].manual:
            raise OnecronError(f'job {name!r} has no schedule, so no '
                               'occurrences: use its plain URL')
        return f'{url}?occurrence=nearest'

    def base_url_of(self, application_id: str) -> str | None:
        """Where the scheduler of ``application_id`` sends its calls: the
        one given to :meth:`start`, else the configured ``base_url``
        (called with the id when it is a callable), else the one learned
        from a request for one of ``allowed_hosts``; None when there is
        none.

        Never a request's ``Host`` alone: whoever chose it would receive
        the job URLs. A failing or bad ``base_url`` callable is reported
        and gives None.
        """
        given = self._bases.get(application_id)
        configured = self.base_url
        if given is not None or configured is None:
            return given
        if not callable(configured):
            return configured
        try:
            return check_base_url(configured(application_id),
                                  'the base_url callable\'s result')
        except Exception as exc:  # the application's own code
            self._warn_once(application_id, f'base_url({application_id!r}) '
                            f'failed: {exc}', exc)
            return None

    def _use_base_url(self, application_id: str, base_url: str) -> None:
        """Use ``base_url`` for ``application_id`` where no ``base_url``
        is configured: the scheduler, chains and ``run_soon`` call it.
        :meth:`start` does this with its ``base_url``."""
        self._bases[application_id] = check_base_url(base_url)

    def _job_url(self, name: str, base_url: str, application_id: str) -> str:
        token = self._signer.token_for(name, application_id)
        return f'{base_url.rstrip("/")}{self.prefix}/{token}'

    def _trigger_url(self, name: str, base_url: str, application_id: str,
                     trigger: Trigger, key: str, due: datetime) -> str:
        """The URL that runs ``name`` once outside its schedule (run now,
        ``run_soon``, chains), for a call due at ``due`` that sends ``key``
        as its run key: the static URL, or with ``static_urls=False`` one
        made for this call alone."""
        if self.static_urls:
            return self._job_url(name, base_url, application_id)
        token = self._signer.trigger_token(name, application_id,
                                           trigger.value, key, due=due)
        return f'{base_url.rstrip("/")}{self.prefix}/{TRIGGER_PATH}/{token}'

    def _fire_url(self, name: str, base_url: str, application_id: str,
                  occurrence: datetime) -> str:
        """The URL the scheduler calls to run ``occurrence`` (aware, the
        nominal time) of the job ``name`` for ``application_id``.

        With ``occurrence_tokens`` a URL for this one occurrence, made
        now: build it when the call is made, so the window counts from
        then; else the job's static URL.
        """
        if not self.occurrence_tokens:
            return self._job_url(name, base_url, application_id)
        token = self._signer.occurrence_token(
            name, application_id, occurrence, issued=self.clock())
        return (f'{base_url.rstrip("/")}{self.prefix}/'
                f'{OCCURRENCE_PATH}/{token}')

    def _notify(self, job: Job, application_id: str, outcome: Outcome, *,
                output: str = '', error: str | None = None,
                duration: float | None = None) -> None:
        if self.mailer is not None:
            self.mailer.notify(job, application_id, outcome, output=output,
                               error=error, duration=duration)

    def application_id_of(self, request: Request) -> str | None:
        """The application id a request belongs to; None: no tenant's.

        A callable that returns anything but a non-empty str of
        printable characters or None raises
        :class:`~onecron.OnecronError`, and what the callable raises
        propagates: callers refuse such a request, never run it as a
        made-up tenant.
        """
        if isinstance(self.application_id, str):
            return self.application_id
        app_id = self.application_id(request)
        if app_id is None or (isinstance(app_id, str) and app_id
                              and printable(app_id)):
            return app_id
        raise OnecronError(f'application_id callable returned '
                           f'{app_id!r:.80}, not a non-empty str of '
                           f'printable characters or None')

    def _warn_once(self, application_id: str, message: str,
                   exc: BaseException | None = None) -> None:
        """A WARNING about an id (an ERROR with the exception that caused
        it), once per id."""
        if application_id in self._warned:
            return
        if len(self._warned) >= self.max_application_ids:
            # bounded, so that made-up ids cannot flood the log either
            if not self._warned_full:
                self._warned_full = True
                log.warning('more than %d application ids warned about: '
                            'no more such warnings',
                            self.max_application_ids)
            return
        self._warned.add(application_id)
        log.log(logging.WARNING if exc is None else logging.ERROR,
                'application %r: %s', application_id, message, exc_info=exc)

    # -- scheduling -----------------------------------------------------

    def start(self, base_url: str | None = None,
              application_id: str | None = None) -> None:
        """Start scheduling now, without waiting for a first request."""
        if not self.enabled:
            log.info('CronApp is disabled: start() starts no scheduler')
            return
        if application_id is None:
            if not isinstance(self.application_id, str):
                raise OnecronError('application_id is a callable: pass '
                                   'start(application_id=...)')
            application_id = self.application_id
        if base_url:
            self._use_base_url(application_id, base_url)
        base = self.base_url_of(application_id)
        if not base:
            raise OnecronError(
                'no base_url: pass start(base_url=...) or configure '
                'CronApp(base_url=...)')
        self.check()
        self._watching = True
        self._scheduler_for(application_id, base)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every scheduler thread and release the locks.

        Requests no longer start schedulers until :meth:`start` is called,
        and the autostart is off for good.
        """
        self._autostart.disarm()
        with self._mutex:
            self._watching = False
            schedulers = list(self._schedulers.values())
            self._schedulers.clear()
            # the caller drops what it had queued: so do the pools
            self._pools.clear()
        if self._keeper is not None:
            self._keeper.stop()
        for scheduler in schedulers:
            scheduler.stop(timeout)
        self._clockwork.stop(timeout)
        self.caller.close(timeout)
        self._endpoint.close()
        if self.mailer is not None:
            self.mailer.close(timeout)

    @property
    def schedulers(self) -> Mapping[str, Scheduler]:
        """The schedulers of this process by application id."""
        return MappingProxyType(self._schedulers)

    def _scheduler_for(self, application_id: str,
                       base_url: str) -> Scheduler:
        with self._mutex:
            scheduler = self._schedulers.get(application_id)
            if scheduler is not None and scheduler.alive:
                return scheduler
            scheduler = Scheduler(
                application_id, base_url, clockwork=self._clockwork,
                jobs=self._jobs,
                url_for=self._fire_url,
                lock=HostLock(lock_path(self.lock_dir, application_id)),
                pool=self.pool_for(application_id), reporter=self.reporter,
                history=self.history, clock=self.clock,
                trigger_timeout=self.trigger_timeout,
                notify=self._notify, lease_time=self.lease_time,
                holder=self._holder, failures=self._failures)
            if self.store is not None:
                self._housekeeper().add(scheduler)
            self._schedulers[application_id] = scheduler
            scheduler.start()
            return scheduler

    def _housekeeper(self) -> Housekeeper:
        """The store's rounds for all this app's schedulers (the caller
        holds ``_mutex``)."""
        if self._keeper is None or self._keeper.stopped:
            self._keeper = Housekeeper(
                self._clockwork, self.history, clock=self.clock,
                reporter=self.reporter, lease_time=self.lease_time,
                holder=self._holder,
                node=node_name(socket.gethostname(),
                               lock_directory(self.lock_dir)),
                keep_runs=self.keep_runs, keep_days=self.keep_days)
        return self._keeper

    def _notice(self, environ: WSGIEnvironment) -> None:
        """Start the scheduler of the request's application id if needed:
        when its base URL is configured, or its host is allowed."""
        request = Request(environ)
        try:
            found = self.application_id_of(request)
        except Exception as exc:  # the application's own code
            self._failures.report('application_id', exc, 'the request '
                                  'starts no scheduler and is no '
                                  "tenant's", application_id='?')
            return
        if found is None:
            return  # no tenant's: nothing to schedule
        application_id = found
        if application_id in self._schedulers:
            return  # the fork hook empties it: any entry is this process's
        base_url = self.base_url_of(application_id)
        if base_url is None:
            if not self._learns_from(request):
                self._warn_once(application_id, _NO_BASE_URL)
                return
            base_url = request.application_url
            self._bases[application_id] = base_url
        if len(self._schedulers) >= self.max_application_ids:
            self._warn_once(application_id, f'not scheduled: this process '
                            f'schedules {self.max_application_ids} '
                            f'application ids already (max_application_ids)'
                            )
            return
        self._start_scheduler(application_id, base_url)

    def _start_scheduler(self, application_id: str, base_url: str) -> None:
        """Start ``application_id``'s scheduler without a caller to raise
        to (a request, the deferred start): a ``then=`` naming an unknown
        job is reported instead."""
        try:
            self.check()
        except UnknownJob as exc:
            self.reporter.failure('*', application_id, str(exc), exc)
        self._scheduler_for(application_id, base_url)

    def _autostarts(self) -> bool:
        """Whether this app starts scheduling without a request: enabled,
        its id fixed and its base URL configured."""
        return (self.enabled and self.autostart is not False
                and self._static_id is not None
                and self.base_url_of(self._static_id) is not None)

    def _autostarted(self, server: str) -> None:
        """The deferred start (see :mod:`onecron.running.autostart`): what
        :meth:`start` does, unless stopped or started already."""
        application_id = self._static_id
        if not self._watching or application_id is None:
            return
        if application_id in self._schedulers:
            return  # a request was first
        base_url = self.base_url_of(application_id)
        if base_url is None:
            return
        self._start_scheduler(application_id, base_url)
        log.info('scheduler autostarted in %s worker pid %d', server,
                 os.getpid())

    def _learns_from(self, request: Request) -> bool:
        """Whether the scheduler may take ``request``'s URL as its base."""
        return bool(self.allowed_hosts) and host_allowed(
            request.host, request.scheme, self.allowed_hosts)

    def _after_fork_in_child(self) -> None:
        # threads do not survive a fork: forget the parent's schedulers
        # (and their inherited lock descriptors) so requests start fresh
        self._mutex = threading.Lock()
        self._pid = os.getpid()
        for scheduler in self._schedulers.values():
            scheduler.forget()
        self._schedulers.clear()
        self._clockwork = Clockwork(self.clock)
        self._holder = holder_name(socket.gethostname())
        self._keeper = None
        self.caller.after_fork()
        if self._autostarts():
            self._autostart.arm()  # the parent's was not forked with it

    # -- WSGI -----------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        # the hot path, taken by every request of the wrapped app: a dict
        # look-up when the scheduler runs, and a string comparison
        if self._watching and self._static_id not in self._schedulers:
            self._notice(environ)
        path = environ.get('PATH_INFO', '')
        if path.startswith(self.prefix) and self._endpoint.handles(path):
            return self._serve(path, environ, start_response)
        if self.wrapped is None:
            return self._endpoint.not_found(environ, start_response)
        return self.wrapped(environ, start_response)

    def _serve(self, path: str, environ: WSGIEnvironment,
               start_response: StartResponse) -> Iterable[bytes]:
        """A request under the prefix: the status page or a job URL.

        Whatever the request holds, it gets an answer, never an
        exception: a path that is not UTF-8 names nothing here (404).
        """
        try:
            path.encode('latin-1').decode('utf-8')
        except UnicodeError:
            return self._endpoint.not_found(environ, start_response)
        try:
            if self._status.handles(path[len(self.prefix):]):
                return self._status(environ, start_response)
            return self._endpoint(environ, start_response)
        except Exception as exc:
            # never the path in the log: it may hold a token
            self.reporter.failure('*', '*', 'answering a request under '
                                  'the prefix failed', exc)
            return _internal_error(start_response, sys.exc_info())

    def __repr__(self) -> str:
        return (f'<CronApp {self.application_id!r} prefix={self.prefix!r} '
                f'{len(self._jobs)} job(s)>')


#: the CronApp settings its parts copied when it was made: read-only
_FIXED = ('application_id', 'prefix', 'lock_dir', 'enabled', 'autostart',
          'slow_after', 'trigger_timeout', 'lease_time', 'clock', 'caller',
          'reporter', 'pool_size', 'mailer', 'store', 'history', 'keep_runs',
          'keep_days', 'status_access', 'status_user',
          'status_password_hash', 'trusted_proxies', 'job_access',
          'occurrence_tokens', 'occurrence_window', 'static_urls', 'secrets',
          'jobs')


def _refuse(name: str) -> Callable[[CronApp, object], None]:
    """A setter that says why ``name`` cannot be set (a property without
    one would say only that it has none)."""
    def refuse(app: CronApp, value: object) -> None:
        raise AttributeError(
            f'CronApp.{name} cannot be changed once the CronApp is made: its '
            f'parts (job endpoint, status page, schedulers) took it then, '
            f'and would go on with the old value. Pass CronApp({name}=...) '
            f'instead')
    return refuse


for _name in _FIXED:
    # at run time only: for type checkers these stay read-only properties
    setattr(CronApp, _name, getattr(CronApp, _name).setter(_refuse(_name)))


#: why a request started no scheduler
_NO_BASE_URL = (
    'no scheduler started: configure CronApp(base_url=...) (or list the '
    "request's host in allowed_hosts): the scheduler sends the job URLs "
    'to its base URL, and never takes one from a Host header alone')


def _internal_error(start_response: StartResponse,
                    exc_info: OptExcInfo) -> Iterable[bytes]:
    start_response('500 Internal Server Error', [
        ('Content-Type', 'text/plain; charset=utf-8'),
        ('Cache-Control', 'no-store')], exc_info)
    return [b'Internal Server Error\n']


def _normalise_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix.startswith('/'):
        raise ValueError(f'prefix must start with "/", got {prefix!r}')
    prefix = prefix.rstrip('/')
    if not prefix:
        raise ValueError('prefix must not be "/": it would take over every '
                         'request of the wrapped application')
    return prefix


_instances: weakref.WeakSet[CronApp] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for app in list(_instances):
        app._after_fork_in_child()


def _stop_all_at_exit() -> None:
    for app in list(_instances):
        if app._pid == os.getpid():
            app.stop(timeout=1.0)


in_child(_after_fork_in_child)
# uWSGI may fork its workers without Python's fork hooks: run the lock's
# there too, so a worker never takes its master's locks for its own
in_child(_lock._after_fork_in_child, register=False)
in_child(_lock._reset_job_locks_in_child, register=False)
atexit.register(_stop_all_at_exit)
