"""The default run store: one SQLite file, shared by a host's processes.

With :mod:`onecron.stores.sqlite_connections`, the only modules that
import :mod:`sqlite3`. The file is in WAL mode, so readers never wait for
the writer; every write is one short transaction. Each thread of each
process has its own connection: a forked child opens new ones rather than
touch its parent's (see :mod:`onecron.stores.sqlite_connections`). The
schema and its upgrades are in :mod:`onecron.stores.sqlite_schema`; the
statements the backends share in :mod:`onecron.stores.sql`: here are only
the tuned ones.

Times are stored as UTC ISO 8601 text of fixed width, which sorts in time
order; run ids never repeat, so they page and order runs.

A run costs two short write transactions, and each page a transaction
changes costs a WAL frame: so ``runs`` has just the indexes that reads
need (see schema version 3).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import types
from collections.abc import Iterable
from datetime import datetime, timedelta

from onecron.stores import stats
from onecron.stores.base import (
    Hold,
    JobSettings,
    Lease,
    Outcome,
    Run,
    RunKeyTaken,
    Trigger,
)
from onecron.stores.sql import Dialect, Statements
from onecron.stores.sqlite_connections import (
    _FORKS,
    SqliteConnections,
    _Owner,
    _Use,
)
from onecron.stores.sqlite_schema import _MIGRATIONS as _MIGRATIONS
from onecron.stores.sqlite_schema import _RUN_COLUMNS
from onecron.stores.sqlite_schema import _SCHEMA_1 as _SCHEMA_1
from onecron.stores.sqlite_schema import _SCHEMA_2 as _SCHEMA_2
from onecron.stores.sqlite_schema import _SCHEMA_3 as _SCHEMA_3
from onecron.stores.sqlite_schema import _SCHEMA_4 as _SCHEMA_4
from onecron.stores.sqlite_schema import SCHEMA_VERSION as SCHEMA_VERSION

log = logging.getLogger(__name__)

_COLUMNS = ', '.join(f'r.{name}' for name in _RUN_COLUMNS.split(', '))

# An application id's jobs by a loose index scan: hop from job to job
# through runs_by_job, so the cost grows with the number of jobs and not
# with the number of stored runs.
_JOBS = '''
    WITH RECURSIVE jobs(job) AS (
        SELECT MIN(job) FROM runs WHERE application_id = :app
        UNION ALL
        SELECT (SELECT MIN(job) FROM runs
                WHERE application_id = :app AND job > jobs.job)
        FROM jobs WHERE jobs.job IS NOT NULL)'''

# each job's MAX(id), from runs_by_job too
_LAST_RUNS = f'''{_JOBS}
    SELECT {_COLUMNS} FROM jobs JOIN runs AS r ON r.id = (
        SELECT MAX(id) FROM runs
        WHERE application_id = :app AND job = jobs.job)'''

# runs() of a whole application id: each job's newest, then the newest
# of those
_APPLICATION_RUNS = f'''{_JOBS}
    SELECT {_COLUMNS} FROM jobs JOIN runs AS r ON r.id IN (
        SELECT id FROM runs
        WHERE application_id = :app AND job = jobs.job AND id < :before
        ORDER BY id DESC LIMIT :limit)
    ORDER BY r.id DESC LIMIT :limit'''


def _inserts(columns: str) -> tuple[str, str]:
    """The INSERTs of a run's ``columns`` (after its id): without a key,
    and with one.

    A run gets one id above the highest there is or was (see _SCHEMA_3).
    A run whose key its job has already is not written again; a run
    without a key is not in that index, and the check would cost every
    external call.
    """
    values = ', '.join('?' * len(columns.split(',')))
    insert = f'''INSERT INTO runs (id, {columns}) VALUES (
        (SELECT MAX(IFNULL((SELECT MAX(id) FROM runs), 0), floor) + 1
         FROM run_ids), {values})'''
    return insert, insert + '''
        ON CONFLICT (application_id, job, run_key) WHERE run_key IS NOT NULL
        DO NOTHING'''


#: a whole run (skipped, missed), recorded: not started
_INSERT_RUN = _inserts(_RUN_COLUMNS.removeprefix('id, ') + ', began')
#: a run as it starts: the other columns keep their defaults, so every
#: job run binds and encodes only these
_START_RUN = _inserts(
    'application_id, job, scheduled, triggered_by, started, run_key')

#: the run of a job with a key (the values start with application_id, job)
_KEYED = '''SELECT id, began FROM runs
    WHERE application_id = ? AND job = ? AND run_key = ?'''

#: above every run id (SQLite's rowids are signed 64-bit)
_MAX_ID = 2 ** 63 - 1

# an unfinished run still has only what _START_RUN wrote (no end, status,
# output or error), so for it Store._finish's rule sets every column: the
# one statement of every job's end, with _FINISH for the rest
_FINISH_RUNNING = '''UPDATE runs SET outcome = ?, ended = ?, http_status = ?,
    output = ?, error = ? WHERE id = ? AND outcome IS NULL'''

# see Store._finish for the rule; SET expressions read the old row
_FINISH = '''
    UPDATE runs SET
        outcome = CASE WHEN outcome = 'timed out' THEN outcome
                       ELSE :outcome END,
        ended = CASE WHEN :outcome = 'timed out' AND ended IS NOT NULL
                     THEN ended ELSE :ended END,
        http_status = COALESCE(:http_status, http_status),
        output = CASE WHEN :output = '' THEN output ELSE :output END,
        error = COALESCE(:error, error)
    WHERE '''


def _text(moment: datetime) -> str:
    """The stored form of a UTC time (:class:`Store` made it one): fixed-
    width ISO 8601 text, which sorts in time order."""
    return moment.isoformat(timespec='microseconds')


def _text_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _text(moment)


_DIALECT = Dialect('?', '', _text, datetime.fromisoformat)
_SQL = Statements(_DIALECT)


class SqliteStore(SqliteConnections):
    """The run store in the SQLite file at ``path``, created on first use.

    ``timeout`` is how many seconds a write waits for another writer
    before it fails with :class:`~onecron.stores.base.StoreError`. Opening
    checks
    the file at once, so a bad path or a newer schema fails at start-up.

    The file, and the ``-wal`` and ``-shm`` files beside it, can be read
    and written by their owner only (0600), whatever the umask; a file of
    ours found open to others is tightened. ``path`` must name the file
    itself, not a symbolic link.
    """

    #: how often, in seconds, a connection checks that the file at the
    #: path is still the one it opened: each run's write would otherwise
    #: pay a stat()
    CHECK_FILE_EVERY = 0.25

    #: WAL pages after which a commit checkpoints them into the file
    #: (SQLite's default is 1000): a checkpoint syncs the disk twice, and
    #: fewer, larger ones take about 25 us off the mean job run, for a
    #: ``-wal`` file of up to 16 MiB
    CHECKPOINT_PAGES = 4000

    _dialect = _DIALECT
    _sql = _SQL
    _stats_query = stats.query('sqlite')

    def __init__(self, path: str | os.PathLike[str], *,
                 timeout: float = 5.0) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.timeout = timeout
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._shared = types.SimpleNamespace()
        # files of others, open to others, warned about once
        self._loose: set[str] = set()
        # (owning thread, connection): closed when the thread is gone
        self._connections: list[tuple[_Owner, sqlite3.Connection]] = []
        # connections that must never be closed, see _abandon
        self._abandoned: list[sqlite3.Connection] = []
        self._file: tuple[int, int] | None = None
        self._closed = False
        self._reading = _Use(self, shared=False)
        self._writing = _Use(self, shared=True)
        # closed again at once: a process that forks after this holds no
        # connection its children could inherit
        with _FORKS, self._errors():
            self._open().close()

    def __repr__(self) -> str:
        return f'<SqliteStore {self.path!r}>'

    # --- runs -----------------------------------------------------------

    def _insert_run(self, run: Run) -> int:
        return self._insert(_INSERT_RUN, run.key, (
            run.application_id, run.job, _text_or_none(run.scheduled),
            run.trigger.value, _text(run.started), _text_or_none(run.ended),
            None if run.outcome is None else run.outcome.value,
            run.http_status, run.output, run.error, run.key, 0),
            start=False)

    def _start_run(self, application_id: str, job: str,
                   scheduled: datetime | None, trigger: Trigger,
                   started: datetime, key: str | None) -> int:
        return self._insert(_START_RUN, key, (
            application_id, job, _text_or_none(scheduled), trigger.value,
            _text(started), key), start=True)

    def _insert(self, inserts: tuple[str, str], key: str | None,
                values: tuple[object, ...], *, start: bool) -> int:
        """Write a run, or find the run of its job with its ``key``.

        The values begin with the application id and the job. ``start``:
        the run starts, which takes over a run only recorded with the key
        and is refused (:class:`RunKeyTaken`) for one that started.
        """
        with self._write() as db:
            if key is None:
                return _row_id(db.execute(inserts[0], values))
            cursor = db.execute(inserts[1], values)
            if cursor.rowcount:
                return _row_id(cursor)
            # the job has a run with this key: which, and did it start?
            application_id, job = values[0], values[1]
            with self._atomic(db):
                row = db.execute(_KEYED, (application_id, job,
                                          key)).fetchone()
                if row is None:  # pruned since: none has the key now
                    return _row_id(db.execute(inserts[0], values))
                run_id: int = row[0]
                if not start:
                    return run_id  # a retried call: written already
                if row[1]:
                    raise RunKeyTaken(str(application_id), str(job), run_id)
                db.execute('UPDATE runs SET began = 1 WHERE id = ?',
                           (run_id,))
                return run_id

    def _finish(self, run_id: int | None, key: tuple[str, str, str] | None,
                ended: datetime, outcome: Outcome, http_status: int | None,
                output: str, error: str | None) -> bool:
        ended_text = _text(ended)
        with self._write() as db:
            if run_id is not None:
                if db.execute(_FINISH_RUNNING, (
                        outcome.value, ended_text, http_status, output,
                        error, run_id)).rowcount:
                    return True
                where = 'id = :id'
            else:
                where = ('application_id = :app AND job = :job '
                         'AND run_key = :key')
            application_id, job, run_key = key or (None, None, None)
            cursor = db.execute(_FINISH + where, {
                'outcome': outcome.value, 'ended': ended_text,
                'http_status': http_status, 'output': output,
                'error': error, 'id': run_id, 'app': application_id,
                'job': job, 'key': run_key})
            return cursor.rowcount > 0

    def _runs(self, application_id: str, job: str | None, limit: int,
              before_id: int | None) -> list[Run]:
        before = _MAX_ID if before_id is None else before_id
        with self._db() as db:
            if job is None:
                rows = db.execute(_APPLICATION_RUNS, {
                    'app': application_id, 'before': before, 'limit': limit})
            else:
                rows = db.execute(
                    f'''SELECT {_COLUMNS} FROM runs AS r
                    WHERE r.application_id = ? AND r.job = ? AND r.id < ?
                    ORDER BY r.id DESC LIMIT ?''',
                    (application_id, job, before, limit))
            return [_DIALECT.run(row) for row in rows]

    def last_runs(self, application_id: str) -> dict[str, Run]:
        with self._db() as db:
            rows = db.execute(_LAST_RUNS, {'app': application_id})
            return {run.job: run for run in map(_DIALECT.run, rows)}

    def _prune(self, keep_runs: int | None, cutoff: datetime | None,
               claims_before: datetime) -> int:
        delete = _SQL.prune(keep_runs, _text_or_none(cutoff))
        deleted = 0
        with self._transaction() as db:
            # the next run's id stays above those deleted here
            db.execute('''UPDATE run_ids SET floor = MAX(
                floor, IFNULL((SELECT MAX(id) FROM runs), 0))''')
            if delete is not None:
                deleted = max(db.execute(*delete).rowcount, 0)
            db.execute(_SQL.prune_claims, (_text(claims_before),))
        return deleted

    # --- leases ---------------------------------------------------------

    def _take_lease(self, application_id: str, holder: str, node: str,
                    ttl: float, now: datetime) -> tuple[bool, Lease | None]:
        with self._transaction() as db:
            return _take_lease(db, application_id, holder, node, ttl, now)

    def _renew_leases(self, application_ids: list[str], holder: str,
                      node: str, ttl: float, now: datetime) -> set[str]:
        ids = application_ids
        expires = _text(now + timedelta(seconds=ttl))
        renewed: set[str] = set()
        with self._transaction() as db:  # one commit for all
            for start in range(0, len(ids), 500):  # SQLite's variables
                chunk = ids[start:start + 500]
                renewed.update(row[0] for row in db.execute(
                    f'''UPDATE leases SET renewed = ?, expires = ?
                    WHERE holder = ? AND application_id IN
                    ({", ".join("?" * len(chunk))})
                    RETURNING application_id''',
                    (_text(now), expires, holder, *chunk)))
            # the rest (lost, expired, never held) one by one
            return renewed | {
                application_id for application_id in ids
                if application_id not in renewed and _take_lease(
                    db, application_id, holder, node, ttl, now)[0]}

    def release_lease(self, application_id: str, holder: str) -> None:
        with self._write() as db:
            db.execute('''UPDATE leases SET expires = renewed
                WHERE application_id = ? AND holder = ?''',
                       (application_id, holder))

    # --- the operators' switches -------------------------------------------

    def job_settings_of(self, application_ids: Iterable[str],
                        ) -> dict[str, dict[str, JobSettings]]:
        wanted = set(application_ids)
        found: dict[str, dict[str, JobSettings]] = {}
        with self._db() as db:  # only switched jobs have rows: read all
            rows = db.execute('''SELECT application_id, job, enabled,
                schedule, timezone FROM job_settings''').fetchall()
        for application_id, job, enabled, schedule, timezone in rows:
            if application_id in wanted:
                found.setdefault(application_id, {})[job] = JobSettings(
                    bool(enabled), schedule, timezone)
        return found

    def holds_of(self, application_ids: Iterable[str]) -> dict[str, Hold]:
        wanted = set(application_ids)
        with self._db() as db:
            rows = db.execute(
                'SELECT application_id, held, since FROM holds').fetchall()
        return {row[0]: _DIALECT.hold(row[1:]) for row in rows
                if row[0] in wanted}

    def _set_hold(self, application_id: str, held: bool,
                  now: datetime) -> Hold:
        with self._transaction() as db:
            before = _DIALECT.hold(db.execute(
                _SQL.hold, (application_id,)).fetchone())
            if before.held != held:
                db.execute('''INSERT INTO holds (application_id, held, since)
                    VALUES (?, ?, ?) ON CONFLICT (application_id) DO UPDATE
                    SET held = excluded.held, since = excluded.since''',
                           (application_id, held, _text(now)))
        return before

    # --- the store itself -------------------------------------------------

    def version(self) -> int:
        with self._db() as db:
            return self._user_version(db)


def _row_id(cursor: sqlite3.Cursor) -> int:
    assert cursor.lastrowid is not None  # set by every INSERT
    return cursor.lastrowid


def _take_lease(db: sqlite3.Connection, application_id: str, holder: str,
                node: str, ttl: float,
                now: datetime) -> tuple[bool, Lease | None]:
    """Store.take_lease, inside the caller's write transaction."""
    expires = _text(now + timedelta(seconds=ttl))
    row = db.execute(_SQL.lease, (application_id,)).fetchone()
    if row is None:
        db.execute('''INSERT INTO leases (application_id, holder, node,
            acquired, renewed, expires) VALUES (?, ?, ?, ?, ?, ?)''', (
            application_id, holder, node, _text(now), _text(now), expires))
        return True, None
    before = _DIALECT.lease(application_id, row)
    if before.holder == holder:
        acquired = before.acquired
    elif before.node == node or before.expires < now:
        acquired = now
    else:
        return False, before
    db.execute('''UPDATE leases SET holder = ?, node = ?, acquired = ?,
        renewed = ?, expires = ? WHERE application_id = ?''', (
        holder, node, _text(acquired), _text(now), expires, application_id))
    return True, before
