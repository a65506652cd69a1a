"""The schedulers of one :class:`~onecron.CronApp`: started per application
id (by a request, :meth:`~onecron.CronApp.start` or the autostart, see
:mod:`onecron.running.autostart`), stopped together, forgotten in a
forked child. A part of the CronApp, kept apart so the application class
stays about construction, registration and serving.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from webob import Request

from onecron.errors import DuplicateJob, OnecronError, UnknownJob
from onecron.job import Job
from onecron.operations import Operations
from onecron.running.autostart import Deferred
from onecron.running.clockwork import Clockwork
from onecron.running.housekeeping import Housekeeper
from onecron.running.lock import HostLock, lock_directory, lock_path
from onecron.running.scheduler import Scheduler, holder_name, node_name
from onecron.settings import Retention, SchedulerSettings

# the CronApp's logger: what users' logging configuration names
log = logging.getLogger('onecron.app')

#: why a request started no scheduler
NO_BASE_URL = (
    'no scheduler started: configure CronApp(base_url=...) (or list the '
    "request's host in allowed_hosts): the scheduler sends the job URLs "
    'to its base URL, and never takes one from a Host header alone')


class Schedulers:
    """Starts, stops and forgets the schedulers of ``operations``' jobs.

    :param settings: enabled, autostart, lock directory, lease time
    :param retention: how long the housekeeper keeps runs
    """

    def __init__(self, operations: Operations, *,
                 settings: SchedulerSettings, retention: Retention) -> None:
        self.operations = operations
        # read by every request (CronApp.__call__): kept at hand
        self.static_id = operations.tenants.static_id
        self.schedulers = operations.schedulers
        self.settings = settings
        self.enabled = settings.enabled
        self.lock_dir = settings.lock_dir
        self.lease_time = settings.lease_time
        self.retention = retention
        #: the one thread that drives every application id's scheduler
        self.clockwork = Clockwork(operations.clock)
        #: this process's name in the store's leases
        self.holder = holder_name(socket.gethostname())
        self.keeper: Housekeeper | None = None
        self.mutex = threading.Lock()
        self.pid = os.getpid()
        # whether requests start schedulers: off when disabled or stopped
        self.watching = settings.enabled
        self.autostart_mode = settings.autostart
        # the delay counts on the app's clock, the one time source
        self.autostart = Deferred(settings.autostart, self.autostarted,
                                  clock=operations.clock)
        if (settings.autostart is True and settings.enabled
                and not self.autostarts()):
            raise ValueError('autostart=True needs a fixed (str) '
                             'application_id and a configured base_url')

    def add_job(self, job: Job) -> None:
        """Register ``job``, and hand it to the running schedulers."""
        ops = self.operations
        with self.mutex:
            if job.name in ops.jobs:
                raise DuplicateJob(f'a job named {job.name!r} is already '
                                   f'registered')
            ops._jobs[job.name] = job
            schedulers = list(ops.schedulers.values())
        for scheduler in schedulers:
            scheduler.add_job(job)

    def start(self, base_url: str | None = None,
              application_id: str | None = None) -> None:
        """See :meth:`onecron.CronApp.start`."""
        ops = self.operations
        if not self.enabled:
            log.info('CronApp is disabled: start() starts no scheduler')
            return
        if application_id is None:
            if ops.tenants.static_id is None:
                raise OnecronError('application_id is a callable: pass '
                                   'start(application_id=...)')
            application_id = ops.tenants.static_id
        if base_url:
            ops.tenants.use_base_url(application_id, base_url)
        base = ops.tenants.base_url_of(application_id)
        if not base:
            raise OnecronError(
                'no base_url: pass start(base_url=...) or configure '
                'CronApp(base_url=...)')
        ops.check()
        self.watching = True
        self.scheduler_for(application_id, base)

    def stop(self, timeout: float) -> None:
        """Stop every scheduler and the threads that drive them."""
        self.autostart.disarm()
        ops = self.operations
        with self.mutex:
            self.watching = False
            schedulers = list(ops.schedulers.values())
            ops.schedulers.clear()
            # the caller drops what it had queued: so do the pools
            ops.pools.clear()
        if self.keeper is not None:
            self.keeper.stop()
        for scheduler in schedulers:
            scheduler.stop(timeout)
        self.clockwork.stop(timeout)

    def scheduler_for(self, application_id: str,
                      base_url: str) -> Scheduler:
        """The running scheduler of ``application_id``, started if need
        be on ``base_url``."""
        ops = self.operations
        with self.mutex:
            scheduler = ops.schedulers.get(application_id)
            if scheduler is not None and scheduler.alive:
                return scheduler
            scheduler = Scheduler(
                application_id, base_url, clockwork=self.clockwork,
                jobs=ops._jobs, url_for=ops.fire_url,
                lock=HostLock(lock_path(self.lock_dir, application_id)),
                pool=ops.pool_for(application_id), reporter=ops.reporter,
                history=ops.history, clock=ops.clock,
                trigger_timeout=ops.calls.trigger_timeout,
                notify=ops.notify, lease_time=self.lease_time,
                holder=self.holder, failures=ops.failures)
            if ops.store is not None:
                self._housekeeper().add(scheduler)
            ops.schedulers[application_id] = scheduler
            scheduler.start()
            return scheduler

    def _housekeeper(self) -> Housekeeper:
        """The store's rounds for all the app's schedulers (the caller
        holds ``mutex``)."""
        if self.keeper is None or self.keeper.stopped:
            ops = self.operations
            self.keeper = Housekeeper(
                self.clockwork, ops.history, clock=ops.clock,
                reporter=ops.reporter, lease_time=self.lease_time,
                holder=self.holder,
                node=node_name(socket.gethostname(),
                               lock_directory(self.lock_dir)),
                keep_runs=self.retention.keep_runs,
                keep_days=self.retention.keep_days)
        return self.keeper

    def notice(self, request: Request) -> None:
        """Start the scheduler of the request's application id if needed:
        when its base URL is configured, or its host is allowed."""
        ops = self.operations
        try:
            found = ops.application_id_of(request)
        except Exception as exc:  # the application's own code
            ops.failures.report('application_id', exc, 'the request '
                                'starts no scheduler and is no '
                                "tenant's", application_id='?')
            return
        if found is None:
            return  # no tenant's: nothing to schedule
        application_id = found
        if application_id in ops.schedulers:
            return  # the fork hook empties it: any entry is this process's
        base_url = ops.tenants.base_url_of(application_id)
        if base_url is None:
            if not ops.tenants.learns_from(request):
                ops.tenants.warn_once(application_id, NO_BASE_URL)
                return
            base_url = request.application_url
            ops.tenants.bases[application_id] = base_url
        if len(ops.schedulers) >= ops.tenants.max_application_ids:
            ops.tenants.warn_once(
                application_id, f'not scheduled: this process schedules '
                f'{ops.tenants.max_application_ids} application ids already'
                f' (max_application_ids)')
            return
        self.start_scheduler(application_id, base_url)

    def start_scheduler(self, application_id: str, base_url: str) -> None:
        """Start ``application_id``'s scheduler without a caller to raise
        to (a request, the deferred start): a ``then=`` naming an unknown
        job is reported instead."""
        try:
            self.operations.check()
        except UnknownJob as exc:
            self.operations.reporter.failure('*', application_id, str(exc),
                                             exc)
        self.scheduler_for(application_id, base_url)

    def autostarts(self) -> bool:
        """Whether the app starts scheduling without a request: enabled,
        its id fixed and its base URL configured."""
        static_id = self.operations.tenants.static_id
        return (self.enabled and self.autostart_mode is not False
                and static_id is not None
                and self.operations.tenants.base_url_of(static_id) is not None)

    def autostarted(self, server: str) -> None:
        """The deferred start (see :mod:`onecron.running.autostart`): what
        :meth:`start` does, unless stopped or started already."""
        application_id = self.operations.tenants.static_id
        if not self.watching or application_id is None:
            return
        if application_id in self.operations.schedulers:
            log.info('scheduler started by a request before its autostart '
                     'in %s worker pid %d', server, os.getpid())
            return
        base_url = self.operations.tenants.base_url_of(application_id)
        if base_url is None:
            return
        self.start_scheduler(application_id, base_url)
        log.info('scheduler autostarted in %s worker pid %d', server,
                 os.getpid())

    def after_fork_in_child(self) -> None:
        """Threads do not survive a fork: forget the parent's schedulers
        (and their inherited lock descriptors) so requests start fresh."""
        ops = self.operations
        self.mutex = threading.Lock()
        self.pid = os.getpid()
        for scheduler in ops.schedulers.values():
            scheduler.forget()
        ops.schedulers.clear()
        self.clockwork = Clockwork(ops.clock)
        self.holder = holder_name(socket.gethostname())
        self.keeper = None
        ops.caller.after_fork()
        if self.autostarts():
            self.autostart.arm()  # the parent's was not forked with it
