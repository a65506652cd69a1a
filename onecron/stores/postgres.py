"""The run store on a PostgreSQL server, shared by every host.

With :mod:`onecron.stores.postgres_connections`, the only modules that
import :mod:`psycopg` (version 3); the schema and its upgrades are in
:mod:`onecron.stores.postgres_schema`, the statements the backends share
in :mod:`onecron.stores.sql`: here are only the tuned ones. Each thread of
each process has its own connection, in autocommit mode, and each call
runs in a transaction of its own. A forked child opens new connections
and never touches, nor closes, its parent's.

Opening connects to nothing: the first call connects, and sets up or
upgrades the schema, so a web application starts (and serves its own
pages) while its database is still down. The server may be missing at
first, or go away and come back later: a call that cannot connect, or
finds its connection broken, raises :class:`~onecron.stores.base.StoreError` at
once, and every connection of the store is opened anew, no sooner than a
backoff (0.5 s, doubling up to 30 s, none again after a success): until
then calls fail at once, without waiting for the network. No call waits
much longer than ``timeout`` seconds: it bounds connecting, every
statement and every lock.

Every call is one transaction that sets its own time limits (``SET
LOCAL``); nothing is prepared on the server, no ``SET`` or lock outlives a
transaction and nothing listens: the store works through PgBouncer in
transaction pooling mode, where consecutive transactions of a client may
run on different server sessions.

The tables are named ``onecron_*`` and are made in the connection's
``search_path``: add ``?options=-csearch_path%3Dname`` to the URL for
another schema. ``onecron_schema`` holds their version; connecting upgrades
an older schema, under an advisory lock so that hosts starting together
upgrade it once, and refuses a newer one.

Times are ``timestamptz``, read back as UTC. Run ids come from a sequence:
they never repeat, so they order and page runs. PostgreSQL text cannot
hold NUL: a NUL in a run's output, error or key is stored as ``\\x00``
(by every store, see :func:`~onecron.stores.base.storable`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from onecron.stores import stats
from onecron.stores.base import (
    Hold,
    JobSettings,
    Lease,
    Outcome,
    Run,
    RunKeyTaken,
    StoreError,
    Trigger,
    utc,
)
from onecron.stores.postgres_connections import (
    _SLOW,
    SLOW_TIMEOUT,
    PostgresConnections,
    _Connection,
    _secret_free,
    _stored_version,
)
from onecron.stores.postgres_connections import FIRST_RETRY as FIRST_RETRY
from onecron.stores.postgres_connections import LAST_RETRY as LAST_RETRY
from onecron.stores.postgres_schema import _MIGRATIONS as _MIGRATIONS
from onecron.stores.postgres_schema import _SCHEMA_1 as _SCHEMA_1
from onecron.stores.postgres_schema import _SCHEMA_2 as _SCHEMA_2
from onecron.stores.postgres_schema import _SCHEMA_3 as _SCHEMA_3
from onecron.stores.postgres_schema import _SCHEMA_4 as _SCHEMA_4
from onecron.stores.postgres_schema import SCHEMA_VERSION as SCHEMA_VERSION
from onecron.stores.sql import Dialect, Statements

log = logging.getLogger(__name__)

#: the statements both backends share; times go to psycopg as they are
_DIALECT = Dialect('%s', 'onecron_', lambda moment: moment, utc,
                   collate=' COLLATE "C"')
_SQL = Statements(_DIALECT)
_COLUMNS = _SQL.run_columns

#: a whole run (skipped, missed), recorded: not started
_INSERT_RUN = '''INSERT INTO onecron_runs (application_id, job, scheduled,
    triggered_by, started, ended, outcome, http_status, output, error,
    run_key, began) VALUES (%(application_id)s, %(job)s, %(scheduled)s,
    %(trigger)s, %(started)s, %(ended)s, %(outcome)s, %(http_status)s,
    %(output)s, %(error)s, %(key)s, false)'''

#: a run as it starts: the other columns keep their defaults
_START_RUN = '''INSERT INTO onecron_runs (application_id, job, scheduled,
    triggered_by, started, run_key) VALUES (%(application_id)s, %(job)s,
    %(scheduled)s, %(trigger)s, %(started)s, %(key)s)'''

#: the index a run's key is unique in: its application id and job
_BY_KEY = ''' ON CONFLICT (application_id, job, run_key)
    WHERE run_key IS NOT NULL'''

#: the run of a job with a key
_KEYED = '''SELECT id FROM onecron_runs WHERE application_id =
    %(application_id)s AND job = %(job)s AND run_key = %(key)s'''

# A loose index scan: hop from job to job through onecron_runs_by_job, then
# take each job's newest run from it too, so the cost grows with the number
# of jobs and not with the number of stored runs.
_LAST_RUNS = f'''
    WITH RECURSIVE jobs(job) AS (
        (SELECT job FROM onecron_runs WHERE application_id = %(app)s
         ORDER BY job LIMIT 1)
        UNION ALL
        SELECT (SELECT job FROM onecron_runs
                WHERE application_id = %(app)s AND job > jobs.job
                ORDER BY job LIMIT 1)
        FROM jobs WHERE jobs.job IS NOT NULL)
    SELECT {_COLUMNS} FROM jobs CROSS JOIN LATERAL (
        SELECT * FROM onecron_runs
        WHERE application_id = %(app)s AND job = jobs.job
        ORDER BY id DESC LIMIT 1) AS r'''

# see Store._finish for the rule; SET expressions read the old row
_FINISH = '''
    UPDATE onecron_runs SET
        outcome = CASE WHEN outcome = 'timed out' THEN outcome
                       ELSE %(outcome)s::text END,
        ended = CASE WHEN %(outcome)s::text = 'timed out'
                          AND ended IS NOT NULL
                     THEN ended ELSE %(ended)s::timestamptz END,
        http_status = COALESCE(%(http_status)s::integer, http_status),
        output = CASE WHEN %(output)s::text = '' THEN output
                      ELSE %(output)s::text END,
        error = COALESCE(%(error)s::text, error)
    WHERE '''

_LEASE = '''SELECT holder, node, acquired, renewed, expires
    FROM onecron_leases WHERE application_id = %(app)s'''

_NEW_LEASE = '''INSERT INTO onecron_leases (application_id, holder, node,
    acquired, renewed, expires, deadline) VALUES (%(app)s, %(holder)s,
    %(node)s, %(now)s, %(now)s, %(expires)s,
    clock_timestamp() + make_interval(secs => %(ttl)s::float8))
    ON CONFLICT (application_id) DO NOTHING'''

_RENEW_LEASE = '''UPDATE onecron_leases SET
    acquired = CASE WHEN holder = %(holder)s THEN acquired ELSE %(now)s END,
    holder = %(holder)s, node = %(node)s, renewed = %(now)s,
    expires = %(expires)s,
    deadline = clock_timestamp() + make_interval(secs => %(ttl)s::float8)
    WHERE application_id = %(app)s AND (holder = %(holder)s
        OR node = %(node)s OR deadline <= clock_timestamp())'''


class PostgresStore(PostgresConnections):
    """The run store in the PostgreSQL database at ``url``.

    ``url`` is a libpq connection URL (``postgresql://user:password@host/db``)
    or ``key=value`` string; its own parameters win over the defaults set
    here (``connect_timeout``, ``tcp_user_timeout``, ``application_name``).
    ``timeout`` bounds, in seconds, connecting (libpq rounds it up to whole
    seconds, at least 2), each statement and each lock wait.

    Opening checks ``url`` (a malformed one is a ``ValueError``) but
    connects to nothing: a server that is down, a wrong address, a
    refused login or a newer schema make the calls fail with
    :class:`~onecron.stores.base.StoreError`, from the first, and the first
    call to succeed connects and sets up the schema (see the module).

    Leases: ``acquired``, ``renewed`` and ``expires`` are kept as the
    holder's clock gave them (``now``), but whether a lease has expired is
    measured by the server's clock, the same for every host: the ``now``
    of :meth:`take_lease` does not count for it.
    """

    coordinates = True
    _dialect = _DIALECT
    _sql = _SQL
    _stats_query = stats.query('postgresql')

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not timeout > 0:
            raise ValueError(f'timeout must be positive, got {timeout!r}')
        #: the URL without its password
        self.location = _secret_free(url)
        self.timeout = timeout
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error:
            raise ValueError('not a PostgreSQL URL or connection string: '
                             f'{self.location!r}') from None
        password = given.get('password')
        self._password = str(password) if password else None
        milliseconds = round(timeout * 1000)
        defaults: dict[str, str | int] = {
            'connect_timeout': max(2, math.ceil(timeout)),
            'tcp_user_timeout': milliseconds,
            'application_name': 'onecron'}
        self._conninfo = make_conninfo(url, **{
            name: value for name, value in defaults.items()
            if name not in given})
        self._milliseconds = str(milliseconds)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._local = threading.local()
        # (owning thread, connection): closed when the thread is gone
        self._connections: list[tuple[threading.Thread, _Connection]] = []
        # a parent's connections in a forked child: kept, never used or
        # closed (closing would end the parent's sessions)
        self._abandoned: list[_Connection] = []
        # raised when a connection is lost: every older connection is
        # dropped and opened anew
        self._generation = 0
        self._retry_delay = 0.0
        self._retry_at = 0.0  # time.monotonic() before which none connects
        self._closed = False
        # held while the first connection is made and the schema set up
        self._setup = threading.Lock()
        self._ready = False  # whether a connection has worked

    def __repr__(self) -> str:
        return f'<PostgresStore {self.location!r}>'

    # --- runs -----------------------------------------------------------

    def _insert_run(self, run: Run) -> int:
        values = {
            'application_id': run.application_id, 'job': run.job,
            'scheduled': run.scheduled, 'trigger': run.trigger.value,
            'started': run.started, 'ended': run.ended,
            'outcome': None if run.outcome is None else run.outcome.value,
            'http_status': run.http_status, 'output': run.output,
            'error': run.error, 'key': run.key}
        with self._db() as db:
            if run.key is None:
                return _id(db.execute(_INSERT_RUN + ' RETURNING id', values))
            # a pruned run may vanish between the two: then insert again
            for _ in range(3):
                row = db.execute(_INSERT_RUN + _BY_KEY + ' DO NOTHING '
                                 'RETURNING id', values).fetchone()
                if row is None:
                    row = db.execute(_KEYED, values).fetchone()
                if row is not None:
                    return int(row[0])
        raise self._vanishing(run.application_id, run.job)

    def _start_run(self, application_id: str, job: str,
                   scheduled: datetime | None, trigger: Trigger,
                   started: datetime, key: str | None) -> int:
        values = {'application_id': application_id, 'job': job,
                  'scheduled': scheduled, 'trigger': trigger.value,
                  'started': started, 'key': key}
        with self._db() as db:
            if key is None:
                return _id(db.execute(_START_RUN + ' RETURNING id', values))
            for _ in range(3):
                # new, or a run only recorded with the key: this one
                # starts it; none comes back if it has started already
                row = db.execute(_START_RUN + _BY_KEY + ''' DO UPDATE SET
                    began = true WHERE NOT onecron_runs.began
                    RETURNING id''', values).fetchone()
                if row is not None:
                    return int(row[0])
                row = db.execute(_KEYED, values).fetchone()
                if row is not None:
                    raise RunKeyTaken(application_id, job, int(row[0]))
        raise self._vanishing(application_id, job)

    def _vanishing(self, application_id: str, job: str) -> StoreError:
        return StoreError(f'PostgreSQL store {self.location}: the keyed run '
                          f'of job {job!r} ({application_id}) keeps '
                          'vanishing', location=self.location)

    def _finish(self, run_id: int | None, key: tuple[str, str, str] | None,
                ended: datetime, outcome: Outcome, http_status: int | None,
                output: str, error: str | None) -> bool:
        if run_id is not None:
            where = 'id = %(id)s'
        else:
            where = ('application_id = %(app)s AND job = %(job)s '
                     'AND run_key = %(key)s')
        application_id, job, run_key = key or (None, None, None)
        with self._db() as db:
            cursor = db.execute(_FINISH + where, {
                'outcome': outcome.value, 'ended': ended,
                'http_status': http_status, 'output': output,
                'error': error, 'id': run_id, 'app': application_id,
                'job': job, 'key': run_key})
            return cursor.rowcount > 0

    def _runs(self, application_id: str, job: str | None, limit: int,
              before_id: int | None) -> list[Run]:
        sql, arguments = _runs_query(application_id, job, limit, before_id)
        with self._db() as db:
            return [_DIALECT.run(row) for row in db.execute(sql, arguments)]

    def last_runs(self, application_id: str) -> dict[str, Run]:
        with self._db() as db:
            rows = db.execute(_LAST_RUNS, {'app': application_id}).fetchall()
        return {run.job: run for run in map(_DIALECT.run, rows)}

    def _prune(self, keep_runs: int | None, cutoff: datetime | None,
               claims_before: datetime) -> int:
        delete = _SQL.prune(keep_runs, cutoff)
        deleted = 0
        with self._transaction() as db:
            db.execute(_SLOW, {'ms': str(SLOW_TIMEOUT * 1000)})
            if delete is not None:
                deleted = max(db.execute(*delete).rowcount, 0)
            db.execute(_SQL.prune_claims, (claims_before,))
        return deleted

    # --- leases ---------------------------------------------------------

    def _take_lease(self, application_id: str, holder: str, node: str,
                    ttl: float, now: datetime) -> tuple[bool, Lease | None]:
        values = {'app': application_id, 'holder': holder, 'node': node,
                  'now': now, 'expires': now + timedelta(seconds=ttl),
                  'ttl': float(ttl)}
        with self._transaction() as db:
            row = db.execute(_LEASE + ' FOR UPDATE', values).fetchone()
            if row is None:
                if db.execute(_NEW_LEASE, values).rowcount:
                    return True, None
                # another holder wrote it first; now it is there to lock
                row = db.execute(_LEASE + ' FOR UPDATE', values).fetchone()
                assert row is not None  # leases are never deleted
            taken = db.execute(_RENEW_LEASE, values).rowcount > 0
        return taken, _DIALECT.lease(application_id, row)

    def _renew_leases(self, application_ids: list[str], holder: str,
                      node: str, ttl: float, now: datetime) -> set[str]:
        """One statement renews the leases ``holder`` still has; only the
        rest (lost, expired or new) go through :meth:`_take_lease`."""
        ids = application_ids
        with self._db() as db:
            rows = db.execute('''UPDATE onecron_leases SET renewed = %s,
                expires = %s,
                deadline = clock_timestamp() + make_interval(
                    secs => %s::float8)
                WHERE holder = %s AND application_id = ANY(%s)
                RETURNING application_id''', (
                now, now + timedelta(seconds=ttl), float(ttl), holder,
                ids)).fetchall()
        renewed = {row[0] for row in rows}
        return renewed | {
            application_id for application_id in ids
            if application_id not in renewed and self._take_lease(
                application_id, holder, node, ttl, now)[0]}

    def release_lease(self, application_id: str, holder: str) -> None:
        with self._db() as db:
            db.execute('''UPDATE onecron_leases
                SET expires = renewed, deadline = clock_timestamp()
                WHERE application_id = %s AND holder = %s''',
                       (application_id, holder))

    # --- the operators' switches -------------------------------------------

    def job_settings_of(self, application_ids: Iterable[str],
                        ) -> dict[str, dict[str, JobSettings]]:
        found: dict[str, dict[str, JobSettings]] = {}
        with self._db() as db:
            rows = db.execute('''SELECT application_id, job, enabled,
                schedule, timezone FROM onecron_job_settings
                WHERE application_id = ANY(%s)''',
                              (list(application_ids),)).fetchall()
        for application_id, job, enabled, schedule, timezone in rows:
            found.setdefault(application_id, {})[job] = JobSettings(
                enabled, schedule, timezone)
        return found

    def holds_of(self, application_ids: Iterable[str]) -> dict[str, Hold]:
        with self._db() as db:
            rows = db.execute('''SELECT application_id, held, since
                FROM onecron_holds WHERE application_id = ANY(%s)''',
                              (list(application_ids),)).fetchall()
        return {row[0]: _DIALECT.hold(row[1:]) for row in rows}

    def _set_hold(self, application_id: str, held: bool,
                  now: datetime) -> Hold:
        with self._transaction() as db:
            # a row to lock, even for an id never held: the same as none
            db.execute('''INSERT INTO onecron_holds (application_id, held)
                VALUES (%s, false) ON CONFLICT DO NOTHING''',
                       (application_id,))
            row = db.execute('''SELECT held, since FROM onecron_holds
                WHERE application_id = %s FOR UPDATE''',
                             (application_id,)).fetchone()
            assert row is not None  # inserted or there before
            before = _DIALECT.hold(row)
            if before.held != held:
                db.execute('''UPDATE onecron_holds SET held = %s, since = %s
                    WHERE application_id = %s''',
                           (held, now, application_id))
        return before

    # --- the store itself -------------------------------------------------

    def version(self) -> int:
        with self._db() as db:
            return _stored_version(db)


def _runs_query(application_id: str, job: str | None, limit: int,
                before_id: int | None) -> tuple[str, dict[str, Any]]:
    """The query of :meth:`PostgresStore.runs` and its arguments."""
    sql = (f'SELECT {_COLUMNS} FROM onecron_runs AS r '
           'WHERE r.application_id = %(app)s')
    if job is not None:
        sql += ' AND r.job = %(job)s'
    if before_id is not None:
        sql += ' AND r.id < %(before)s'
    sql += ' ORDER BY r.id DESC LIMIT %(limit)s'
    return sql, {'app': application_id, 'job': job, 'before': before_id,
                 'limit': limit}


def _id(cursor: psycopg.Cursor[tuple[Any, ...]]) -> int:
    row = cursor.fetchone()
    assert row is not None  # RETURNING of an INSERT that went through
    return int(row[0])


