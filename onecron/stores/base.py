"""The run store: what ran, when, how it ended, and the operators' switches.

Storage-independent: the interface every backend implements
(:class:`Store`), which checks and normalises every argument once; the
records it returns are in :mod:`onecron.stores.records` (and importable
from here), the roles a consumer may type against in
:mod:`onecron.stores.roles`. No I/O happens here; :mod:`onecron.stores.sqlite`
is the default backend, and :func:`onecron.stores.open_store` turns a
setting into a store.

All datetimes are aware: arguments in any zone, stored as UTC and returned
as aware UTC datetimes. A naive datetime is refused with ``ValueError``.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TypeVar

from onecron.errors import RunKeyTaken as RunKeyTaken
from onecron.errors import StoreError as StoreError
from onecron.stores.records import CLAIM_DAYS as CLAIM_DAYS
from onecron.stores.records import MAX_OUTPUT as MAX_OUTPUT
from onecron.stores.records import Hold as Hold
from onecron.stores.records import JobSettings as JobSettings
from onecron.stores.records import Lease as Lease
from onecron.stores.records import Outcome as Outcome
from onecron.stores.records import Run as Run
from onecron.stores.records import SchedulerInfo as SchedulerInfo
from onecron.stores.records import Trigger as Trigger
from onecron.stores.records import _bounded_or_none, _utc_or_none
from onecron.stores.records import _redacted as _redacted
from onecron.stores.records import bounded as bounded
from onecron.stores.records import storable as storable
from onecron.stores.records import utc as utc

log = logging.getLogger(__name__)

_S = TypeVar('_S', bound='Store')


class Store(abc.ABC):
    """Where runs, job settings, holds and scheduler heartbeats are kept.

    A store is shared by every thread and process of a host (or, with a
    database server, of all hosts). Its methods raise :class:`StoreError`
    when the backend fails; callers log it and carry on.

    Every public method that takes a time, a bound or a text to keep is
    implemented here once, as a template: it checks and normalises its
    arguments (aware times to UTC, texts :func:`storable` and bounded,
    limits and lifetimes checked) and calls the backend's method of the
    same name with a leading underscore (:meth:`_start_run`,
    :meth:`_finish`, :meth:`_runs`, ...), which never sees a naive time
    or a text it cannot store. The methods are grouped by role, each a
    protocol of :mod:`onecron.stores.roles` that a store satisfies.
    """

    # --- runs: written when they start, completed when they end ---------

    def start_run(self, application_id: str, job: str, *, trigger: Trigger,
                  started: datetime, scheduled: datetime | None = None,
                  key: str | None = None) -> int:
        """Record a run as it starts (no outcome yet); return its id.

        A ``key`` is unique per application id and job (the same key on
        another job or application id is another run). If a run of this
        job has started with ``key`` already, raise :class:`RunKeyTaken`
        and write nothing: a call repeated with the same key must not run
        the job again, nor rewrite the first run. A run only recorded with
        ``key`` (:meth:`record_run`: the scheduler found the call timed
        out or failed before it began) is the run that starts now: its id
        is returned, and the end completes it.
        """
        # every job run passes here and in finish_run: no call to spare
        if trigger.__class__ is not Trigger:
            trigger = Trigger(trigger)
        return self._start_run(
            application_id, job, None if scheduled is None else utc(scheduled),
            trigger, utc(started), None if key is None else storable(key))

    def finish_run(self, run_id: int, *, ended: datetime, outcome: Outcome,
                   http_status: int | None = None, output: str = '',
                   error: str | None = None) -> None:
        """Complete the run ``run_id``; an unknown id is a no-op.

        A run already marked TIMED_OUT keeps that outcome; the rest is
        filled in. See :meth:`_finish` for the exact rule.
        """
        if outcome.__class__ is not Outcome:
            outcome = Outcome(outcome)
        if not self._finish(run_id, None, utc(ended), outcome, http_status,
                            bounded(output) if output else output,
                            None if error is None else bounded(error)):
            log.warning('no run %d to finish in %r (pruned?)', run_id, self)

    def finish_run_by_key(self, key: str, *, application_id: str, job: str,
                          ended: datetime, outcome: Outcome,
                          http_status: int | None = None, output: str = '',
                          error: str | None = None) -> bool:
        """Complete the run of ``application_id`` and ``job`` with ``key``,
        like :meth:`finish_run`.

        False if no run of that job has that key; a run of another job or
        application id with the same key is never touched.
        """
        return self._finish(None, (application_id, job, storable(key)),
                            utc(ended), Outcome(outcome), http_status,
                            bounded(output), _bounded_or_none(error))

    def record_run(self, application_id: str, job: str, *, trigger: Trigger,
                   started: datetime, ended: datetime, outcome: Outcome,
                   scheduled: datetime | None = None,
                   http_status: int | None = None, output: str = '',
                   error: str | None = None, key: str | None = None) -> int:
        """Record a complete run at once (skipped, missed); return its id.

        A ``key`` that a run of this job has (started or recorded) makes
        it a no-op returning that run's id.
        """
        return self._insert_run(Run(
            0, application_id, job, _utc_or_none(scheduled), Trigger(trigger),
            utc(started), utc(ended), Outcome(outcome), http_status,
            bounded(output), _bounded_or_none(error),
            None if key is None else storable(key)))

    @abc.abstractmethod
    def _start_run(self, application_id: str, job: str,
                   scheduled: datetime | None, trigger: Trigger,
                   started: datetime, key: str | None) -> int:
        """Store a run that starts now; return its id.

        With a ``key``, atomically: a new run if no run of
        ``application_id`` and ``job`` has that key; the id of one that
        was only recorded (:meth:`_insert_run`), now marked as started;
        :class:`RunKeyTaken`, writing nothing, if one has started with it.
        Its own method so that a backend can write the one row of every
        job run with the fewest steps; times are UTC, the key storable.
        """

    @abc.abstractmethod
    def _insert_run(self, run: Run) -> int:
        """Store ``run`` (its ``id`` is ignored) as recorded, not started,
        and return the new id.

        If a run of ``run.application_id`` and ``run.job`` has ``run.key``
        already, write nothing and return its id. Times are UTC, texts
        already storable and bounded.
        """

    @abc.abstractmethod
    def _finish(self, run_id: int | None, key: tuple[str, str, str] | None,
                ended: datetime, outcome: Outcome, http_status: int | None,
                output: str, error: str | None) -> bool:
        """Complete the run with ``run_id``, or else the run of
        ``key``: (application id, job, run key); False if none.

        The rule, so that a timeout and the job's own end may arrive in
        either order: TIMED_OUT, once stored, stays the outcome; a TIMED_OUT
        for a run that has already ended keeps its ``ended``; ``http_status``
        and ``error`` are replaced only by a value, ``output`` only by a
        non-empty one.
        """

    def runs(self, application_id: str, job: str | None = None, *,
             limit: int = 50, before_id: int | None = None) -> list[Run]:
        """Runs of an application id (or one of its jobs), newest first.

        At most ``limit``; pass the last id seen as ``before_id`` for the
        next page.
        """
        if limit < 0:
            raise ValueError(f'limit {limit} is negative')
        return self._runs(application_id, job, limit, before_id)

    def _runs(self, application_id: str, job: str | None, limit: int,
              before_id: int | None) -> list[Run]:
        """:meth:`runs`, ``limit`` checked. Backends implement this (a
        store written before it existed overrides :meth:`runs`)."""
        raise NotImplementedError(f'{type(self).__name__}._runs')

    @abc.abstractmethod
    def last_runs(self, application_id: str) -> dict[str, Run]:
        """The newest run of each job of ``application_id``, by job name."""

    @abc.abstractmethod
    def get_run(self, run_id: int) -> Run | None:
        """The run ``run_id``, or None."""

    def prune(self, *, now: datetime, keep_runs: int | None = None,
              keep_days: float | None = None) -> int:
        """Delete old runs; return how many were deleted.

        A finished run goes when it is not among the newest ``keep_runs``
        of its application id and job, or when it started more than
        ``keep_days`` days before ``now``. An unfinished run goes only by
        age, never when ``keep_days`` is None. Both None: no run goes.
        Claims of occurrences more than :data:`CLAIM_DAYS` days before
        ``now`` always go (they are not counted in the result).
        """
        if keep_runs is not None and keep_runs < 0:
            raise ValueError(f'keep_runs {keep_runs} is negative')
        if keep_days is not None and keep_days < 0:
            raise ValueError(f'keep_days {keep_days} is negative')
        now = utc(now)
        cutoff = None if keep_days is None else now - timedelta(days=keep_days)
        return self._prune(keep_runs, cutoff,
                           now - timedelta(days=CLAIM_DAYS))

    @abc.abstractmethod
    def _prune(self, keep_runs: int | None, cutoff: datetime | None,
               claims_before: datetime) -> int:
        """Delete what :meth:`prune` describes; times are in UTC.

        Delete finished runs beyond the newest ``keep_runs`` per
        application id and job (none if None), all runs started before
        ``cutoff`` (none if None), and the claims of occurrences before
        ``claims_before``. Return the number of runs deleted.
        """

    # --- claims: one run per occurrence, whoever asks ----------------------

    #: whether hosts share this store, so that a claim is needed to fire:
    #: a store that cannot be reached then means no run (a host-local store
    #: adds nothing to the host lock, and failing open keeps jobs running)
    coordinates: bool = False

    def claim(self, application_id: str, job: str, scheduled: datetime, *,
              key: str, now: datetime) -> bool:
        """Claim the occurrence ``scheduled`` of a job for the run ``key``.

        True if ``key`` holds the claim now: the occurrence was free, or
        ``key`` claimed it before (a retried call). False if another run
        holds it. The claim is keyed by the nominal time, not by a clock
        reading, so hosts whose clocks disagree claim the same key; only
        the process that wrote it fires. ``now`` is kept as the time of
        the claim.
        """
        return self._claim(application_id, job, utc(scheduled),
                           storable(key), utc(now))

    @abc.abstractmethod
    def _claim(self, application_id: str, job: str, scheduled: datetime,
               key: str, now: datetime) -> bool:
        """:meth:`claim`, with UTC times: one atomic insert-if-absent."""

    def claimed(self, application_id: str, job: str, since: datetime,
                until: datetime) -> set[datetime]:
        """The claimed occurrences of a job from ``since`` to ``until``.

        Both ends included; aware UTC datetimes.
        """
        return self._claimed(application_id, job, utc(since), utc(until))

    @abc.abstractmethod
    def _claimed(self, application_id: str, job: str, since: datetime,
                 until: datetime) -> set[datetime]:
        """:meth:`claimed`, with UTC times."""

    def unstarted_claims(self, application_id: str, job: str,
                         since: datetime, until: datetime, *,
                         claimed_before: datetime) -> dict[str, datetime]:
        """Claims of a job's occurrences from ``since`` to ``until``, made
        before ``claimed_before``, whose run never started: by key.

        A claim's run is the run of the same application id and job with
        the claim's key, started or recorded. A scheduler that claimed and
        died before its call arrived leaves such a claim; whoever takes
        over may run the occurrence under the same key (:meth:`claim`
        gives it to that key again).
        """
        return self._unstarted_claims(application_id, job, utc(since),
                                      utc(until), utc(claimed_before))

    @abc.abstractmethod
    def _unstarted_claims(self, application_id: str, job: str,
                          since: datetime, until: datetime,
                          claimed_before: datetime) -> dict[str, datetime]:
        """:meth:`unstarted_claims`, with UTC times."""

    # --- leases: one active scheduler per application id -----------------

    def take_lease(self, application_id: str, *, holder: str, node: str,
                   ttl: float, now: datetime) -> tuple[bool, Lease | None]:
        """Take or renew the lease of ``application_id`` for ``ttl`` seconds.

        It is taken when nobody holds it, when it has expired, when
        ``holder`` has it already (a renewal: ``acquired`` stays) or when
        its holder is on ``node`` (see :class:`Lease`). Returns whether
        ``holder`` has it now, and the lease as it was before. Backends
        with a server clock measure expiry by that clock instead of
        ``now``, so hosts with skewed clocks agree.
        """
        return self._take_lease(application_id, holder, node,
                                _ttl(ttl), utc(now))

    @abc.abstractmethod
    def _take_lease(self, application_id: str, holder: str, node: str,
                    ttl: float, now: datetime) -> tuple[bool, Lease | None]:
        """:meth:`take_lease`, atomically, with ``now`` in UTC."""

    def renew_leases(self, application_ids: Iterable[str], *, holder: str,
                     node: str, ttl: float, now: datetime) -> set[str]:
        """Renew (or take) the leases of many application ids at once.

        What :meth:`take_lease` does for each; returns the ids ``holder``
        holds now. Backends implement :meth:`_renew_leases` with one
        statement: a process with a thousand tenants renews them all in one
        round trip.
        """
        return self._renew_leases(list(application_ids), holder, node,
                                  _ttl(ttl), utc(now))

    def _renew_leases(self, application_ids: list[str], holder: str,
                      node: str, ttl: float, now: datetime) -> set[str]:
        """:meth:`renew_leases`, ``ttl`` checked and ``now`` in UTC."""
        return {application_id for application_id in application_ids
                if self._take_lease(application_id, holder, node, ttl,
                                    now)[0]}

    @abc.abstractmethod
    def release_lease(self, application_id: str, holder: str) -> None:
        """Let the lease go at once, if ``holder`` has it.

        It expires now; ``renewed`` stays, so a successor knows until when
        jobs were fired.
        """

    @abc.abstractmethod
    def lease(self, application_id: str) -> Lease | None:
        """The lease of ``application_id`` as stored, expired or not."""

    # --- the operators' switches -----------------------------------------

    @abc.abstractmethod
    def job_settings(self, application_id: str) -> dict[str, JobSettings]:
        """The stored settings of the jobs of ``application_id``.

        A job without an entry has the defaults, ``JobSettings()``.
        """

    def job_settings_of(self, application_ids: Iterable[str],
                        ) -> dict[str, dict[str, JobSettings]]:
        """:meth:`job_settings` of many application ids, by id.

        Ids without stored settings may be missing. Backends override this
        with one query.
        """
        return {application_id: self.job_settings(application_id)
                for application_id in application_ids}

    def holds_of(self, application_ids: Iterable[str]) -> dict[str, Hold]:
        """:meth:`hold` of many application ids, by id (missing: never
        held). Backends override this with one query."""
        return {application_id: self.hold(application_id)
                for application_id in application_ids}

    @abc.abstractmethod
    def set_enabled(self, application_id: str, job: str,
                    enabled: bool) -> None:
        """Enable or disable a job, for every process sharing the store."""

    def set_schedule(self, application_id: str, job: str,
                     schedule: str | None,
                     timezone: str | None = None) -> None:
        """Override a job's schedule; None goes back to the code's.

        The store does not parse ``schedule``: validate it first. Resetting
        with a time zone is a ``ValueError``.
        """
        if schedule is None and timezone is not None:
            raise ValueError(f'a reset of the schedule of {job!r} takes no '
                             f'time zone, got {timezone!r}')
        self._set_schedule(application_id, job, schedule, timezone)

    def _set_schedule(self, application_id: str, job: str,
                      schedule: str | None, timezone: str | None) -> None:
        """:meth:`set_schedule`, checked: a reset has no time zone."""
        raise NotImplementedError(f'{type(self).__name__}._set_schedule')

    @abc.abstractmethod
    def hold(self, application_id: str) -> Hold:
        """Whether the jobs of ``application_id`` are held."""

    def set_hold(self, application_id: str, held: bool, *,
                 now: datetime) -> Hold:
        """Hold or release all jobs of an id; return the state before.

        ``since`` becomes ``now`` when the state changes and stays as it
        was when it does not.
        """
        return self._set_hold(application_id, bool(held), utc(now))

    def _set_hold(self, application_id: str, held: bool,
                  now: datetime) -> Hold:
        """:meth:`set_hold`, atomically, with ``now`` in UTC."""
        raise NotImplementedError(f'{type(self).__name__}._set_hold')

    # --- schedulers -------------------------------------------------------

    @abc.abstractmethod
    def heartbeat(self, info: SchedulerInfo) -> None:
        """Insert or update the scheduler (application id, host, pid)."""

    def heartbeats(self, infos: Iterable[SchedulerInfo]) -> None:
        """:meth:`heartbeat` for many schedulers; backends batch it."""
        checked = [_utc_info(info) for info in infos]
        if checked:
            self._heartbeats(checked)

    def _heartbeats(self, infos: list[SchedulerInfo]) -> None:
        """:meth:`heartbeats`, with UTC times, at least one; backends
        write them all at once."""
        for info in infos:
            self.heartbeat(info)

    @abc.abstractmethod
    def schedulers(self,
                   application_id: str | None = None) -> list[SchedulerInfo]:
        """The schedulers of ``application_id`` (of all ids if None)."""

    @abc.abstractmethod
    def forget_scheduler(self, application_id: str, host: str,
                         pid: int) -> None:
        """Remove a scheduler's entry, when it stops."""

    # --- the store itself -------------------------------------------------

    def _schema_written(self, old: int, new: int) -> None:
        """Say, once, what this process did to the schema: created it
        (``old`` 0) or upgraded it (only the process that did, see the
        backends' schema checks)."""
        if old:
            log.info('%r: schema upgraded from version %d to %d', self,
                     old, new)
        else:
            log.info('%r: new store, schema version %d created', self, new)

    @abc.abstractmethod
    def version(self) -> int:
        """The schema version of the stored data."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's connections; it cannot be used afterwards."""

    @abc.abstractmethod
    def __repr__(self) -> str:
        """Names the store, never a password."""

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, kind: type[BaseException] | None,
                 error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _ttl(ttl: float) -> float:
    """A lease's lifetime, in seconds: ``ValueError`` unless positive."""
    if not ttl > 0:
        raise ValueError(f'lease ttl must be positive, got {ttl!r}')
    return float(ttl)


def _utc_info(info: SchedulerInfo) -> SchedulerInfo:
    """``info`` with its times in UTC; ``ValueError`` if one is naive."""
    if (info.alive_since.tzinfo is timezone.utc
            and info.heartbeat.tzinfo is timezone.utc):
        return info
    return dataclasses.replace(info, alive_since=utc(info.alive_since),
                               heartbeat=utc(info.heartbeat))
