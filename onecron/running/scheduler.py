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
first looks for occurrences that fell due while none ran, and runs or
records them per the jobs' ``misfire`` policy (:mod:`onecron.running.misfire`).
What was missed is logged and written down as one record per job, not one
per occurrence (see :mod:`onecron.stores.history`); so are the occurrences that
fall due while the jobs are held: one record per job and hold.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from onecron.job import Job
from onecron.protocol.headers import (
    OCCURRENCE_HEADER,
    RUN_HEADER,
    TRIGGER_HEADER,
)
from onecron.reporting import CallbackFailures, Reporter
from onecron.running.caller import CallRequest, CallResult
from onecron.running.clockwork import Clockwork, Ticket
from onecron.running.lock import HostLock
from onecron.running.mail import Notify
from onecron.running.misfire import Plan, missed, plan
from onecron.running.pool import Pool
from onecron.schedule.clock import Clock, time_source, utcnow
from onecron.schedule.rules import Schedule
from onecron.stores.base import (
    CLAIM_DAYS,
    JobSettings,
    Lease,
    Outcome,
    SchedulerInfo,
    Trigger,
)
from onecron.stores.history import History, missed_summary

log = logging.getLogger(__name__)

#: ``url_for(job_name, base_url, application_id, occurrence)``: the URL
#: a fire calls (static, or made for that one occurrence)
UrlFor = Callable[[str, str, str, datetime], str]

#: how long before its time a call is handed, armed, to the caller, which
#: starts it on time (the scheduler's own wake-up is less precise)
ARM_AHEAD = 0.05

#: how old a claim without a run must be to count as lost: its call may
#: still be on its way until then
CLAIM_SETTLE = timedelta(seconds=3)


#: why occurrences were missed, in their record
WHILE_DOWN = 'while no scheduler ran'
WHILE_HELD = 'while jobs were held'


@dataclass
class _HeldRange:
    """The occurrences of a job missed during a hold, so far: one record,
    written at the first and extended at each."""

    key: str
    first: datetime
    last: datetime
    count: int = 1


def holder_name(host: str) -> str:
    """A process's name in the leases: unique even across pid reuse."""
    return f'{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}'


def node_name(host: str, directory: str) -> str:
    """The scope of a host lock: the host and the locks' directory."""
    return f'{host}:{directory}'


def lease_times(lease_time: float) -> tuple[float, float, float]:
    """(standby retry, lease ttl, renewal interval) for ``lease_time``.

    A standby looks every retry seconds, so a lease that is not renewed is
    taken over within ttl + retry = lease_time; the holder renews three
    times per ttl.
    """
    retry = min(2.0, lease_time / 6)
    ttl = lease_time - retry
    return retry, ttl, ttl / 3


def report_result(reporter: Reporter, history: History, job: Job,
                  application_id: str, key: str, scheduled: datetime | None,
                  started: datetime, result: CallResult, *,
                  trigger: Trigger = Trigger.SCHEDULER,
                  notify: Notify | None = None) -> None:
    """Log a finished call; report it and write it down when it failed.

    The endpoint writes down every run it serves; what it never saw (a
    refused connection, a redirect, a timeout) is written here, under the
    run's key, which the store keeps unique.
    """
    if result.ok:
        log.info('job %s (%s) ran: %s', job.name, application_id,
                 result.describe())
        return
    if result.reported:
        # the endpoint that ran it reported the failure: once is enough
        log.info('job %s (%s) failed where it ran: %s', job.name,
                 application_id, result.describe())
    else:
        reporter.failure(job.name, application_id, result.describe())
    if notify is not None and (result.timed_out or result.status in (0, 404)
                               or 300 <= result.status < 400):
        # the endpoint mails what it ran; these it never saw, or not whole
        notify(job, application_id,
               Outcome.TIMED_OUT if result.timed_out else Outcome.FAILED,
               error=result.describe())
    if result.timed_out:
        history.timed_out(application_id, job.name, key=key,
                          scheduled=scheduled, started=started,
                          error=result.describe())
    else:
        history.record(application_id, job.name, trigger=trigger,
                       outcome=Outcome.FAILED, scheduled=scheduled,
                       started=started, http_status=result.status or None,
                       error=result.describe(), key=key)


class Scheduler:
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

    @property
    def _halted(self) -> bool:
        """Whether firing must stop: stopped, or stepped down."""
        return self._stopped or self.active_since is None

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

    def schedule_of(self, job: Job) -> Schedule | None:
        """The job's schedule, or the operator's override of it."""
        try:
            return job.schedule_with(self.settings.get(job.name))
        except ValueError as exc:  # a bad override in the store
            self._reporter.failure(job.name, self.application_id,
                                   'the schedule override is invalid', exc)
            return job.schedule

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

    def _call(self, job: Job, occurrence: datetime, key: str,
              runtime: datetime | None) -> CallRequest:
        """The call that runs ``occurrence``: at ``runtime``, or at once."""
        started = runtime or self._clock()
        return CallRequest(
            self._url_for(job.name, self.base_url, self.application_id,
                          occurrence),
            job.timeout or self._trigger_timeout,
            partial(report_result, self._reporter, self._history, job,
                    self.application_id, key, occurrence, started,
                    notify=self._notify),
            [f'{OCCURRENCE_HEADER}: {occurrence.isoformat()}',
             f'{TRIGGER_HEADER}: scheduler', f'{RUN_HEADER}: {key}'],
            not_before=None if runtime is None else runtime.timestamp())

    def _record(self, job: Job, occurrence: datetime, key: str,
                outcome: Outcome) -> None:
        """Write down an occurrence that did not run, and why."""
        log.info('job %s (%s) at %s %s', job.name, self.application_id,
                 occurrence.isoformat(), {
                     Outcome.MISSED: 'missed' + (
                         ': jobs are held' if self.held else ''),
                     Outcome.SKIPPED: 'skipped: should_run said no',
                 }.get(outcome, outcome.value))
        self._history.record(
            self.application_id, job.name, trigger=Trigger.SCHEDULER,
            outcome=outcome, scheduled=occurrence, key=key)

    def _missed_while_held(self, job: Job, occurrence: datetime,
                           key: str) -> None:
        """Write down an occurrence missed because the jobs are held: the
        first of a hold opens the job's one record of it (logged once),
        each later one extends it."""
        holding = self._holding.get(job.name)
        if holding is None:
            self._holding[job.name] = _HeldRange(key, occurrence, occurrence)
            log.info('job %s (%s) at %s missed: jobs are held (one record '
                     'for the whole hold)', job.name, self.application_id,
                     occurrence.isoformat())
            self._history.missed(
                self.application_id, job.name, first=occurrence,
                last=occurrence, scheduled=occurrence, key=key,
                summary=missed_summary(1, occurrence, occurrence,
                                       WHILE_HELD))
            return
        holding.last = occurrence
        holding.count += 1
        self._history.more_missed(
            self.application_id, job.name, key=key, last=occurrence,
            summary=missed_summary(holding.count, holding.first, occurrence,
                                   WHILE_HELD))

    def _end_hold(self) -> None:
        """The hold is over (or this scheduler no longer fires): log what
        each job missed during it, once."""
        holding, self._holding = self._holding, {}
        for name, held in holding.items():
            log.info('job %s (%s): %s', name, self.application_id,
                     missed_summary(held.count, held.first, held.last,
                                    WHILE_HELD))

    def _claim(self, job: Job, occurrence: datetime, key: str) -> bool:
        """Whether this scheduler may run ``occurrence``: it claimed it.

        Without a store, always. A store that fails says no if hosts
        share it (no run without a claim; the outage is reported once by
        the history), and yes if it is the host's own.
        """
        store = self._history.store
        if store is None:
            return True
        won = self._history.read(lambda store: store.claim(
            self.application_id, job.name, occurrence, key=key,
            now=self._clock()), None)
        if won is None:
            return not store.coordinates
        if not won:
            log.info('job %s (%s) at %s: claimed by another run, not run '
                     'again', job.name, self.application_id,
                     occurrence.isoformat())
        return won

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

    def _catch_up(self, before: Lease, now: datetime,
                  claimed_before: datetime) -> None:
        """Run or record what fell due since ``before`` was last renewed.

        The window starts a lease's length before that renewal (but not
        before that holder took over: what fell due earlier was its own
        catch-up's business) and ends ``now``. Occurrences nobody claimed
        are missed; so are those claimed before ``claimed_before`` whose
        run never started (the claimer died before its call arrived): they
        run under their claim's key. A job's replays run one after
        another, and its fires wait behind them (see :meth:`_in_line`).
        What a job missed is logged and written down once, as one range
        (see :meth:`_missed_while_down`).
        """
        since = max(before.renewed - timedelta(seconds=self._lease_ttl),
                    before.acquired, now - timedelta(days=CLAIM_DAYS))
        for job in list(self._jobs.values()):
            schedule = self.schedule_of(job)
            settings = self.settings.get(job.name)
            if schedule is None or job.once or (
                    settings is not None and not settings.enabled):
                continue
            try:
                found = missed(job, schedule, self.application_id, since,
                               now)
            except Exception as exc:  # one job's bug must not stop others
                self._reporter.failure(job.name, self.application_id,
                                       'could not look for missed runs', exc)
                continue
            if not found.occurrences:
                continue
            first, last = found.occurrences[0], found.occurrences[-1]
            # the lambdas run at once, inside this turn of the loop
            claimed = self._history.read(lambda store: store.claimed(  # noqa: B023
                self.application_id, job.name, first, last), None)  # noqa: B023
            lost = self._history.read(lambda store: store.unstarted_claims(
                self.application_id, job.name, first, last,  # noqa: B023
                claimed_before=claimed_before), None)
            if claimed is None or lost is None:
                continue  # unknown, so nothing is run twice
            keys = {occurrence: key for key, occurrence in lost.items()}
            told = job.name in self._caught_up  # by a first look
            done = self._caught_up.setdefault(job.name, set())
            older = 0 if told else found.older
            unclaimed = [occurrence for occurrence in found.occurrences
                         if (occurrence not in claimed or occurrence in keys)
                         and occurrence not in done]
            done.update(unclaimed)
            if unclaimed or older:
                self._missed_while_down(job, schedule, now, unclaimed, keys,
                                        older, found.first)

    def _missed_while_down(self, job: Job, schedule: Schedule,
                           now: datetime, unclaimed: list[datetime],
                           keys: dict[datetime, str], older: int,
                           oldest: datetime | None) -> None:
        """Run what the job's policy runs of ``unclaimed``; log and write
        down the whole range once: how many, from when to when, and what
        was done.

        ``keys``: the claims whose run never started, run (or written
        down) under their key; ``older``: occurrences before
        ``unclaimed`` that were only counted, the oldest ``oldest``.
        """
        what = plan('skip' if self.held else job.misfire, unclaimed,
                    now=now, grace=job.grace, schedule=schedule)
        key = uuid.uuid4().hex
        # claimed in one go for the one record, under its key: a second
        # look, or a successor, finds them taken and written down
        fresh = [occurrence for occurrence in what.missed
                 if occurrence not in keys]
        counted = self._claim_all(job, fresh, key)
        counted += [occurrence for occurrence in what.missed
                    if occurrence in keys]
        calls, refused = [], 0
        for occurrence in what.run:
            run_key = keys.get(occurrence) or uuid.uuid4().hex
            if not self._claim(job, occurrence, run_key):
                continue
            counted.append(occurrence)
            if self._should_run(job):
                calls.append(self._call(job, occurrence, run_key, None))
            else:
                refused += 1
                self._record(job, occurrence, run_key, Outcome.SKIPPED)
        if not counted and not older:
            return  # all claimed by others meanwhile
        counted.sort()
        last = counted[-1] if counted else oldest
        first = oldest if older or not counted else counted[0]
        if first is None or last is None:
            return  # not reached: ``older`` comes with ``oldest``
        why = WHILE_DOWN
        if older:
            why += (f' (the oldest {older} only counted: the newest '
                    f'{len(unclaimed)} were looked at)')
        summary = missed_summary(len(counted) + older, first, last, why,
                                 self._what_was_done(job, what, len(calls),
                                                     refused))
        log.info('job %s (%s): %s', job.name, self.application_id, summary)
        # no scheduled occurrence: the record stands for a range, whose
        # newest may well have run now, in a record of its own
        self._history.missed(self.application_id, job.name, first=first,
                             last=last, scheduled=None, summary=summary,
                             key=key)
        if calls:
            self._in_line(job, calls)

    def _what_was_done(self, job: Job, what: Plan, ran: int,
                       refused: int) -> str:
        """What the policy did about a job's missed range, in words."""
        if self.held:
            return 'jobs are held: none ran'
        if job.misfire == 'skip':
            return "misfire='skip': none ran"
        if not what.run:
            grace = what.grace.total_seconds() if what.grace else 0
            return (f'misfire={job.misfire!r}: the newest was older than '
                    f'its grace of {grace:g} s: none ran')
        if job.misfire == 'once':
            done = 'the newest ran now' if ran else 'the newest did not run'
        elif ran == len(what.run) and not what.missed:
            done = f'all {ran} ran now, oldest first'
        else:
            done = (f'the newest {ran} ran now, oldest first; the older '
                    f'{len(what.missed)} did not')
        if refused:
            done += f' (should_run said no to {refused})'
        return f'misfire={job.misfire!r}: {done}'

    def _claim_all(self, job: Job, occurrences: list[datetime],
                   key: str) -> list[datetime]:
        """Those of ``occurrences`` this scheduler claimed for ``key``;
        like :meth:`_claim` for each, without a line for each one lost.
        """
        store = self._history.store
        if store is None or not occurrences:
            return list(occurrences)
        now = self._clock()
        won = self._history.read(lambda store: [
            occurrence for occurrence in occurrences
            if store.claim(self.application_id, job.name, occurrence,
                           key=key, now=now)], None)
        if won is None:
            return [] if store.coordinates else list(occurrences)
        return won

    def _in_line(self, job: Job, calls: list[CallRequest]) -> None:
        """Call ``calls`` of ``job`` now, or after its calls in line.

        Several calls (a job's replays) form a line: each starts when the
        one before it is done. While a line is under way, the job's other
        calls (its fires as they fall due, a second catch-up pass) join
        its end, so a job's replays and fires never meet, where the
        second would find the first still running and not run.
        """
        with self._lines_lock:
            line = self._lines.get(job.name)
            if line is not None:
                line.extend(calls)
                return
            if len(calls) == 1:
                self._due.append(calls[0])
                return
            line = self._lines[job.name] = calls[1:]
        self._due.append(self._ahead(job.name, line, calls[0]))

    def _ahead(self, name: str, line: list[CallRequest],
               call: CallRequest) -> CallRequest:
        """``call``, handing over to the next in ``line`` when done (on
        the caller's thread); the last one done ends the line."""
        report = call.on_done

        def done(result: CallResult) -> None:
            try:
                report(result)
            finally:
                with self._lines_lock:
                    follow = line.pop(0) if line else None
                    if follow is None and self._lines.get(name) is line:
                        del self._lines[name]
                if follow is not None and not self._halted:
                    self._pool.submit([self._ahead(name, line, follow)])

        return call._replace(on_done=done)

    def _should_run(self, job: Job) -> bool:
        """The job's pre-check; an error in it is a no (reported once per
        exception type): the job does not run."""
        if job.should_run is None:
            return True
        try:
            return bool(job.should_run(self.application_id))
        except Exception as exc:  # the application's own code
            self._failures.report('should_run', exc, 'the occurrence is '
                                  'skipped, not run', job=job.name,
                                  application_id=self.application_id)
            return False

