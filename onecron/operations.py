"""What happens outside the schedule: run now, chains, pools, and the
operator's switches (enable, override, hold), shared by every process
through the store. A mixin of :class:`~onecron.CronApp`, kept apart so the
application class stays about registration, serving and scheduling.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from webob import Request

from onecron.errors import OnecronError, UnknownJob
from onecron.job import Job
from onecron.protocol.headers import RUN_HEADER, TRIGGER_HEADER
from onecron.reporting import Reporter
from onecron.running.caller import Caller, CallRequest
from onecron.running.pool import Pool
from onecron.running.scheduler import report_result
from onecron.schedule.clock import Clock
from onecron.schedule.rules import Schedule
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


class Controls:
    """Triggers and switches; the attributes below come from CronApp."""

    base_url: str | Callable[[str], str] | None
    _jobs: dict[str, Job]
    _pools: dict[str, Pool]
    _schedulers: dict[str, Scheduler]

    if TYPE_CHECKING:
        # read-only properties of CronApp: fixed when it is made
        @property
        def application_id(self) -> str | Callable[[Request], str | None]:
            ...

        @property
        def caller(self) -> Caller: ...

        @property
        def clock(self) -> Clock: ...

        @property
        def history(self) -> History: ...

        @property
        def pool_size(self) -> int | None: ...

        @property
        def reporter(self) -> Reporter: ...

        @property
        def store(self) -> Store | None: ...

        @property
        def trigger_timeout(self) -> float: ...

    def _trigger_url(self, name: str, base_url: str, application_id: str,
                     trigger: Trigger, key: str, due: datetime) -> str:
        raise NotImplementedError

    def _notify(self, job: Job, application_id: str, outcome: Outcome, *,
                output: str = '', error: str | None = None,
                duration: float | None = None) -> None:
        raise NotImplementedError

    # -- outside the schedule -------------------------------------------

    def pool_for(self, application_id: str) -> Pool:
        """The pool of ``application_id``: its running and queued calls."""
        pool = self._pools.get(application_id)
        if pool is None:
            pool = self._pools.setdefault(
                application_id, Pool(self.caller, self.pool_size))
        return pool

    def run_soon(self, name: str, delay: float = 0,
                 application_id: str = 'default') -> None:
        """Run the job called ``name`` once, ``delay`` seconds from now.

        Revel's ``jobs.Now``/``jobs.In``: the run goes through the job URL
        like any other (on the base URL of ``application_id``'s scheduler,
        or the configured one) and through that application's pool.
        """
        job = self._job(name)
        if not delay >= 0:
            raise ValueError(f'delay must be 0 or more seconds, '
                             f'got {delay!r}')
        self._trigger(job, self._base_url_of(application_id), application_id,
                      Trigger.SOON, delay=delay)

    def _run_now(self, name: str, application_id: str) -> None:
        """Run the job called ``name`` once, now, because a person asked
        for it (the status page's Run now): recorded as a ``manual`` run,
        as ``onecron run`` records its runs; :meth:`run_soon`, called by
        code, records ``soon``."""
        self._trigger(self._job(name), self._base_url_of(application_id),
                      application_id, Trigger.MANUAL)

    def base_url_of(self, application_id: str) -> str | None:
        raise NotImplementedError

    def _base_url_of(self, application_id: str) -> str:
        base = self.base_url_of(application_id)
        if not base:
            raise OnecronError(
                f'no base URL for {application_id!r}: configure '
                f'CronApp(base_url=...) or start its scheduler first')
        return base

    def _trigger(self, job: Job, base_url: str, application_id: str,
                 trigger: Trigger, delay: float = 0.0) -> None:
        """Call a job's URL outside its schedule (run soon, chains),
        ``delay`` seconds from now."""
        key = uuid.uuid4().hex
        due = self.clock() + timedelta(seconds=delay)
        self.pool_for(application_id).submit([CallRequest(
            self._trigger_url(job.name, base_url, application_id, trigger,
                              key, due),
            job.timeout or self.trigger_timeout,
            partial(report_result, self.reporter, self.history, job,
                    application_id, key, None, self.clock(),
                    trigger=trigger, notify=self._notify),
            [f'{TRIGGER_HEADER}: {trigger.value}', f'{RUN_HEADER}: {key}'],
            # the one time source: the delay counts on the caller's clock
            not_before=self.caller.clock.time() + delay if delay else None)])

    def _chain(self, job: Job, request: Request, application_id: str) -> None:
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
            self._trigger(other, base, application_id, Trigger.CHAIN)

    # -- what the status page shows --------------------------------------

    def application_ids(self) -> list[str]:
        """The application ids known here: configured, scheduled in this
        process, or seen by the store."""
        ids = set(self._schedulers)
        if isinstance(self.application_id, str):
            ids.add(self.application_id)
        nothing: list[SchedulerInfo] = []
        ids.update(info.application_id for info in self.history.read(
            lambda store: store.schedulers(), nothing))
        return sorted(ids)

    def schedule_of(self, name: str,
                    application_id: str = 'default') -> Schedule | None:
        """The schedule in force: the operator's override or the code's."""
        job = self._job(name)
        return job.schedule_with(self._settings(application_id).get(name))

    def _schedule_in_force(self, job: Job,
                           application_id: str) -> Schedule | None:
        """:meth:`schedule_of`, but the code's if the override is bad."""
        try:
            return job.schedule_with(self._settings(application_id).get(
                job.name))
        except ValueError as exc:
            self.reporter.failure(job.name, application_id,
                                  'the schedule override is invalid', exc)
            return job.schedule

    def next_run(self, name: str, application_id: str = 'default',
                 now: datetime | None = None) -> datetime | None:
        """When the job fires next, jitter included; None when it will not
        (manual-only, disabled, or held)."""
        job = self._job(name)
        if self._active_scheduler(application_id) is not None:
            # its own settings and hold state: nothing to read
            return self._next_run_with(job, application_id, {}, False, now)
        settings = self._settings(application_id)
        held = self.history.read(
            lambda store: store.hold(application_id).held, False)
        return self._next_run_with(job, application_id, settings, held, now)

    def _active_scheduler(self, application_id: str) -> Scheduler | None:
        """This process's scheduler of ``application_id`` if it fires the
        jobs, else None."""
        scheduler = self._schedulers.get(application_id)
        return scheduler if scheduler is not None and scheduler.active \
            else None

    def _next_run_with(self, job: Job, application_id: str,
                       settings: Mapping[str, JobSettings], held: bool,
                       now: datetime | None = None) -> datetime | None:
        """:meth:`next_run` from ``settings`` and ``held`` read already
        (ignored when this process's scheduler is active: it knows), so
        that the status page reads them once for all the jobs."""
        scheduler = self._active_scheduler(application_id)
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
        scheduler = self._schedulers.get(application_id)
        if scheduler is not None and scheduler.active_since is not None:
            seen.append(SchedulerInfo(application_id, scheduler.host,
                                      scheduler.pid, scheduler.active_since,
                                      self.clock()))
        return max(seen, key=lambda info: info.heartbeat, default=None)

    # -- the operator's switches -----------------------------------------

    def set_enabled(self, name: str, enabled: bool,
                    application_id: str = 'default') -> None:
        """Switch a job on or off, for every process sharing the store."""
        self._job(name)
        self._needs_store('switching jobs').set_enabled(
            application_id, name, enabled)

    def override_schedule(self, name: str, expr: str | None,
                          application_id: str = 'default',
                          timezone: str | None = None) -> None:
        """Replace the job's schedule (None: back to the code's).

        The expression is checked first: :class:`~onecron.InvalidSchedule`
        leaves the schedule in force as it was.
        """
        job = self._job(name)
        store = self._needs_store('overriding schedules')
        if expr is None:
            store.set_schedule(application_id, name, None)
            return
        zone = timezone or (job.schedule.timezone if job.schedule else 'UTC')
        Schedule(expr, timezone=zone)  # raises before anything is stored
        store.set_schedule(application_id, name, expr, timezone)

    def hold(self, application_id: str = 'default') -> None:
        """Hold every job of ``application_id``: due runs become missed."""
        self._needs_store('holding jobs').set_hold(
            application_id, True, now=self.clock())

    def release(self, application_id: str = 'default',
                catch_up: bool = False) -> list[str]:
        """Release held jobs; with ``catch_up`` run once each job that
        missed a run while held. Returns the names of the jobs run."""
        store = self._needs_store('holding jobs')
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

    def _job(self, name: str) -> Job:
        job = self._jobs.get(name)
        if job is None:
            raise UnknownJob(name)
        return job

    def _settings(self, application_id: str) -> dict[str, JobSettings]:
        nothing: dict[str, JobSettings] = {}
        return self.history.read(
            lambda store: store.job_settings(application_id), nothing)

    def _needs_store(self, what: str) -> Store:
        if self.store is None:
            raise OnecronError(f'{what} needs a store: configure '
                               f'CronApp(store=...)')
        return self.store


__all__ = ['Controls']
