"""What the SQL backends share: the cold-path statements, the mapping of
rows to records, and the methods built on them.

SQLite and PostgreSQL hold the same tables (PostgreSQL's named
``onecron_*``) and answer the same SQL, but for three things a
:class:`Dialect` says: the placeholder (``?`` or ``%s``), the tables'
prefix, and how a time is written and read back (fixed-width UTC text,
or ``timestamptz``). :class:`SqlStore` implements the calls whose SQL is
the same on both; each backend keeps its connections, its schema and its
migrations, and the statements it tunes (a run's start and end, the
pages of runs, leases, holds, prune's bookkeeping).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from onecron.stores.base import Store
from onecron.stores.records import (
    Hold,
    JobSettings,
    Lease,
    Outcome,
    Run,
    SchedulerInfo,
    Trigger,
)

#: a run's columns, in the order of :class:`~onecron.stores.records.Run`
RUN_COLUMNS = ('id', 'application_id', 'job', 'scheduled', 'triggered_by',
               'started', 'ended', 'outcome', 'http_status', 'output',
               'error', 'run_key')

#: the tables, by the names the statements below give them
TABLES = ('runs', 'claims', 'leases', 'job_settings', 'holds', 'schedulers')


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL of two backends."""

    #: the placeholder of a positional parameter: ``?`` or ``%s``
    placeholder: str
    #: put before every table name: ``onecron_`` on a shared server
    prefix: str
    #: a UTC datetime as the database stores it
    write_time: Callable[[datetime], Any]
    #: a stored time as an aware UTC datetime
    read_time: Callable[[Any], datetime]
    #: after a text in ORDER BY: sort by bytes, whatever the collation
    collate: str = ''

    def sql(self, text: str) -> str:
        """``text``, written with ``?`` and ``{runs}``-style table names,
        in this dialect."""
        return text.format(
            collate=self.collate,
            **{table: self.prefix + table for table in TABLES},
        ).replace('?', self.placeholder)

    def read_time_or_none(self, value: Any) -> datetime | None:
        return None if value is None else self.read_time(value)

    def run(self, row: tuple[Any, ...]) -> Run:
        """The :class:`Run` of a row of :data:`RUN_COLUMNS`."""
        (run_id, application_id, job, scheduled, trigger, started, ended,
         outcome, http_status, output, error, key) = row
        return Run(run_id, application_id, job,
                   self.read_time_or_none(scheduled), Trigger(trigger),
                   self.read_time(started), self.read_time_or_none(ended),
                   None if outcome is None else Outcome(outcome),
                   http_status, output, error, key)

    def hold(self, row: tuple[Any, ...] | None) -> Hold:
        """The :class:`Hold` of a row (held, since); never held if None."""
        if row is None:
            return Hold(False, None)
        return Hold(bool(row[0]), self.read_time_or_none(row[1]))

    def lease(self, application_id: str, row: tuple[Any, ...]) -> Lease:
        """The :class:`Lease` of a row (holder, node, acquired, renewed,
        expires)."""
        holder, node, acquired, renewed, expires = row
        return Lease(application_id, holder, node, self.read_time(acquired),
                     self.read_time(renewed), self.read_time(expires))


class Statements:
    """The statements both backends run, in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        sql = dialect.sql
        #: a run's columns, of the table aliased ``r``
        self.run_columns = ', '.join(f'r.{name}' for name in RUN_COLUMNS)
        self.get_run = sql(f'SELECT {self.run_columns} FROM {{runs}} AS r '
                           'WHERE r.id = ?')
        self.claim = sql('''INSERT INTO {claims} (application_id, job,
            scheduled, run_key, claimed) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING''')
        self.claim_key = sql('''SELECT run_key FROM {claims} WHERE
            application_id = ? AND job = ? AND scheduled = ?''')
        self.claimed = sql('''SELECT scheduled FROM {claims} WHERE
            application_id = ? AND job = ? AND scheduled BETWEEN ? AND ?''')
        self.unstarted_claims = sql('''SELECT c.run_key, c.scheduled
            FROM {claims} AS c WHERE c.application_id = ? AND c.job = ?
            AND c.scheduled BETWEEN ? AND ? AND c.claimed < ?
            AND NOT EXISTS (SELECT 1 FROM {runs} AS r
                WHERE r.application_id = c.application_id
                AND r.job = c.job AND r.run_key = c.run_key)''')
        self.prune_claims = sql('DELETE FROM {claims} WHERE scheduled < ?')
        self.lease = sql('''SELECT holder, node, acquired, renewed, expires
            FROM {leases} WHERE application_id = ?''')
        self.job_settings = sql('''SELECT job, enabled, schedule, timezone
            FROM {job_settings} WHERE application_id = ?''')
        self.set_enabled = sql('''INSERT INTO {job_settings} (application_id,
            job, enabled) VALUES (?, ?, ?) ON CONFLICT (application_id, job)
            DO UPDATE SET enabled = excluded.enabled''')
        self.set_schedule = sql('''INSERT INTO {job_settings}
            (application_id, job, schedule, timezone) VALUES (?, ?, ?, ?)
            ON CONFLICT (application_id, job) DO UPDATE SET
            schedule = excluded.schedule, timezone = excluded.timezone''')
        self.hold = sql('''SELECT held, since FROM {holds}
            WHERE application_id = ?''')
        self.heartbeat = sql('''INSERT INTO {schedulers} (application_id,
            host, pid, alive_since, heartbeat) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (application_id, host, pid) DO UPDATE SET
            alive_since = excluded.alive_since,
            heartbeat = excluded.heartbeat''')
        schedulers = '''SELECT application_id, host, pid, alive_since,
            heartbeat FROM {schedulers}'''
        order = (' ORDER BY application_id{collate}, host{collate}, pid')
        self.schedulers = sql(schedulers + order)
        self.schedulers_of = sql(
            schedulers + ' WHERE application_id = ?' + order)
        self.forget_scheduler = sql('''DELETE FROM {schedulers}
            WHERE application_id = ? AND host = ? AND pid = ?''')
        # prune: finished runs beyond the newest n of each job, and (or)
        # all runs started before a time
        self.prune_by_age = sql('DELETE FROM {runs} WHERE started < ?')
        ranked = '''DELETE FROM {runs} WHERE id IN (
            SELECT id FROM (
                SELECT id, started, outcome, ROW_NUMBER() OVER (
                    PARTITION BY application_id, job ORDER BY id DESC) AS n
                FROM {runs}) AS ranked
            WHERE %s(outcome IS NOT NULL AND n > ?))'''
        self.prune_by_count = sql(ranked % '')
        self.prune_by_both = sql(ranked % 'started < ? OR ')

    def prune(self, keep_runs: int | None,
              cutoff: Any) -> tuple[str, tuple[Any, ...]] | None:
        """The DELETE of old runs and its parameters (``cutoff`` as
        stored); None if no run goes."""
        if keep_runs is None:
            if cutoff is None:
                return None
            return self.prune_by_age, (cutoff,)
        if cutoff is None:
            return self.prune_by_count, (keep_runs,)
        return self.prune_by_both, (cutoff, keep_runs)


class _Connected(Protocol):
    """``with``: a connection, in a transaction or in autocommit mode."""

    def __enter__(self) -> Any: ...

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> Any: ...


class SqlStore(Store):
    """A store on an SQL database: the calls both backends make alike.

    A backend sets :attr:`_dialect` and :attr:`_sql` and gives the
    connections: :meth:`_db` to read, :meth:`_write` to write,
    :meth:`_transaction` for several statements at once.
    """

    _dialect: Dialect
    _sql: Statements

    @abc.abstractmethod
    def _db(self) -> _Connected:
        """``with``: a connection to read."""

    @abc.abstractmethod
    def _write(self) -> _Connected:
        """``with``: a connection to write one statement."""

    @abc.abstractmethod
    def _transaction(self) -> _Connected:
        """``with``: a connection in a transaction that writes."""

    # --- runs -----------------------------------------------------------

    #: the run stats of one application id (see :mod:`onecron.stores.stats`)
    _stats_query: str

    def stats_rows(self, application_id: str,
                   ) -> list[tuple[str, str, str, int, float]]:
        """The run stats rows of ``application_id``, for the metrics: one
        index range."""
        with self._db() as db:
            return list(db.execute(self._stats_query,
                                   (application_id,)).fetchall())

    def get_run(self, run_id: int) -> Run | None:
        with self._db() as db:
            row = db.execute(self._sql.get_run, (run_id,)).fetchone()
        return None if row is None else self._dialect.run(row)

    # --- claims ---------------------------------------------------------

    def _claim(self, application_id: str, job: str, scheduled: datetime,
               key: str, now: datetime) -> bool:
        time = self._dialect.write_time
        values = (application_id, job, time(scheduled), key, time(now))
        with self._write() as db:
            if db.execute(self._sql.claim, values).rowcount:
                return True
            row = db.execute(self._sql.claim_key, values[:3]).fetchone()
        # none: pruned since (a claim of long ago), so not this key's
        return row is not None and row[0] == key

    def _claimed(self, application_id: str, job: str, since: datetime,
                 until: datetime) -> set[datetime]:
        time = self._dialect.write_time
        with self._db() as db:
            rows = db.execute(self._sql.claimed, (
                application_id, job, time(since), time(until))).fetchall()
        return {self._dialect.read_time(row[0]) for row in rows}

    def _unstarted_claims(self, application_id: str, job: str,
                          since: datetime, until: datetime,
                          claimed_before: datetime) -> dict[str, datetime]:
        time = self._dialect.write_time
        with self._db() as db:
            rows = db.execute(self._sql.unstarted_claims, (
                application_id, job, time(since), time(until),
                time(claimed_before))).fetchall()
        return {key: self._dialect.read_time(scheduled)
                for key, scheduled in rows}

    # --- leases ---------------------------------------------------------

    def lease(self, application_id: str) -> Lease | None:
        with self._db() as db:
            row = db.execute(self._sql.lease, (application_id,)).fetchone()
        return None if row is None else self._dialect.lease(application_id,
                                                            row)

    # --- the operators' switches -------------------------------------------

    def job_settings(self, application_id: str) -> dict[str, JobSettings]:
        with self._db() as db:
            rows = db.execute(self._sql.job_settings,
                              (application_id,)).fetchall()
        return {job: JobSettings(bool(enabled), schedule, timezone)
                for job, enabled, schedule, timezone in rows}

    def set_enabled(self, application_id: str, job: str,
                    enabled: bool) -> None:
        with self._write() as db:
            db.execute(self._sql.set_enabled,
                       (application_id, job, bool(enabled)))

    def _set_schedule(self, application_id: str, job: str,
                      schedule: str | None, timezone: str | None) -> None:
        with self._write() as db:
            db.execute(self._sql.set_schedule,
                       (application_id, job, schedule, timezone))

    def hold(self, application_id: str) -> Hold:
        with self._db() as db:
            return self._dialect.hold(db.execute(
                self._sql.hold, (application_id,)).fetchone())

    # --- schedulers -------------------------------------------------------

    def heartbeat(self, info: SchedulerInfo) -> None:
        self.heartbeats([info])

    def _heartbeats(self, infos: list[SchedulerInfo]) -> None:
        time = self._dialect.write_time
        values = [(info.application_id, info.host, info.pid,
                   time(info.alive_since), time(info.heartbeat))
                  for info in infos]
        with self._transaction() as db:
            db.cursor().executemany(self._sql.heartbeat, values)

    def schedulers(self,
                   application_id: str | None = None) -> list[SchedulerInfo]:
        with self._db() as db:
            if application_id is None:
                rows = db.execute(self._sql.schedulers).fetchall()
            else:
                rows = db.execute(self._sql.schedulers_of,
                                  (application_id,)).fetchall()
        time = self._dialect.read_time
        return [SchedulerInfo(app, host, pid, time(alive), time(beat))
                for app, host, pid, alive, beat in rows]

    def forget_scheduler(self, application_id: str, host: str,
                         pid: int) -> None:
        with self._write() as db:
            db.execute(self._sql.forget_scheduler,
                       (application_id, host, pid))

