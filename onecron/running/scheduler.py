"""The scheduler of one application id: fires its jobs on time.

It first takes the host lock of its application id (standing by and retrying
while another process holds it) and, with a store, the application id's
lease, which makes it the one active scheduler of all hosts sharing the
store (standing by while another holds it and renews it). Then it keeps
every job's next fire time on the CronApp's one
:class:`~onecron.running.clockwork.Clockwork` queue, shared by all application
ids, and, when one is due, claims the occurrence in the store and hands
the job URL to the
:class:`~onecron.running.caller.Caller`, which calls it concurrently with all
others. Each job is rescheduled right away, so a failed, slow or hung run
never delays the next one.

A scheduler that takes over (after a restart, or from a host that died)
first catches up what fell due while none ran
(:mod:`onecron.running.catchup`); what it does with each occurrence (claim,
call, record, the occurrences missed while the jobs are held) is its run
bookkeeping (:mod:`onecron.running.runs`). Both are base classes of
:class:`Scheduler`; their names are importable from here as before.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

from onecron.job import Job
from onecron.reporting import CallbackFailures, Reporter
from onecron.running.caller import CallRequest
from onecron.running.catchup import CLAIM_SETTLE, WHILE_DOWN, CatchUp
from onecron.running.clockwork import Clockwork, Ticket
from onecron.running.lock import HostLock
from onecron.running.mail import Notify
from onecron.running.pool import Pool
from onecron.running.runs import (
    WHILE_HELD,
    UrlFor,
    _HeldRange,
    holder_name,
    lease_times,
    node_name,
    report_result,
)
from onecron.schedule.clock import Clock, time_source, utcnow
from onecron.schedule.rules import Schedule
from onecron.stores.base import JobSettings, Lease, Outcome, SchedulerInfo
from onecron.stores.history import History

__all__ = [
    'ARM_AHEAD', 'CLAIM_SETTLE', 'WHILE_DOWN', 'WHILE_HELD', 'Scheduler',
    'UrlFor', 'holder_name', 'lease_times', 'node_name', 'report_result',
]

log = logging.getLogger(__name__)

#: how long before its time a call is handed, armed, to the caller, which
#: starts it on time (the scheduler's own wake-up is less precise)
ARM_AHEAD = 0.05


class Scheduler(CatchUp):
    """Fires the jobs of one application id while holding its host lock.

    It owns no thread: its steps run on the CronApp's
    :class:`~onecron.running.clockwork.Clockwork`, shared by all application
    ids.

    :param application_id: whose jobs these are
    :param base_url: the application URL the job URLs are built on
    :param clockwork: runs the steps
    :param jobs: the registered jobs by name, read when the lock is taken
    :param url_for: gives the URL a fire calls, see :data:`UrlFor`
    :param lock: the host lock for this application id
    :param pool: makes the HTTP calls, within the application's pool
    :param reporter: where failed calls are reported
    :param history: where runs are written and switches read
    :param clock: gives the current aware datetime; lease renewal is
        timed on its :func:`~onecron.schedule.clock.time_source`
    :param trigger_timeout: total seconds allowed for one call
    :param standby_interval: seconds between attempts to take the lock
    :param lease_time: with a store: how long after the last renewal
        another host takes over (see :class:`~onecron.stores.base.Lease`)
    :param failures: reports a ``should_run`` that raises (shared by an
        app's schedulers: once per exception type, not once per id)
    """

    def __init__(self, application_id: str, base_url: str, *,
                 clockwork: Clockwork, jobs: Mapping[str, Job],
                 url_for: UrlFor, lock: HostLock, pool: Pool,
                 reporter: Reporter, history: History,
                 clock: Clock = utcnow, trigger_timeout: float = 3600.0,
                 standby_interval: float = 0.5,
                 notify: Notify | None = None,
                 lease_time: float = 30.0,
                 holder: str | None = None,
                 failures: CallbackFailures | None = None) -> None:
        self.application_id = application_id
        self.base_url = base_url
        self.lock = lock
        self.pid = os.getpid()
        self.active_since: datetime | None = None
        self._clockwork = clockwork
        self._jobs = jobs
        self._url_for = url_for
        self._pool = pool
        self._reporter = reporter
        self._failures = failures or CallbackFailures(reporter)
        self._history = history
        self._notify = notify
        self.host = socket.gethostname()
        #: who this scheduler is, in the store's lease (a process's
        #: schedulers share one name: the housekeeper renews them at once)
        self.holder = holder or holder_name(self.host)
        #: the scope of the host lock: its host and directory
        self.node = node_name(self.host, os.path.dirname(lock.path))
        self._lease_retry, self._lease_ttl, _ = lease_times(lease_time)
        self._renewed = 0.0  # clock.monotonic() of the last renewal
        self._said_standby = False
        #: the operator's switches, as last read from the store
        self.settings: dict[str, JobSettings] = {}
        #: whether the operator holds all jobs
        self.held = False
        self._clock = time_source(clock)
        self._trigger_timeout = trigger_timeout
        self._standby_interval = standby_interval
        self._stopped = False
        #: held while a step of this scheduler runs, and by stop()
        self.busy = threading.RLock()
        #: the next step that is not a fire: take the lock or lease, poll
        self._timer: Ticket | None = None
        #: each queued job's next fire: (runtime, step)
        self._next: dict[str, tuple[datetime, Ticket]] = {}
        #: calls due now, handed over together by flush()
        self._due: list[CallRequest] = []
        #: jobs fired since the last reschedule(), with their fire times
        self._fired: list[tuple[Job, datetime]] = []
        #: per job with replays under way: its calls waiting their turn
        #: (see _in_line); the caller's thread takes them from here
        self._lines: dict[str, list[CallRequest]] = {}
        self._lines_lock = threading.Lock()
        #: per job, the occurrences missed in the hold under way
        self._holding: dict[str, _HeldRange] = {}
        #: per job, the occurrences the catch-up of this activation has
        #: run or written down: a second look does not count them again
        self._caught_up: dict[str, set[datetime]] = {}

    # -- control --------------------------------------------------------

    def start(self) -> None:
        """Start: stand by until the lock (and the lease) are ours."""
        with self.busy:  # the step must not run before _timer is set
            self._later(0, self._take_lock)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop firing, release the lease and the lock.

        Waits up to ``timeout`` for a step of this scheduler that runs.
        """
        got = self.busy.acquire(timeout=timeout)
        try:
            if self._stopped:
                return
            self._stopped = True
            self._cancel_all()
            self._deactivate()
            self._history.read(lambda store: store.release_lease(
                self.application_id, self.holder), None)
            if self.pid == os.getpid():
                self.lock.release()
        finally:
            if got:
                self.busy.release()

    def forget(self) -> None:
        """In a forked child: drop the inherited lock without releasing it."""
        self._stopped = True
        self.lock.forget()

    def add_job(self, job: Job) -> None:
        """Schedule a job registered after the scheduler became active."""
        with self.busy:
            if self.active_since is not None and not self._stopped:
                self._enter(job, self._clock())

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` (or a fork) ended this scheduler."""
        return self._stopped

    @property
    def alive(self) -> bool:
        """Whether it runs in this process (not a pre-fork copy)."""
        return (self.pid == os.getpid() and not self._stopped
                and self._clockwork.alive)

    @property
    def active(self) -> bool:
        """Whether this scheduler holds the lock (and the lease, with a
        store) and fires the jobs."""
        return (self.alive and self.lock.held
                and self.active_since is not None)

    def upcoming(self) -> list[tuple[datetime, str]]:
        """The queued fire times with job names, soonest first."""
        return sorted((runtime, name)
                      for name, (runtime, _) in list(self._next.items()))

    def next_run(self, name: str) -> datetime | None:
        """When the job called ``name`` fires next (None: not queued)."""
        queued = self._next.get(name)
        return queued[0] if queued is not None else None

    def __repr__(self) -> str:
        state = ('active' if self.active else
                 'standing by' if self.alive else 'stopped')
        return (f'<Scheduler {self.application_id!r} {state} '
                f'pid={self.pid} {self.base_url}>')

    # -- what the clockwork calls ------------------------------------------

    def flush(self) -> None:
        """Hand the calls gathered since the last flush to the pool."""
        due, self._due = self._due, []
        if due and not self._halted:
            self._pool.submit(due)

    def reschedule(self) -> bool:
        """Queue the next run of each job fired since the last time."""
        fired, self._fired = self._fired, []
        if not fired or self._halted:
            return False
        now = self._clock()
        for job, runtime in fired:
            if log.isEnabledFor(logging.DEBUG):
                log.debug('fired %s (%s), due %s, %.4fs before now',
                          job.name, self.application_id,
                          runtime.isoformat(),
                          (now - runtime).total_seconds())
            if not job.once:
                # from now, not from the due time: after a long stall
                # (suspend, clock jump) run once, not once per slot.
                # (Compared as instants: aware datetimes of one zone
                # compare by wall time and ignore fold.)
                late = now.timestamp() > runtime.timestamp()
                self._enter(job, now if late else runtime)
        return True

    def crashed(self, error: Exception) -> None:
        """A step raised: never silent (the model's thread died quietly).
        The reporter logs it with the traceback and sends it, once."""
        self._reporter.failure('*', self.application_id,
                               'scheduler step failed', error)

    # -- steps ------------------------------------------------------------

    def _later(self, delay: float, step: Callable[[], object]) -> None:
        """Make ``step`` this scheduler's next non-fire step."""
        self._clockwork.cancel(self._timer)
        self._timer = self._clockwork.enter(
            self._clock().timestamp() + delay, 1, self, step)

    def _cancel_all(self) -> None:
        """Take every step of this scheduler off the queue."""
        self._clockwork.cancel(self._timer)
        self._timer = None
        for _, event in self._next.values():
            self._clockwork.cancel(event)
        self._next.clear()

    #: why the host lock could not be taken, as last reported (None: it
    #: could): each distinct problem is reported once, not every poll
    _lock_problem: str | None = None

    def _take_lock(self) -> None:
        """Standing by for the host lock: try, and try again later.

        A lock that cannot be taken (its directory or file is wrong, see
        :mod:`onecron.running.lock`) is reported, once per distinct problem,
        and
        tried again at every poll: once the problem is fixed the
        scheduler goes on, and says so.
        """
        try:
            taken = self.lock.acquire()
        except OSError as error:
            problem = str(error)
            if problem != self._lock_problem:
                self._lock_problem = problem
                self._reporter.failure(
                    '*', self.application_id,
                    f'the host lock cannot be taken, so no job runs; '
                    f'tried again every {self._standby_interval:g}s: '
                    f'{problem}')
            self._later(self._standby_interval, self._take_lock)
            return
        if self._lock_problem is not None:
            self._lock_problem = None
            log.info('scheduler for %r: the host lock works again',
                     self.application_id)
        if taken:
            self._take_lease()
        else:
            self._later(self._standby_interval, self._take_lock)

    def _activate(self, before: Lease | None) -> None:
        """Become the active scheduler: catch up, then queue every job."""
        log.info('scheduler for %r is active in process %d',
                 self.application_id, self.pid)
        now = self._clock()
        self.active_since = now
        self._said_standby = False
        self._caught_up = {}
        self._holding = {}
        self._read_switches(now)
        if before is not None:
            # claims of the last moments may belong to calls still on
            # their way: look at those once more, a little later
            self._catch_up(before, now, now - CLAIM_SETTLE)
            self._later(CLAIM_SETTLE.total_seconds(),
                        lambda: self._catch_up(before, now, now))
        for job in list(self._jobs.values()):
            self._enter(job, now)

    def _deactivate(self) -> None:
        """Stop being the active scheduler (stopping, or stepped down)."""
        for _, event in self._next.values():
            self._clockwork.cancel(event)
        self._next.clear()
        self._due, self._fired = [], []
        with self._lines_lock:  # what waits in line is never called
            for line in self._lines.values():
                line.clear()
            self._lines = {}
        self._end_hold()
        if self.active_since is None:
            return
        self.active_since = None
        self._history.read(lambda store: store.forget_scheduler(
            self.application_id, self.host, self.pid), None)

    def _read_switches(self, now: datetime) -> None:
        """Read this id's switches and hold, and show a first sign of
        life, now (the housekeeper does it for all ids after this)."""
        store = self._history.store
        if store is None:
            return
        app_id = self.application_id
        self.settings = self._history.read(
            lambda store: store.job_settings(app_id), self.settings)
        self.held = self._history.read(
            lambda store: store.hold(app_id).held, self.held)
        self._history.read(lambda store: store.heartbeat(SchedulerInfo(
            app_id, self.host, self.pid, now, now)), None)

    def refresh(self, settings: dict[str, JobSettings] | None,
                held: bool | None, now: datetime) -> None:
        """Take the switches and the hold the housekeeper read (None: it
        could not; keep the last known); reschedule changed jobs."""
        if held is not None:
            self.held = held
            if not held:
                self._end_hold()
        if settings is None or settings == self.settings:
            return
        changed = {name for name in set(settings) | set(self.settings)
                   if settings.get(name) != self.settings.get(name)}
        self.settings = settings
        for name in changed:
            job = self._jobs.get(name)
            if job is not None:
                self._replace(job, now)

    def lease_renewed(self, renewed: bool | None) -> bool:
        """The housekeeper renewed the lease (True), found it taken over
        (False) or could not reach the store (None). Steps down when it
        is lost or may be; returns whether this scheduler is still
        active."""
        store = self._history.store
        if renewed:
            self._renewed = self._clock.monotonic()
            return True
        if renewed is False:
            self._demote('another scheduler took over the lease')
            return False
        if store is not None and store.coordinates and (
                self._clock.monotonic() - self._renewed
                > self._lease_ttl - self._lease_retry):
            self._demote('the lease could not be renewed in time')
            return False
        return True

    def _replace(self, job: Job, now: datetime) -> None:
        """Schedule ``job`` anew (its override changed)."""
        queued = self._next.pop(job.name, None)
        if queued is not None:
            self._clockwork.cancel(queued[1])
        self._enter(job, now)

    def _enter(self, job: Job, after: datetime) -> None:
        schedule = self.schedule_of(job)
        if schedule is None:
            return  # manual-only
        try:
            runtime = job.next_runtime(after, self.application_id, schedule)
        except Exception as exc:  # a bug in a schedule must not stop others
            self._reporter.failure(job.name, self.application_id,
                                   'could not compute the next run', exc)
            return
        # fired a little early: the caller starts the call at runtime
        self._next[job.name] = (runtime, self._clockwork.enter(
            runtime.timestamp() - ARM_AHEAD, 0, self, self._fire,
            (job, runtime, schedule)))

    def _fire(self, job: Job, runtime: datetime,
              schedule: Schedule | None = None) -> None:
        queued = self._next.get(job.name)
        if queued is not None and queued[0] is runtime:
            del self._next[job.name]
        if self._halted:
            return
        self._fired.append((job, runtime))
        # the offset depends on the schedule the runtime was computed with
        occurrence = job.occurrence_of(runtime, self.application_id,
                                       schedule)
        holding = self._holding.get(job.name) if self.held else None
        # a hold's occurrences are claimed for its one record
        key = uuid.uuid4().hex if holding is None else holding.key
        # claimed even when disabled: a successor must not catch it up
        if not self._claim(job, occurrence, key):
            return
        settings = self.settings.get(job.name)
        if settings is not None and not settings.enabled:
            return
        if self.held:
            self._missed_while_held(job, occurrence, key)
            return
        if not self._should_run(job):
            self._record(job, occurrence, key, Outcome.SKIPPED)
            return
        self._in_line(job, [self._call(job, occurrence, key, runtime)])

    # -- taking over --------------------------------------------------------

    def _take_lease(self) -> None:
        """Standing by for the application id's lease: try, and try again
        later; activate once it is ours.

        Without a store there is no lease to take; a host-local store that
        fails does not keep the jobs from running.
        """
        store = self._history.store
        if store is None:
            self._activate(None)
            return
        result = self._history.read(lambda store: store.take_lease(
            self.application_id, holder=self.holder, node=self.node,
            ttl=self._lease_ttl, now=self._clock()), None)
        if result is None and not store.coordinates:
            self._activate(None)
            return
        if result is not None:
            taken, before = result
            if taken:
                self._renewed = self._clock.monotonic()
                self._activate(before)
                return
            if not self._said_standby and before is not None:
                self._said_standby = True
                log.info('scheduler for %r stands by: %s holds the lease '
                         'until %s', self.application_id, before.holder,
                         before.expires.isoformat())
        self._later(self._lease_retry, self._take_lease)

    def _demote(self, why: str) -> None:
        """Stop firing and stand by again: another scheduler is active."""
        log.warning('scheduler for %r steps down: %s', self.application_id,
                    why)
        self._deactivate()
        self._later(self._lease_retry, self._take_lease)

