"""Writing runs down: the store as seen by the endpoint and the scheduler.

A store that fails (locked, disk full, file removed) must never stop a job
or the scheduler: every call here catches the store's error, reports the
outage once (log and Sentry) and reports again only after the store has
come back and failed anew.

Occurrences that were missed (while no scheduler ran, or while the jobs
were held) are written as one record per job and downtime, not one per
occurrence: a run with outcome ``missed`` whose ``started`` is the oldest
missed occurrence, ``ended`` the newest, and whose ``output`` starts with
how many (:func:`missed_summary`); :func:`missed_range` reads it back.
Nothing ran, so such a record has no start time or duration of a run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from onecron.reporting import Reporter
from onecron.schedule.clock import Clock
from onecron.stores.base import Outcome, Run, Store, StoreError, Trigger

log = logging.getLogger(__name__)

T = TypeVar('T')

_COUNT = re.compile(r'missed (\d+) occurrences? ')


@dataclass(frozen=True)
class MissedRange:
    """What a ``missed`` record stands for: ``count`` occurrences, from
    ``first`` to ``last`` (the same for one)."""

    count: int
    first: datetime
    last: datetime


def missed_summary(count: int, first: datetime, last: datetime, why: str,
                   done: str = '') -> str:
    """The one line that says what was missed, ``why``, and what was
    ``done`` about it, as logged and stored: ``missed 540 occurrences
    from … to … while no scheduler ran; misfire='once': the newest ran
    now``."""
    if count == 1:
        text = f'missed 1 occurrence at {first.isoformat()}'
    else:
        text = (f'missed {count} occurrences from {first.isoformat()} '
                f'to {last.isoformat()}')
    text += f' {why}'
    return f'{text}; {done}' if done else text


def missed_range(run: Run) -> MissedRange | None:
    """The occurrences a ``missed`` record stands for; None for a run.

    A record written before records covered ranges (one per occurrence,
    its ``started`` the time it was written) stands for its
    ``scheduled`` occurrence alone.
    """
    if run.outcome is not Outcome.MISSED:
        return None
    match = _COUNT.match(run.output)
    if match is None:
        at = run.scheduled or run.started
        return MissedRange(1, at, at)
    return MissedRange(int(match[1]), run.started, run.ended or run.started)


class History:
    """Failure-tolerant run records on an optional :class:`Store`."""

    def __init__(self, store: Store | None, *, reporter: Reporter,
                 clock: Clock) -> None:
        self.store = store
        self._reporter = reporter
        self._clock = clock
        self._down = False

    def read(self, query: Callable[[Store], T], default: T) -> T:
        """``query(store)``, or ``default`` without a store or on failure."""
        if self.store is None:
            return default
        try:
            value = query(self.store)
        except StoreError as exc:
            self._failed(exc)
            return default
        self._up()
        return value

    def started(self, application_id: str, job: str, *, trigger: Trigger,
                scheduled: datetime | None = None,
                key: str | None = None) -> int | None:
        """Write a run as it starts; its id, or None.

        Raises :class:`~onecron.stores.base.RunKeyTaken` (not a failure of the
        store: it is not caught) if a run of this job has started with
        ``key`` already; nothing is written, and the job must not run.
        """
        # read() spelled out, here and in finished(): every job run passes
        store = self.store
        if store is None:
            return None
        try:
            run_id = store.start_run(application_id, job, trigger=trigger,
                                     started=self._clock(),
                                     scheduled=scheduled, key=key)
        except StoreError as exc:
            self._failed(exc)
            return None
        if self._down:
            self._up()
        return run_id

    def finished(self, run_id: int | None, *, outcome: Outcome,
                 http_status: int | None = None, output: str = '',
                 error: str | None = None) -> None:
        """Complete the run ``started`` returned (no-op for None)."""
        store = self.store
        if run_id is None or store is None:
            return
        try:
            store.finish_run(run_id, ended=self._clock(), outcome=outcome,
                             http_status=http_status, output=output,
                             error=error)
        except StoreError as exc:
            self._failed(exc)
            return
        if self._down:
            self._up()

    def record(self, application_id: str, job: str, *, trigger: Trigger,
               outcome: Outcome, scheduled: datetime | None = None,
               started: datetime | None = None,
               http_status: int | None = None, output: str = '',
               error: str | None = None, key: str | None = None) -> None:
        """Write a whole run at once (skipped, missed, failed to call)."""
        now = self._clock()
        self.read(lambda store: store.record_run(
            application_id, job, trigger=trigger, started=started or now,
            ended=now, outcome=outcome, scheduled=scheduled,
            http_status=http_status, output=output, error=error, key=key),
            None)

    def missed(self, application_id: str, job: str, *, first: datetime,
               last: datetime, scheduled: datetime | None, summary: str,
               key: str) -> None:
        """Write one record for occurrences missed from ``first`` to
        ``last`` (``summary`` says how many, see :func:`missed_summary`);
        ``key`` is the key their claims carry, so that they are not taken
        for claims whose run never started."""
        self.read(lambda store: store.record_run(
            application_id, job, trigger=Trigger.SCHEDULER, started=first,
            ended=last, outcome=Outcome.MISSED, scheduled=scheduled,
            output=summary, key=key), None)

    def more_missed(self, application_id: str, job: str, *, key: str,
                    last: datetime, summary: str) -> None:
        """Extend the record :meth:`missed` wrote with ``key`` up to
        ``last``, now saying ``summary``."""
        self.read(lambda store: store.finish_run_by_key(
            key, application_id=application_id, job=job, ended=last,
            outcome=Outcome.MISSED, output=summary), None)

    def timed_out(self, application_id: str, job: str, *, key: str,
                  scheduled: datetime | None, started: datetime,
                  error: str) -> None:
        """Mark the run ``key`` timed out, or write it if it never began."""
        if not self.read(lambda store: store.finish_run_by_key(
                key, application_id=application_id, job=job,
                ended=self._clock(), outcome=Outcome.TIMED_OUT,
                error=error), True):
            self.record(application_id, job, trigger=Trigger.SCHEDULER,
                        outcome=Outcome.TIMED_OUT, scheduled=scheduled,
                        started=started, error=error, key=key)

    def _failed(self, exc: StoreError) -> None:
        if not self._down:
            self._down = True
            self._reporter.failure('*', '*', f'the run store failed: {exc}',
                                   exc)

    def _up(self) -> None:
        if self._down:
            self._down = False
            log.warning('the run store works again')

    def __repr__(self) -> str:
        return f'<History {self.store!r}{" down" if self._down else ""}>'
