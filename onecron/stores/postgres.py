"""The run store on a PostgreSQL server, shared by every host.

The only module that imports :mod:`psycopg` (version 3). Each thread of
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

import contextlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
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
    SchedulerInfo,
    Store,
    StoreError,
    Trigger,
    _redacted,
    utc,
)

log = logging.getLogger(__name__)

#: the schema version this code writes (in ``onecron_schema``)
SCHEMA_VERSION = 5

#: seconds before the first reconnection, doubled after each failed one
FIRST_RETRY = 0.5
#: the most seconds between attempts to reconnect
LAST_RETRY = 30.0

#: seconds a schema upgrade or a prune may take: a lone, rare writer
SLOW_TIMEOUT = 300

# the key of the advisory lock held while the schema is upgraded: 'onecron'
_MIGRATION_LOCK = 0x6F6E6563726F6E

_Connection = psycopg.Connection[tuple[Any, ...]]

# version 1: runs, switches, holds, schedulers
_SCHEMA_1 = (
    'CREATE TABLE onecron_schema (version integer NOT NULL)',
    'INSERT INTO onecron_schema (version) VALUES (0)',
    '''CREATE TABLE onecron_runs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        application_id text NOT NULL,
        job text NOT NULL,
        scheduled timestamptz,
        triggered_by text NOT NULL,
        started timestamptz NOT NULL,
        ended timestamptz,
        outcome text,
        http_status integer,
        output text NOT NULL DEFAULT '',
        error text,
        run_key text UNIQUE)''',
    # last_runs, runs(job=...): per job, newest first
    '''CREATE INDEX onecron_runs_by_job
        ON onecron_runs (application_id, job, id)''',
    # runs() of a whole application id, newest first
    '''CREATE INDEX onecron_runs_by_application
        ON onecron_runs (application_id, id)''',
    # running(): small, as it only holds the unfinished runs
    '''CREATE INDEX onecron_runs_unfinished
        ON onecron_runs (application_id, job, id) WHERE outcome IS NULL''',
    '''CREATE TABLE onecron_job_settings (
        application_id text NOT NULL,
        job text NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        schedule text,
        timezone text,
        PRIMARY KEY (application_id, job))''',
    '''CREATE TABLE onecron_holds (
        application_id text PRIMARY KEY,
        held boolean NOT NULL,
        since timestamptz)''',
    '''CREATE TABLE onecron_schedulers (
        application_id text NOT NULL,
        host text NOT NULL,
        pid bigint NOT NULL,
        alive_since timestamptz NOT NULL,
        heartbeat timestamptz NOT NULL,
        PRIMARY KEY (application_id, host, pid))''',
)

# version 2: claims of occurrences and the schedulers' leases
_SCHEMA_2 = (
    '''CREATE TABLE onecron_claims (
        application_id text NOT NULL,
        job text NOT NULL,
        scheduled timestamptz NOT NULL,
        run_key text NOT NULL,
        claimed timestamptz NOT NULL,
        PRIMARY KEY (application_id, job, scheduled))''',
    # prune: old claims of every id and job
    'CREATE INDEX onecron_claims_by_time ON onecron_claims (scheduled)',
    # acquired, renewed, expires: the holder's clock; deadline: the
    # server's, which alone decides whether the lease has expired
    '''CREATE TABLE onecron_leases (
        application_id text PRIMARY KEY,
        holder text NOT NULL,
        node text NOT NULL,
        acquired timestamptz NOT NULL,
        renewed timestamptz NOT NULL,
        expires timestamptz NOT NULL,
        deadline timestamptz NOT NULL)''',
)

# version 3: running() is gone (the status page tells a running job from
# its newest run), and so is the index that served it, which every run
# wrote twice
_SCHEMA_3 = (
    'DROP INDEX onecron_runs_unfinished',
)

# version 4: a run key is unique per application id and job, not across
# the store, so that a caller's key cannot reach another job's or another
# tenant's run; ``began`` tells a run that started (start_run: a second
# start with its key is refused) from one only recorded (record_run: the
# first start takes it over). Runs stored before count as started; a
# constant default adds the column without rewriting the table.
_SCHEMA_4 = (
    '''ALTER TABLE onecron_runs
        ADD COLUMN began boolean NOT NULL DEFAULT true''',
    # the constraint "run_key text UNIQUE" of version 1 made
    'ALTER TABLE onecron_runs DROP CONSTRAINT onecron_runs_run_key_key',
    '''CREATE UNIQUE INDEX onecron_runs_by_key
        ON onecron_runs (application_id, job, run_key)
        WHERE run_key IS NOT NULL''',
)

# metrics: version 5, the run stats table and the triggers that keep it
_SCHEMA_5 = stats.schema('postgresql')
_STATS = stats.query('postgresql')

#: what brings a store of version n (the index) to version n + 1
_MIGRATIONS = (_SCHEMA_1, _SCHEMA_2, _SCHEMA_3, _SCHEMA_4, _SCHEMA_5)

# the time limits and zone of one transaction: SET LOCAL, never a session's
# SET, which a pooler in transaction mode would leave on a server session
# that another client gets next, while this client's next transaction runs
# on one without it
_LOCAL = '''SELECT set_config('TimeZone', 'UTC', true),
    set_config('statement_timeout', %(ms)s, true),
    set_config('lock_timeout', %(ms)s, true),
    set_config('idle_in_transaction_session_timeout', %(ms)s, true)'''

_SLOW = '''SELECT set_config('statement_timeout', %(ms)s, true),
    set_config('lock_timeout', %(ms)s, true)'''

_COLUMNS = ', '.join(f'r.{name}' for name in (
    'id', 'application_id', 'job', 'scheduled', 'triggered_by', 'started',
    'ended', 'outcome', 'http_status', 'output', 'error', 'run_key'))

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


class PostgresStore(Store):
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

    # --- connections --------------------------------------------------

    def _open(self) -> _Connection:
        """A new connection, the schema checked (and, on the first that
        works, set up: one thread at a time, so that threads starting
        together do not race to make the tables)."""
        if self._ready:
            return self._connect()
        if not self._setup.acquire(timeout=self.timeout):
            raise _Busy(f'PostgreSQL store {self.location}: another '
                        'thread is still connecting', location=self.location)
        try:
            db = self._connect()
            self._ready = True
            return db
        finally:
            self._setup.release()

    def _connect(self) -> _Connection:
        # prepare_threshold=None: psycopg would prepare a statement run
        # five times, and a pooler in transaction mode loses it
        db = psycopg.connect(self._conninfo, autocommit=True,
                             prepare_threshold=None)
        try:
            with db.transaction():
                # first: it must come before any query of the transaction
                db.execute('SET TRANSACTION ISOLATION LEVEL READ COMMITTED')
                db.execute(_LOCAL, {'ms': self._milliseconds})
                self._check_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    def _check_schema(self, db: _Connection) -> None:
        """Create the tables in a new database, or upgrade older ones.

        Hosts and processes that open a new database together all find
        version 0 at first; the version that counts is the one read again
        under the advisory lock, so that exactly one of them creates (or
        upgrades) the tables and says so, and the others, finding it done,
        say nothing.

        Called inside the connection's first transaction, which reads
        committed data whatever the session's default isolation (a
        snapshot taken before the lock would not see what the previous
        holder committed) and holds the lock until it commits.
        """
        if _stored_version(db) == SCHEMA_VERSION:
            return
        db.execute(_SLOW, {'ms': str(SLOW_TIMEOUT * 1000)})
        db.execute('SELECT pg_advisory_xact_lock(%s)', (_MIGRATION_LOCK,))
        version = _stored_version(db)  # another host may have won
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f'PostgreSQL store {self.location} has schema version '
                f'{version}, newer than version {SCHEMA_VERSION} that '
                'this onecron knows: upgrade onecron',
                location=self.location)
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                db.execute(statement)
        db.execute('UPDATE onecron_schema SET version = %s',
                   (SCHEMA_VERSION,))
        self._schema_written(version, SCHEMA_VERSION)

    def _connection(self) -> _Connection:
        """This thread's connection, (re)opened when needed."""
        if self._closed:
            raise StoreError(f'PostgreSQL store {self.location} is closed',
                             location=self.location)
        if os.getpid() != self._pid:
            self._after_fork()
        local = self._local
        db: _Connection | None = getattr(local, 'db', None)
        if db is not None:
            if local.generation == self._generation:
                return db
            self._drop(db)  # another thread found the server gone
            local.db = None
        with self._lock:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise StoreError(
                    f'PostgreSQL store {self.location}: no connection, '
                    f'reconnecting in {wait:.1f} s', location=self.location)
            delay = self._next_delay()
            if self._retry_delay:  # this thread tries; the others wait
                self._retry_at = time.monotonic() + delay
        try:
            db = self._open()
        except _Busy:
            raise  # the thread that connects sets the backoff
        except (psycopg.Error, StoreError) as error:
            with self._lock:  # threads failing together count once
                self._retry_delay = max(self._retry_delay, delay)
                self._retry_at = time.monotonic() + self._retry_delay
            if isinstance(error, StoreError):
                raise
            raise self._error(error) from error
        with self._lock:
            if self._retry_delay:
                log.info('%r: connected again', self)
            self._retry_delay = self._retry_at = 0.0
            self._close_orphans()
            self._connections.append((threading.current_thread(), db))
            local.db, local.generation = db, self._generation
        return db

    def _next_delay(self) -> float:
        return min(max(self._retry_delay * 2, FIRST_RETRY), LAST_RETRY)

    def _lose(self, db: _Connection, error: psycopg.Error) -> None:
        """Drop this thread's broken connection ``db``; if it is the first
        sign of the loss, drop all others too and wait before reconnecting.
        """
        with self._lock:
            if self._local.generation == self._generation:
                self._generation += 1
                self._retry_delay = self._next_delay()
                self._retry_at = time.monotonic() + self._retry_delay
                log.info('%r: connection lost (%s); reconnecting in %.1f s',
                         self, self._scrubbed(error), self._retry_delay)
        self._local.db = None
        self._drop(db)

    def _drop(self, db: _Connection) -> None:
        with self._lock:
            self._connections = [(thread, other) for thread, other
                                 in self._connections if other is not db]
        with contextlib.suppress(psycopg.Error):
            db.close()

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended."""
        alive = []
        for thread, db in self._connections:
            if thread.is_alive():
                alive.append((thread, db))
            else:
                with contextlib.suppress(psycopg.Error):
                    db.close()
        self._connections = alive

    def _after_fork(self) -> None:
        # the child has one thread; locks held by others at fork never free
        self._lock = threading.Lock()
        self._setup = threading.Lock()
        self._abandoned.extend(db for _, db in self._connections)
        self._connections = []
        self._local = threading.local()
        self._pid = os.getpid()

    def _scrubbed(self, error: BaseException) -> str:
        message = ' '.join(str(error).split())
        if self._password:
            message = message.replace(self._password, '***')
        return message

    def _error(self, error: BaseException) -> StoreError:
        return StoreError(f'PostgreSQL store {self.location}: '
                          f'{self._scrubbed(error)}', location=self.location)

    @contextlib.contextmanager
    def _db(self) -> Iterator[_Connection]:
        """This thread's connection, in a transaction with this store's
        time limits; psycopg's errors become StoreError."""
        db = self._connection()
        try:
            with db.transaction():
                db.execute(_LOCAL, {'ms': self._milliseconds})
                yield db
        except psycopg.Error as error:
            if _broken(db, error):
                self._lose(db, error)
            raise self._error(error) from error

    #: every call is a transaction: the name says where that matters
    _transaction = _db

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

    def runs(self, application_id: str, job: str | None = None, *,
             limit: int = 50, before_id: int | None = None) -> list[Run]:
        if limit < 0:
            raise ValueError(f'limit {limit} is negative')
        sql, arguments = _runs_query(application_id, job, limit, before_id)
        with self._db() as db:
            return [_run(row) for row in db.execute(sql, arguments)]

    def last_runs(self, application_id: str) -> dict[str, Run]:
        with self._db() as db:
            rows = db.execute(_LAST_RUNS, {'app': application_id}).fetchall()
        return {run.job: run for run in map(_run, rows)}

    def get_run(self, run_id: int) -> Run | None:
        with self._db() as db:
            row = db.execute(f'SELECT {_COLUMNS} FROM onecron_runs AS r '
                             'WHERE r.id = %s', (run_id,)).fetchone()
        return None if row is None else _run(row)

    def _prune(self, keep_runs: int | None, cutoff: datetime | None,
               claims_before: datetime) -> int:
        arguments = {'keep': keep_runs, 'cutoff': cutoff}
        if keep_runs is None:
            sql = 'DELETE FROM onecron_runs WHERE started < %(cutoff)s'
        else:
            old = 'started < %(cutoff)s OR ' if cutoff is not None else ''
            sql = f'''DELETE FROM onecron_runs WHERE id IN (
                SELECT id FROM (
                    SELECT id, started, outcome, row_number() OVER (
                        PARTITION BY application_id, job ORDER BY id DESC) AS n
                    FROM onecron_runs) AS ranked
                WHERE {old}(outcome IS NOT NULL AND n > %(keep)s))'''
        deleted = 0
        with self._transaction() as db:
            db.execute(_SLOW, {'ms': str(SLOW_TIMEOUT * 1000)})
            if keep_runs is not None or cutoff is not None:
                deleted = max(db.execute(sql, arguments).rowcount, 0)
            db.execute('DELETE FROM onecron_claims WHERE scheduled < %s',
                       (claims_before,))
        return deleted

    # --- claims ---------------------------------------------------------

    def _claim(self, application_id: str, job: str, scheduled: datetime,
               key: str, now: datetime) -> bool:
        values = (application_id, job, scheduled, key, now)
        with self._db() as db:
            if db.execute('''INSERT INTO onecron_claims (application_id, job,
                    scheduled, run_key, claimed) VALUES (%s, %s, %s, %s, %s)
                    ON CONFLICT DO NOTHING''', values).rowcount:
                return True
            row = db.execute('''SELECT run_key FROM onecron_claims WHERE
                application_id = %s AND job = %s AND scheduled = %s''',
                             values[:3]).fetchone()
        return row is not None and row[0] == key

    def _claimed(self, application_id: str, job: str, since: datetime,
                 until: datetime) -> set[datetime]:
        with self._db() as db:
            rows = db.execute('''SELECT scheduled FROM onecron_claims WHERE
                application_id = %s AND job = %s
                AND scheduled BETWEEN %s AND %s''',
                              (application_id, job, since, until)).fetchall()
        return {utc(row[0]) for row in rows}

    def _unstarted_claims(self, application_id: str, job: str,
                          since: datetime, until: datetime,
                          claimed_before: datetime) -> dict[str, datetime]:
        with self._db() as db:
            rows = db.execute('''SELECT c.run_key, c.scheduled
                FROM onecron_claims AS c WHERE c.application_id = %s
                AND c.job = %s AND c.scheduled BETWEEN %s AND %s
                AND c.claimed < %s AND NOT EXISTS (
                    SELECT 1 FROM onecron_runs AS r
                    WHERE r.application_id = c.application_id
                    AND r.job = c.job AND r.run_key = c.run_key)''',
                              (application_id, job, since, until,
                               claimed_before)).fetchall()
        return {key: utc(scheduled) for key, scheduled in rows}

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
        return taken, _lease(application_id, row)

    def renew_leases(self, application_ids: Iterable[str], *, holder: str,
                     node: str, ttl: float, now: datetime) -> set[str]:
        """One statement renews the leases ``holder`` still has; only the
        rest (lost, expired or new) go through :meth:`take_lease`."""
        if not ttl > 0:
            raise ValueError(f'lease ttl must be positive, got {ttl!r}')
        ids = list(application_ids)
        now = utc(now)
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
            if application_id not in renewed and self.take_lease(
                application_id, holder=holder, node=node, ttl=ttl,
                now=now)[0]}

    def release_lease(self, application_id: str, holder: str) -> None:
        with self._db() as db:
            db.execute('''UPDATE onecron_leases
                SET expires = renewed, deadline = clock_timestamp()
                WHERE application_id = %s AND holder = %s''',
                       (application_id, holder))

    def lease(self, application_id: str) -> Lease | None:
        with self._db() as db:
            row = db.execute(_LEASE, {'app': application_id}).fetchone()
        return None if row is None else _lease(application_id, row)

    # --- the operators' switches -------------------------------------------

    def job_settings(self, application_id: str) -> dict[str, JobSettings]:
        with self._db() as db:
            rows = db.execute('''SELECT job, enabled, schedule, timezone
                FROM onecron_job_settings WHERE application_id = %s''',
                              (application_id,)).fetchall()
        return {job: JobSettings(enabled, schedule, timezone)
                for job, enabled, schedule, timezone in rows}

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
        return {row[0]: _hold(row[1:]) for row in rows}

    def set_enabled(self, application_id: str, job: str,
                    enabled: bool) -> None:
        with self._db() as db:
            db.execute('''INSERT INTO onecron_job_settings (application_id,
                job, enabled) VALUES (%s, %s, %s)
                ON CONFLICT (application_id, job)
                DO UPDATE SET enabled = excluded.enabled''',
                       (application_id, job, bool(enabled)))

    def set_schedule(self, application_id: str, job: str,
                     schedule: str | None,
                     timezone: str | None = None) -> None:
        if schedule is None and timezone is not None:
            raise ValueError(f'a reset of the schedule of {job!r} takes no '
                             f'time zone, got {timezone!r}')
        with self._db() as db:
            db.execute('''INSERT INTO onecron_job_settings (application_id,
                job, schedule, timezone) VALUES (%s, %s, %s, %s)
                ON CONFLICT (application_id, job) DO UPDATE SET
                schedule = excluded.schedule, timezone = excluded.timezone''',
                       (application_id, job, schedule, timezone))

    def hold(self, application_id: str) -> Hold:
        with self._db() as db:
            row = db.execute('''SELECT held, since FROM onecron_holds
                WHERE application_id = %s''', (application_id,)).fetchone()
        return Hold(False, None) if row is None else _hold(row)

    def set_hold(self, application_id: str, held: bool, *,
                 now: datetime) -> Hold:
        since = utc(now)
        with self._transaction() as db:
            # a row to lock, even for an id never held: the same as none
            db.execute('''INSERT INTO onecron_holds (application_id, held)
                VALUES (%s, false) ON CONFLICT DO NOTHING''',
                       (application_id,))
            row = db.execute('''SELECT held, since FROM onecron_holds
                WHERE application_id = %s FOR UPDATE''',
                             (application_id,)).fetchone()
            assert row is not None  # inserted or there before
            before = _hold(row)
            if before.held != held:
                db.execute('''UPDATE onecron_holds SET held = %s, since = %s
                    WHERE application_id = %s''',
                           (bool(held), since, application_id))
        return before

    # --- schedulers -------------------------------------------------------

    def heartbeat(self, info: SchedulerInfo) -> None:
        self.heartbeats([info])

    def heartbeats(self, infos: Iterable[SchedulerInfo]) -> None:
        values = [(info.application_id, info.host, info.pid,
                   utc(info.alive_since), utc(info.heartbeat))
                  for info in infos]
        if not values:
            return
        with self._transaction() as db:
            db.cursor().executemany('''INSERT INTO onecron_schedulers
                (application_id, host, pid, alive_since, heartbeat)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (application_id, host, pid) DO UPDATE SET
                alive_since = excluded.alive_since,
                heartbeat = excluded.heartbeat''', values)

    def schedulers(self,
                   application_id: str | None = None) -> list[SchedulerInfo]:
        sql = '''SELECT application_id, host, pid, alive_since, heartbeat
            FROM onecron_schedulers'''
        arguments: tuple[str, ...] = ()
        if application_id is not None:
            sql += ' WHERE application_id = %s'
            arguments = (application_id,)
        # byte order, as SQLite sorts, whatever the database's collation
        sql += ' ORDER BY application_id COLLATE "C", host COLLATE "C", pid'
        with self._db() as db:
            rows = db.execute(sql, arguments).fetchall()
        return [SchedulerInfo(app, host, pid, utc(alive), utc(beat))
                for app, host, pid, alive, beat in rows]

    def forget_scheduler(self, application_id: str, host: str,
                         pid: int) -> None:
        with self._db() as db:
            db.execute('''DELETE FROM onecron_schedulers
                WHERE application_id = %s AND host = %s AND pid = %s''',
                       (application_id, host, pid))

    # --- the store itself -------------------------------------------------

    def version(self) -> int:
        with self._db() as db:
            return _stored_version(db)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for _, db in self._connections:
                if self._pid != os.getpid():  # a forked child: see above
                    self._abandoned.append(db)
                    continue
                with contextlib.suppress(psycopg.Error):
                    db.close()
            self._connections = []

    # metrics

    def stats_rows(self, application_id: str,
                   ) -> list[tuple[str, str, str, int, float]]:
        """The run stats rows of ``application_id``: one index range (see
        :mod:`onecron.stores.stats`)."""
        with self._db() as db:
            return list(db.execute(_STATS, (application_id,)).fetchall())


class _Busy(StoreError):
    """Another thread makes the store's first connection, and it takes
    longer than the store's timeout."""


def _secret_free(target: str) -> str:
    """``target``, a URL or ``key=value`` string, without its password."""
    return re.sub(r"""(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)""",
                  r'\1***', _redacted(target))


def _broken(db: _Connection, error: psycopg.Error) -> bool:
    """Whether ``error`` means that the connection ``db`` is gone."""
    if db.closed or isinstance(error, psycopg.InterfaceError):
        return True
    # class 08: connection exception; 57P: the server shuts the session
    return (error.sqlstate or '').startswith(('08', '57P'))


def _stored_version(db: _Connection) -> int:
    """The schema version in ``db``; 0 if there is no schema yet."""
    # Read the table rather than ask to_regclass() whether it exists: the
    # lookup of a table to read sees one that another session has just
    # created, where to_regclass() may answer from a stale cache. In a
    # savepoint (or a transaction), so that a missing table spoils no more.
    try:
        with db.transaction():
            row = db.execute('SELECT max(version) FROM onecron_schema'
                             ).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return 0 if row is None or row[0] is None else int(row[0])


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


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _hold(row: tuple[Any, ...]) -> Hold:
    held, since = row
    return Hold(held, _utc_or_none(since))


def _lease(application_id: str, row: tuple[Any, ...]) -> Lease:
    holder, node, acquired, renewed, expires = row
    return Lease(application_id, holder, node, utc(acquired), utc(renewed),
                 utc(expires))


def _run(row: tuple[Any, ...]) -> Run:
    (run_id, application_id, job, scheduled, trigger, started, ended,
     outcome, http_status, output, error, key) = row
    return Run(run_id, application_id, job, _utc_or_none(scheduled),
               Trigger(trigger), utc(started), _utc_or_none(ended),
               None if outcome is None else Outcome(outcome), http_status,
               output, error, key)
