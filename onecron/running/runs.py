"""A scheduler's run bookkeeping: claims, calls, records, lines, holds.

What a :class:`~onecron.running.scheduler.Scheduler` does with an
occurrence once it fires (or is caught up): claim it in the store, ask the
job's ``should_run``, hand its call over (a job's replays in line, one
after another), and write down what did not run, or failed where the
endpoint never saw it. The timing (when to fire, the lock and the lease)
is the scheduler's; what was missed while none ran is
:mod:`~onecron.running.catchup`'s.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from onecron.job import BAD_OVERRIDE, Job, claim
from onecron.protocol.headers import (
    OCCURRENCE_HEADER,
    RUN_HEADER,
    TRIGGER_HEADER,
)
from onecron.reporting import CallbackFailures, Reporter
from onecron.running.caller import CallRequest, CallResult
from onecron.running.mail import Notify
from onecron.running.pool import Pool
from onecron.schedule.clock import SystemClock
from onecron.schedule.rules import Schedule
from onecron.stores.base import JobSettings, Outcome, Trigger
from onecron.stores.history import History, missed_summary

log = logging.getLogger('onecron.running.scheduler')

#: ``url_for(job_name, base_url, application_id, occurrence)``: the URL
#: a fire calls (static, or made for that one occurrence)
UrlFor = Callable[[str, str, str, datetime], str]

#: why occurrences were missed, in their record
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


class RunBook:
    """The run bookkeeping of a scheduler (its base class): the state it
    reads is the scheduler's, set in its ``__init__``."""

    application_id: str
    base_url: str
    active_since: datetime | None
    #: the operator's switches, as last read from the store
    settings: dict[str, JobSettings]
    #: whether the operator holds all jobs
    held: bool
    _jobs: Mapping[str, Job]
    _url_for: UrlFor
    _pool: Pool
    _reporter: Reporter
    _failures: CallbackFailures
    _history: History
    _notify: Notify | None
    _clock: SystemClock
    _trigger_timeout: float
    _stopped: bool
    _due: list[CallRequest]
    _lines: dict[str, list[CallRequest]]
    _lines_lock: threading.Lock
    _holding: dict[str, _HeldRange]

    @property
    def _halted(self) -> bool:
        """Whether firing must stop: stopped, or stepped down."""
        return self._stopped or self.active_since is None

    def schedule_of(self, job: Job) -> Schedule | None:
        """The job's schedule, or the operator's override of it."""
        return job.schedule_in_force(self.settings.get(job.name), partial(
            self._reporter.failure, job.name, self.application_id,
            BAD_OVERRIDE))

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
        won = claim(self._history, self.application_id, job.name,
                    occurrence, key, self._clock())
        if won is None:
            return False
        if not won:
            log.info('job %s (%s) at %s: claimed by another run, not run '
                     'again', job.name, self.application_id,
                     occurrence.isoformat())
        return won

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

