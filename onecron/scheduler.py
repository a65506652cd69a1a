"""The scheduler: a thread per application id that fires its jobs on time.

It first takes the host lock of its application id (standing by and retrying
while another process holds it) and, with a store, the application id's
lease, which makes it the one active scheduler of all hosts sharing the
store (standing by while another holds it and renews it). Then it keeps
every job's next fire time in a :mod:`sched` queue and, when one is due,
claims the occurrence in the store and hands the job URL to the
:class:`~onecron.caller.Caller`, which calls it concurrently with all
others. Each job is rescheduled right away, so a failed, slow or hung run
never delays the next one.

A scheduler that takes over (after a restart, or from a host that died)
first looks for occurrences that fell due while none ran, and runs or
records them per the jobs' ``misfire`` policy (:mod:`onecron.misfire`).
"""

from __future__ import annotations

import logging
import os
import sched
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial

from .caller import CallRequest, CallResult
from .clock import Clock, utcnow
from .headers import OCCURRENCE_HEADER, RUN_HEADER, TRIGGER_HEADER
from .history import History
from .job import Job
from .lock import HostLock
from .mail import Notify
from .misfire import missed, plan
from .pool import Pool
from .reporting import Reporter
from .schedule import Schedule
from .store import (CLAIM_DAYS, JobSettings, Lease, Outcome, SchedulerInfo,
                    Trigger)

log = logging.getLogger(__name__)

#: the longest single sleep: after a wall-clock jump we notice within this
MAX_SLEEP = 60.0

UrlFor = Callable[[str, str], str]

#: how long before its time a call is handed, armed, to the caller, which
#: starts it on time (the scheduler's own wake-up is less precise)
ARM_AHEAD = 0.05

#: seconds between looks at the store: switches, overrides, holds, and the
#: scheduler's heartbeat
POLL_INTERVAL = 2.0
#: seconds between retention passes over the store
PRUNE_INTERVAL = 600.0


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

    :param application_id: whose jobs these are
    :param base_url: the application URL the job URLs are built on
    :param jobs: the registered jobs by name, read when the lock is taken
    :param url_for: ``url_for(job_name, base_url)`` gives a job's URL
    :param lock: the host lock for this application id
    :param pool: makes the HTTP calls, within the application's pool
    :param reporter: where failed calls are reported
    :param history: where runs are written and switches read
    :param clock: gives the current aware datetime
    :param trigger_timeout: total seconds allowed for one call
    :param standby_interval: seconds between attempts to take the lock
    :param lease_time: with a store: how long after the last renewal
        another host takes over (see :class:`~onecron.store.Lease`)
    """

    def __init__(self, application_id: str, base_url: str, *,
                 jobs: Mapping[str, Job], url_for: UrlFor, lock: HostLock,
                 pool: Pool, reporter: Reporter, history: History,
                 clock: Clock = utcnow, trigger_timeout: float = 3600.0,
                 standby_interval: float = 0.5,
                 keep_runs: int | None = None,
                 keep_days: float | None = None,
                 notify: Notify | None = None,
                 lease_time: float = 30.0) -> None:
        self.application_id = application_id
        self.base_url = base_url
        self.lock = lock
        self.pid = os.getpid()
        self.active_since: datetime | None = None
        self._jobs = jobs
        self._url_for = url_for
        self._pool = pool
        self._reporter = reporter
        self._history = history
        self._notify = notify
        self._keep = (keep_runs, keep_days)
        self._pruned = 0.0
        self.host = socket.gethostname()
        #: who this scheduler is, in the store's lease
        self.holder = f'{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}'
        #: the scope of the host lock: its host and directory
        self.node = f'{self.host}:{os.path.dirname(lock.path)}'
        # a standby looks every retry seconds, so a lease that is not
        # renewed is taken over within ttl + retry = lease_time
        self._lease_retry = min(2.0, lease_time / 6)
        self._lease_ttl = lease_time - self._lease_retry
        self._renew_every = self._lease_ttl / 3
        self._poll_interval = min(POLL_INTERVAL, self._renew_every)
        self._renewed = 0.0  # time.monotonic() of the last renewal
        self._demoted = False
        #: the operator's switches, as last read from the store
        self.settings: dict[str, JobSettings] = {}
        #: whether the operator holds all jobs
        self.held = False
        self._clock = clock
        self._trigger_timeout = trigger_timeout
        self._standby_interval = standby_interval
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._mutex = threading.Lock()
        self._queue = sched.scheduler(self._timestamp, self._sleep)
        #: calls due now, handed over together by _flush
        self._due: list[CallRequest] = []
        #: jobs fired since the last _reschedule, with their fire times
        self._fired: list[tuple[Job, datetime]] = []
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name=f'onecron-scheduler[{application_id}]')

    # -- control --------------------------------------------------------

    def start(self) -> None:
        """Start the thread; it stands by until it holds the lock."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop firing, release the lock and wait for the thread to end."""
        self._stopping.set()
        with self._mutex:
            self._cancel_all()
        self._wake.set()
        if self._thread.is_alive() and (
                self._thread is not threading.current_thread()):
            self._thread.join(timeout)

    def forget(self) -> None:
        """In a forked child: drop the inherited lock without releasing it."""
        self._stopping.set()
        self.lock.forget()

    def add_job(self, job: Job) -> None:
        """Schedule a job registered after the scheduler became active."""
        with self._mutex:
            if self.active_since is not None and not self._stopping.is_set():
                self._enter(job, self._clock())

    @property
    def alive(self) -> bool:
        """Whether the thread runs in this process (not a pre-fork copy)."""
        return self.pid == os.getpid() and self._thread.is_alive()

    @property
    def active(self) -> bool:
        """Whether this scheduler holds the lock (and the lease, with a
        store) and fires the jobs."""
        return (self.alive and self.lock.held
                and self.active_since is not None)

    @property
    def _halted(self) -> bool:
        """Whether firing must stop: stopping, or stepped down."""
        return self._demoted or self._stopping.is_set()

    def _cancel_all(self) -> None:
        """Empty the queue (the caller holds ``_mutex`` or is the thread)."""
        for event in self._queue.queue:
            try:
                self._queue.cancel(event)
            except ValueError:
                pass  # fired meanwhile

    def upcoming(self) -> list[tuple[datetime, str]]:
        """The queued fire times with job names, soonest first."""
        return [(event.argument[1], event.argument[0].name)
                for event in self._queue.queue if event.argument]

    def next_run(self, name: str) -> datetime | None:
        """When the job called ``name`` fires next (None: not queued)."""
        runs = [runtime for runtime, job in self.upcoming() if job == name]
        return runs[0] if runs else None

    def __repr__(self) -> str:
        state = ('active' if self.active else
                 'standing by' if self.alive else 'stopped')
        return (f'<Scheduler {self.application_id!r} {state} '
                f'pid={self.pid} {self.base_url}>')

    # -- the thread -----------------------------------------------------

    def _timestamp(self) -> float:
        return self._clock().timestamp()

    def _sleep(self, seconds: float) -> None:
        # sched calls this with 0 after each fire, and with the time to the
        # next event once nothing more is due: the moment to hand over the
        # calls gathered so far (one batch for a burst), and only then to
        # compute the fired jobs' next runs. sched re-reads its queue after
        # every call, so returning early (after rescheduling, for a new
        # job, to stop) is always safe.
        if seconds <= 0:
            return
        self._flush()
        if self._fired:
            self._reschedule()
            return
        self._wake.wait(min(seconds, MAX_SLEEP))
        self._wake.clear()

    def _flush(self) -> None:
        due, self._due = self._due, []
        if due and not self._halted:
            self._pool.submit(due)

    def _reschedule(self) -> None:
        fired, self._fired = self._fired, []
        now = self._clock()
        with self._mutex:
            if self._halted:
                return
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

    def _run(self) -> None:
        try:
            if not self._take_lock():
                return
            while True:
                taken, before = self._take_lease()
                if not taken:
                    break
                self._activate(before)
                self._serve()
                self._deactivate()
                if self._stopping.is_set():
                    break
        except Exception:  # never silent: the model's thread died quietly
            log.exception('scheduler for %r crashed', self.application_id)
            self._reporter.failure('*', self.application_id,
                                   'scheduler crashed')
        finally:
            self._deactivate()
            self._history.read(lambda store: store.release_lease(
                self.application_id, self.holder), None)
            if self.pid == os.getpid():
                self.lock.release()

    def _activate(self, before: Lease | None) -> None:
        """Become the active scheduler: catch up, then queue every job."""
        log.info('scheduler for %r is active in process %d',
                 self.application_id, self.pid)
        with self._mutex:
            now = self._clock()
            self.active_since = now
            self._poll(reschedule=False)
            if before is not None:
                self._catch_up(before, now)
            for job in list(self._jobs.values()):
                self._enter(job, now)

    def _serve(self) -> None:
        """Fire jobs until stopped or stepped down."""
        while True:
            self._queue.run()
            self._flush()
            if self._halted:
                break
            if self._fired:
                self._reschedule()
                continue
            # nothing queued (all jobs were once=True): wait for more
            self._wake.wait()
            self._wake.clear()

    def _deactivate(self) -> None:
        """Stop being the active scheduler (stopping, or stepped down)."""
        with self._mutex:
            self._cancel_all()
            self._due, self._fired = [], []
            self._demoted = False
            if self.active_since is None:
                return
            self.active_since = None
        self._history.read(lambda store: store.forget_scheduler(
            self.application_id, self.host, self.pid), None)

    def _take_lock(self) -> bool:
        """Stand by until the lock is ours; False when stopped first."""
        while not self._stopping.is_set():
            if self.lock.acquire():
                return True
            self._stopping.wait(self._standby_interval)
        return False

    def _poll(self, reschedule: bool = True) -> None:
        """Read the operator's switches, renew the lease, beat the heart,
        prune; repeat."""
        if self._halted or self._history.store is None:
            return  # without a store there is nothing to look at
        now = self._clock()
        app_id = self.application_id
        history = self._history
        settings = history.read(lambda store: store.job_settings(app_id),
                                self.settings)
        self.held = history.read(lambda store: store.hold(app_id).held,
                                 self.held)
        changed = {name for name in set(settings) | set(self.settings)
                   if settings.get(name) != self.settings.get(name)}
        self.settings = settings
        since = self.active_since or now
        self._renew()
        if self._demoted:
            return
        history.read(lambda store: store.heartbeat(SchedulerInfo(
            app_id, self.host, self.pid, since, now)), None)
        if time.monotonic() - self._pruned > PRUNE_INTERVAL:
            self._pruned = time.monotonic()
            keep_runs, keep_days = self._keep
            history.read(lambda store: store.prune(
                now=now, keep_runs=keep_runs, keep_days=keep_days), 0)
        if reschedule:
            for name in changed:
                job = self._jobs.get(name)
                if job is not None:
                    self._replace(job, now)
        self._queue.enter(self._poll_interval, 1, self._poll)

    def _replace(self, job: Job, now: datetime) -> None:
        """Schedule ``job`` anew (its override changed)."""
        for event in self._queue.queue:
            if event.argument and event.argument[0] is job:
                try:
                    self._queue.cancel(event)
                except ValueError:
                    pass  # fired meanwhile
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
        self._queue.enterabs(runtime.timestamp() - ARM_AHEAD, 0, self._fire,
                             (job, runtime))
        self._wake.set()

    def _fire(self, job: Job, runtime: datetime) -> None:
        if self._halted:
            return
        self._fired.append((job, runtime))
        occurrence = job.occurrence_of(runtime, self.application_id)
        key = uuid.uuid4().hex
        # claimed even when disabled: a successor must not catch it up
        if not self._claim(job, occurrence, key):
            return
        settings = self.settings.get(job.name)
        if settings is not None and not settings.enabled:
            return
        if self.held or not self._should_run(job):
            self._record(job, occurrence, key, Outcome.MISSED if self.held
                         else Outcome.SKIPPED)
            return
        self._due.append(self._call(job, occurrence, key, runtime))

    def _call(self, job: Job, occurrence: datetime, key: str,
              runtime: datetime | None) -> CallRequest:
        """The call that runs ``occurrence``: at ``runtime``, or at once."""
        started = runtime or self._clock()
        return CallRequest(
            self._url_for(job.name, self.base_url),
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

    def _take_lease(self) -> tuple[bool, Lease | None]:
        """Stand by until this scheduler holds the application id's lease.

        Returns (False, None) when stopped first, else True and the lease
        as it was before (None: never held, or no store to hold it in).
        A host-local store that fails does not keep the jobs from running.
        """
        store = self._history.store
        if store is None:
            return True, None
        said = False
        while not self._stopping.is_set():
            result = self._history.read(lambda store: store.take_lease(
                self.application_id, holder=self.holder, node=self.node,
                ttl=self._lease_ttl, now=self._clock()), None)
            if result is None and not store.coordinates:
                return True, None
            if result is not None:
                taken, before = result
                if taken:
                    self._renewed = time.monotonic()
                    return True, before
                if not said and before is not None:
                    said = True
                    log.info('scheduler for %r stands by: %s holds the '
                             'lease until %s', self.application_id,
                             before.holder, before.expires.isoformat())
            self._stopping.wait(self._lease_retry)
        return False, None

    def _renew(self) -> None:
        """Renew the lease; step down if another scheduler took it over,
        or if the store failed for so long that one may have."""
        store = self._history.store
        if store is None or (
                time.monotonic() - self._renewed < self._renew_every):
            return
        result = self._history.read(lambda store: store.take_lease(
            self.application_id, holder=self.holder, node=self.node,
            ttl=self._lease_ttl, now=self._clock()), None)
        if result is not None and result[0]:
            self._renewed = time.monotonic()
        elif result is not None:
            holder = result[1].holder if result[1] else '?'
            self._demote(f'{holder} took over the lease')
        elif store.coordinates and (time.monotonic() - self._renewed
                                    > self._lease_ttl - self._lease_retry):
            self._demote('the lease could not be renewed in time')

    def _demote(self, why: str) -> None:
        """Stop firing and stand by again: another scheduler is active."""
        log.warning('scheduler for %r steps down: %s', self.application_id,
                    why)
        self._demoted = True
        self._cancel_all()

    def _catch_up(self, before: Lease, now: datetime) -> None:
        """Run or record what fell due since ``before`` was last renewed.

        The window starts a lease's length before that renewal (but not
        before that holder took over: what fell due earlier was its own
        catch-up's business); the claims tell what ran in it. A job's
        replays run one after another, never beside each other.
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
            claimed = self._history.read(lambda store: store.claimed(
                self.application_id, job.name, first, last), None)
            if claimed is None:
                continue  # unknown, so nothing is run twice
            unclaimed = [occurrence for occurrence in found.occurrences
                         if occurrence not in claimed]
            what = plan('skip' if self.held else job.misfire, unclaimed,
                        now=now, grace=job.grace, schedule=schedule)
            if found.older:
                log.warning('job %s (%s): %d more occurrences were missed '
                            'before %s; not recorded one by one', job.name,
                            self.application_id, found.older,
                            first.isoformat())
            if unclaimed:
                log.info('job %s (%s): %d occurrence(s) missed while no '
                         'scheduler ran; running %d now (misfire=%r)',
                         job.name, self.application_id, len(unclaimed),
                         len(what.run), job.misfire)
            for occurrence in what.missed:
                key = uuid.uuid4().hex
                if self._claim(job, occurrence, key):
                    self._record(job, occurrence, key, Outcome.MISSED)
            calls = []
            for occurrence in what.run:
                key = uuid.uuid4().hex
                if self._claim(job, occurrence, key):
                    if self._should_run(job):
                        calls.append(self._call(job, occurrence, key, None))
                    else:
                        self._record(job, occurrence, key, Outcome.SKIPPED)
            if calls:
                self._due.append(self._in_turn(calls))
        self._flush()

    def _in_turn(self, calls: list[CallRequest]) -> CallRequest:
        """The first of ``calls``; each hands over the next when done."""
        head, *rest = calls
        if not rest:
            return head
        follow = self._in_turn(rest)
        report = head.on_done

        def done(result: CallResult) -> None:
            try:
                report(result)
            finally:
                if not self._halted:
                    self._pool.submit([follow])

        return head._replace(on_done=done)

    def _should_run(self, job: Job) -> bool:
        """The job's pre-check; an error in it runs the job anyway."""
        if job.should_run is None:
            return True
        try:
            return bool(job.should_run(self.application_id))
        except Exception as exc:
            self._reporter.failure(job.name, self.application_id,
                                   'should_run raised; running anyway', exc)
            return True

