"""What the status page, the job endpoint and the ``onecron`` command do
with the jobs: run now, chains, pools, job URLs, and the operator's
switches (enable, override, hold), shared by every process through the
store.

:class:`Operations` is a component the :class:`~onecron.CronApp` makes and
delegates to; the parts above it depend on it, never on the CronApp. Its
settings are frozen objects it shows read-only; what may change after the
app is made (``base_url``, ``allowed_hosts``) has one owner,
:class:`~onecron.operations.tenants.Tenants`, so every part sees the same
value.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from webob import Request

from onecron.errors import OnecronError, UnknownJob
from onecron.job import BAD_OVERRIDE, Job
from onecron.operations.tenants import ApplicationId as ApplicationId
from onecron.operations.tenants import BaseUrl as BaseUrl
from onecron.operations.tenants import Tenants
from onecron.protocol.headers import RUN_HEADER, TRIGGER_HEADER
from onecron.protocol.hosts import check_base_url
from onecron.protocol.signing import JobSigner
from onecron.reporting import CallbackFailures, Reporter
from onecron.running.caller import Caller, CallRequest
from onecron.running.mail import Mailer
from onecron.running.pool import Pool
from onecron.running.scheduler import report_result
from onecron.schedule.clock import Clock
from onecron.schedule.rules import Schedule
from onecron.settings import CallSettings, JobUrls, StatusPageSettings
from onecron.stores.base import (
    JobSettings,
    Outcome,
    SchedulerInfo,
    Store,
    Trigger,
)
from onecron.stores.history import History

if TYPE_CHECKING:
    from onecron.running.scheduler import Scheduler

log = logging.getLogger(__name__)

#: the path segment under the prefix before an occurrence token
OCCURRENCE_PATH = 'o'
#: the path segment under the prefix before a trigger token
TRIGGER_PATH = 't'

__all__ = ['HasOperations', 'Operations', 'operations_of']


class Operations:
    """The jobs of one :class:`~onecron.CronApp` and what can be done
    with them outside the schedule.

    ``jobs`` is the registry the CronApp registers into (shared);
    ``urls``, ``calls`` and ``status`` are its settings objects
    (:mod:`onecron.settings`), ``application_id``, ``base_url``,
    ``allowed_hosts`` and ``max_application_ids`` go to
    :class:`~onecron.operations.tenants.Tenants`; the rest are the
    CronApp's keywords and parts of the same names.
    """

    def __init__(self, jobs: dict[str, Job], signer: JobSigner, *,
                 urls: JobUrls, calls: CallSettings,
                 status: StatusPageSettings, secrets: Sequence[str],
                 application_id: ApplicationId, base_url: BaseUrl | None,
                 allowed_hosts: Sequence[str], max_application_ids: int,
                 enabled: bool, caller: Caller, history: History,
                 clock: Clock, reporter: Reporter,
                 failures: CallbackFailures,
                 mailer: Mailer | None) -> None:
        self._jobs = jobs
        #: the registered jobs by name (read-only)
        self.jobs: Mapping[str, Job] = MappingProxyType(jobs)
        self._signer = signer
        self._urls = urls
        self._calls = calls
        self._status = status
        self._secrets = tuple(secrets)
        #: the application ids and their base URLs
        self.tenants = Tenants(application_id, base_url=base_url,
                               allowed_hosts=allowed_hosts,
                               max_application_ids=max_application_ids)
        self.enabled = enabled
        self.caller = caller
        self.history = history
        self.clock = clock
        self.reporter = reporter
        self.failures = failures
        self.mailer = mailer
        if urls.occurrence_tokens and history.store is None:
            log.warning('occurrence_tokens without a store: an occurrence '
                        'URL is refused outside its window, but can run '
                        'more than once within it')
        #: this process's schedulers by application id (the CronApp's)
        self.schedulers: dict[str, Scheduler] = {}
        self.pools: dict[str, Pool] = {}

    # read-only: the endpoint and the status page took them too
    @property
    def signer(self) -> JobSigner:
        """Signs the job URLs."""
        return self._signer

    @property
    def urls(self) -> JobUrls:
        """Where the job URLs live and which run a job."""
        return self._urls

    @property
    def calls(self) -> CallSettings:
        """The calls' limits, and the pools' size."""
        return self._calls

    @property
    def status(self) -> StatusPageSettings:
        """Who sees the status page."""
        return self._status

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets: the first signs, all verify."""
        return self._secrets

    @property
    def prefix(self) -> str:
        """Where the job URLs and the status page live."""
        return self.urls.prefix

    @property
    def store(self) -> Store | None:
        """Where runs, switches and overrides are kept."""
        return self.history.store

    # -- tenants ------------------------------------------------------------

    def application_id_of(self, request: Request) -> str | None:
        """The application id a request belongs to; None: no tenant's."""
        return self.tenants.application_id_of(request)

    def base_url_of(self, application_id: str) -> str | None:
        """Where ``application_id``'s scheduler sends its calls, or None."""
        return self.tenants.base_url_of(application_id)

    def application_ids(self) -> list[str]:
        """The application ids known here: configured, scheduled in this
        process, or seen by the store."""
        ids = set(self.schedulers)
        if self.tenants.static_id is not None:
            ids.add(self.tenants.static_id)
        nothing: list[SchedulerInfo] = []
        ids.update(info.application_id for info in self.history.read(
            lambda store: store.schedulers(), nothing))
        return sorted(ids)

    # -- job URLs ---------------------------------------------------------

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
        job = self.job(name)
        if not self.urls.static_urls:
            raise OnecronError(
                'static URLs are off (CronApp(static_urls=False)): only the '
                "scheduler's occurrence URLs run jobs")
        if application_id is None:
            application_id = self.tenants.static_id
            if application_id is None:
                raise OnecronError('application_id is a callable: pass '
                                   'url_for(..., application_id=...)')
        base = (check_base_url(base_url) if base_url
                else self.tenants.base_url_of(application_id))
        if not base:
            raise OnecronError(
                'no base_url: pass one, or configure CronApp(base_url=...)')
        url = self.job_url(name, base, application_id)
        if occurrence is None:
            return url
        if occurrence != 'nearest':
            raise ValueError(f"occurrence must be None or 'nearest', "
                             f'got {occurrence!r}')
        if job.manual:
            raise OnecronError(f'job {name!r} has no schedule, so no '
                               'occurrences: use its plain URL')
        return f'{url}?occurrence=nearest'

    def job_url(self, name: str, base_url: str, application_id: str) -> str:
        """The static URL of job ``name`` for ``application_id``."""
        token = self.signer.token_for(name, application_id)
        return f'{base_url.rstrip("/")}{self.prefix}/{token}'

    def trigger_url(self, name: str, base_url: str, application_id: str,
                    trigger: Trigger, key: str, due: datetime) -> str:
        """The URL that runs ``name`` once outside its schedule (run now,
        ``run_soon``, chains, ``onecron run``), for a call due at ``due``
        that sends ``key`` as its run key: the static URL, or with
        ``static_urls=False`` one made for this call alone."""
        if self.urls.static_urls:
            return self.job_url(name, base_url, application_id)
        token = self.signer.trigger_token(name, application_id,
                                          trigger.value, key, due=due)
        return f'{base_url.rstrip("/")}{self.prefix}/{TRIGGER_PATH}/{token}'

    def fire_url(self, name: str, base_url: str, application_id: str,
                 occurrence: datetime) -> str:
        """The URL the scheduler calls to run ``occurrence`` (aware, the
        nominal time) of the job ``name`` for ``application_id``.

        With ``occurrence_tokens`` a URL for this one occurrence, made
        now: build it when the call is made, so the window counts from
        then; else the job's static URL.
        """
        if not self.urls.occurrence_tokens:
            return self.job_url(name, base_url, application_id)
        token = self.signer.occurrence_token(
            name, application_id, occurrence, issued=self.clock())
        return (f'{base_url.rstrip("/")}{self.prefix}/'
                f'{OCCURRENCE_PATH}/{token}')

    # -- outside the schedule -------------------------------------------

    def pool_for(self, application_id: str) -> Pool:
        """The pool of ``application_id``: its running and queued calls."""
        pool = self.pools.get(application_id)
        if pool is None:
            pool = self.pools.setdefault(
                application_id, Pool(self.caller, self.calls.pool_size))
        return pool

    def run_soon(self, name: str, delay: float = 0,
                 application_id: str = 'default') -> None:
        """Run the job called ``name`` once, ``delay`` seconds from now.

        Revel's ``jobs.Now``/``jobs.In``: the run goes through the job URL
        like any other (on the base URL of ``application_id``'s scheduler,
        or the configured one) and through that application's pool.
        """
        job = self.job(name)
        if not delay >= 0:
            raise ValueError(f'delay must be 0 or more seconds, '
                             f'got {delay!r}')
        self.trigger(job, self.required_base_url(application_id),
                     application_id, Trigger.SOON, delay=delay)

    def run_now(self, name: str, application_id: str) -> None:
        """Run the job called ``name`` once, now, because a person asked
        for it (the status page's Run now): recorded as a ``manual`` run,
        as ``onecron run`` records its runs; :meth:`run_soon`, called by
        code, records ``soon``."""
        self.trigger(self.job(name), self.required_base_url(application_id),
                     application_id, Trigger.MANUAL)

    def required_base_url(self, application_id: str) -> str:
        """:meth:`base_url_of`, or :class:`~onecron.OnecronError`."""
        base = self.base_url_of(application_id)
        if not base:
            raise OnecronError(
                f'no base URL for {application_id!r}: configure '
                f'CronApp(base_url=...) or start its scheduler first')
        return base

    def trigger(self, job: Job, base_url: str, application_id: str,
                trigger: Trigger, delay: float = 0.0) -> None:
        """Call a job's URL outside its schedule (run soon, chains),
        ``delay`` seconds from now."""
        key = uuid.uuid4().hex
        due = self.clock() + timedelta(seconds=delay)
        self.pool_for(application_id).submit([CallRequest(
            self.trigger_url(job.name, base_url, application_id, trigger,
                             key, due),
            job.timeout or self.calls.trigger_timeout,
            partial(report_result, self.reporter, self.history, job,
                    application_id, key, None, self.clock(),
                    trigger=trigger, notify=self.notify),
            [f'{TRIGGER_HEADER}: {trigger.value}', f'{RUN_HEADER}: {key}'],
            # the delay counts on the caller's clock, the one time source
            not_before=self.caller.clock.time() + delay if delay else None)])

    def chain(self, job: Job, request: Request, application_id: str) -> None:
        """After a successful run: trigger the jobs it names in ``then``,
        on the base URL of the application id, never the request's host
        (whoever called the first job chose it)."""
        base = self.base_url_of(application_id)
        if base is None:
            self.reporter.failure(job.name, application_id, 'its then= '
                                  'jobs did not run: no base URL (configure'
                                  ' CronApp(base_url=...))')
            return
        for name in job.then:
            other = self._jobs.get(name)
            if other is None:
                self.reporter.failure(job.name, application_id,
                                      f'then= names unknown job {name!r}')
                continue
            self.trigger(other, base, application_id, Trigger.CHAIN)

    def notify(self, job: Job, application_id: str, outcome: Outcome, *,
               output: str = '', error: str | None = None,
               duration: float | None = None) -> None:
        """Mail a run's report, as the job's ``notify`` says."""
        if self.mailer is not None:
            self.mailer.notify(job, application_id, outcome, output=output,
                               error=error, duration=duration)

    def check(self) -> None:
        """Check what can only be checked once every job is registered.

        Called by :meth:`~onecron.CronApp.start` and before the first
        request's scheduler: a ``then=`` naming an unknown job raises
        :class:`~onecron.UnknownJob`."""
        for job in list(self._jobs.values()):
            for other in job.then:
                if other not in self._jobs:
                    raise UnknownJob(f'job {job.name!r} chains to '
                                     f'{other!r}, which is not registered')

    # -- what the status page shows --------------------------------------

    def schedule_of(self, name: str,
                    application_id: str = 'default') -> Schedule | None:
        """The schedule in force: the operator's override or the code's."""
        job = self.job(name)
        return job.schedule_with(self.settings(application_id).get(name))

    def schedule_in_force(self, job: Job,
                          application_id: str) -> Schedule | None:
        """:meth:`schedule_of`, but the code's if the override is bad."""
        return job.schedule_in_force(
            self.settings(application_id).get(job.name), partial(
                self.reporter.failure, job.name, application_id,
                BAD_OVERRIDE))

    def next_run(self, name: str, application_id: str = 'default',
                 now: datetime | None = None) -> datetime | None:
        """When the job fires next, jitter included; None when it will not
        (manual-only, disabled, or held)."""
        job = self.job(name)
        if self.active_scheduler(application_id) is not None:
            # its own settings and hold state: nothing to read
            return self.next_run_with(job, application_id, {}, False, now)
        settings = self.settings(application_id)
        held = self.history.read(
            lambda store: store.hold(application_id).held, False)
        return self.next_run_with(job, application_id, settings, held, now)

    def active_scheduler(self, application_id: str) -> Scheduler | None:
        """This process's scheduler of ``application_id`` if it fires the
        jobs, else None."""
        scheduler = self.schedulers.get(application_id)
        return scheduler if scheduler is not None and scheduler.active \
            else None

    def next_run_with(self, job: Job, application_id: str,
                      settings: Mapping[str, JobSettings], held: bool,
                      now: datetime | None = None) -> datetime | None:
        """:meth:`next_run` from ``settings`` and ``held`` read already
        (ignored when this process's scheduler is active: it knows), so
        that the status page reads them once for all the jobs."""
        scheduler = self.active_scheduler(application_id)
        if scheduler is not None:
            # a disabled job stays queued (its occurrences are claimed)
            active = scheduler.settings.get(job.name)
            if scheduler.held or (active is not None
                                  and not active.enabled):
                return None
            return scheduler.next_run(job.name)
        setting = settings.get(job.name)
        schedule = job.schedule_with(setting)
        if schedule is None or held or (setting and not setting.enabled):
            return None
        return job.next_runtime(now or self.clock(), application_id,
                                schedule)

    def scheduler_info(self, application_id: str) -> SchedulerInfo | None:
        """The newest sign of life of ``application_id``'s scheduler."""
        nothing: list[SchedulerInfo] = []
        seen = self.history.read(
            lambda store: store.schedulers(application_id), nothing)
        scheduler = self.schedulers.get(application_id)
        if scheduler is not None and scheduler.active_since is not None:
            seen.append(SchedulerInfo(application_id, scheduler.host,
                                      scheduler.pid, scheduler.active_since,
                                      self.clock()))
        return max(seen, key=lambda info: info.heartbeat, default=None)

    # -- the operator's switches -----------------------------------------

    def set_enabled(self, name: str, enabled: bool,
                    application_id: str = 'default') -> None:
        """Switch a job on or off, for every process sharing the store."""
        self.job(name)
        self.needs_store('switching jobs').set_enabled(
            application_id, name, enabled)

    def override_schedule(self, name: str, expr: str | None,
                          application_id: str = 'default',
                          timezone: str | None = None) -> None:
        """Replace the job's schedule (None: back to the code's).

        The expression is checked first: :class:`~onecron.InvalidSchedule`
        leaves the schedule in force as it was.
        """
        job = self.job(name)
        store = self.needs_store('overriding schedules')
        if expr is None:
            store.set_schedule(application_id, name, None)
            return
        zone = timezone or (job.schedule.timezone if job.schedule else 'UTC')
        Schedule(expr, timezone=zone)  # raises before anything is stored
        store.set_schedule(application_id, name, expr, timezone)

    def hold(self, application_id: str = 'default') -> None:
        """Hold every job of ``application_id``: due runs become missed."""
        self.needs_store('holding jobs').set_hold(
            application_id, True, now=self.clock())

    def release(self, application_id: str = 'default',
                catch_up: bool = False) -> list[str]:
        """Release held jobs; with ``catch_up`` run once each job that
        missed a run while held. Returns the names of the jobs run."""
        store = self.needs_store('holding jobs')
        since = store.hold(application_id).since
        store.set_hold(application_id, False, now=self.clock())
        if not catch_up or since is None:
            return []
        missed = []
        for name in list(self._jobs):
            runs = store.runs(application_id, name, limit=20)
            if any(run.outcome is Outcome.MISSED and run.started >= since
                   for run in runs):
                missed.append(name)
                self.run_soon(name, application_id=application_id)
        return missed

    # -- helpers ---------------------------------------------------------

    def job(self, name: str) -> Job:
        """The job called ``name``, or :class:`UnknownJob`."""
        job = self._jobs.get(name)
        if job is None:
            raise UnknownJob(name)
        return job

    def settings(self, application_id: str) -> dict[str, JobSettings]:
        """The operator's switches of ``application_id``'s jobs."""
        nothing: dict[str, JobSettings] = {}
        return self.history.read(
            lambda store: store.job_settings(application_id), nothing)

    def needs_store(self, what: str) -> Store:
        """The store, or :class:`~onecron.OnecronError`: ``what`` needs it."""
        if self.store is None:
            raise OnecronError(f'{what} needs a store: configure '
                               f'CronApp(store=...)')
        return self.store

    def __repr__(self) -> str:
        return f'<Operations {self.prefix!r} {len(self._jobs)} job(s)>'


class HasOperations(Protocol):
    """What holds an :class:`Operations`: a :class:`~onecron.CronApp`."""

    @property
    def operations(self) -> Operations: ...


def operations_of(holder: Operations | HasOperations) -> Operations:
    """``holder`` itself, or the :class:`Operations` it holds: the status
    page and the command take either."""
    return holder if isinstance(holder, Operations) else holder.operations
