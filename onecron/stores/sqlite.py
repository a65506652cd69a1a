"""The default run store: one SQLite file, shared by a host's processes.

The only module that imports :mod:`sqlite3`. The file is in WAL mode, so
readers never wait for the writer; every write is one short transaction.
Each thread of each process has its own connection: a forked child opens
new ones rather than touch its parent's.

Times are stored as UTC ISO 8601 text of fixed width, which sorts in time
order; run ids never repeat, so they page and order runs.

A run costs two short write transactions, and each page a transaction
changes costs a WAL frame: so ``runs`` has just the indexes that reads
need (see schema version 3).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
import types
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

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
    utc,
)

log = logging.getLogger(__name__)

#: the schema version this code writes (``PRAGMA user_version``)
SCHEMA_VERSION = 5

# version 1: runs, switches, holds, schedulers
_SCHEMA_1 = (
    '''CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        scheduled TEXT,
        triggered_by TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        outcome TEXT,
        http_status INTEGER,
        output TEXT NOT NULL DEFAULT '',
        error TEXT,
        run_key TEXT UNIQUE)''',
    # last_runs, runs(job=...): per job, newest first
    'CREATE INDEX runs_by_job ON runs (application_id, job, id)',
    # runs() of a whole application id, newest first
    'CREATE INDEX runs_by_application ON runs (application_id, id)',
    # running(): small, as it only holds the unfinished runs
    '''CREATE INDEX runs_unfinished ON runs (application_id, job, id)
        WHERE outcome IS NULL''',
    '''CREATE TABLE job_settings (
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        schedule TEXT,
        timezone TEXT,
        PRIMARY KEY (application_id, job))''',
    '''CREATE TABLE holds (
        application_id TEXT PRIMARY KEY,
        held INTEGER NOT NULL,
        since TEXT)''',
    '''CREATE TABLE schedulers (
        application_id TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        alive_since TEXT NOT NULL,
        heartbeat TEXT NOT NULL,
        PRIMARY KEY (application_id, host, pid))''',
)

# version 2: claims of occurrences and the schedulers' leases
_SCHEMA_2 = (
    '''CREATE TABLE claims (
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        scheduled TEXT NOT NULL,
        run_key TEXT NOT NULL,
        claimed TEXT NOT NULL,
        PRIMARY KEY (application_id, job, scheduled)) WITHOUT ROWID''',
    '''CREATE TABLE leases (
        application_id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        node TEXT NOT NULL,
        acquired TEXT NOT NULL,
        renewed TEXT NOT NULL,
        expires TEXT NOT NULL)''',
)

_RUN_COLUMNS = ('id, application_id, job, scheduled, triggered_by, started, '
                'ended, outcome, http_status, output, error, run_key')

# version 3: a run writes 3 pages, not 8. Ids come from the highest one
# and the floor in run_ids (which prune raises before deleting the newest
# runs), not from AUTOINCREMENT, which wrote sqlite_sequence on every run;
# only keyed runs enter the run_key index; the per-application and the
# unfinished-runs indexes go (runs() of an id reads each job's newest
# through runs_by_job, and the status page tells a running job from its
# newest run).
_SCHEMA_3 = (
    '''CREATE TABLE runs_3 (
        id INTEGER PRIMARY KEY,
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        scheduled TEXT,
        triggered_by TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        outcome TEXT,
        http_status INTEGER,
        output TEXT NOT NULL DEFAULT '',
        error TEXT,
        run_key TEXT)''',
    f'INSERT INTO runs_3 ({_RUN_COLUMNS}) SELECT {_RUN_COLUMNS} FROM runs',
    'CREATE TABLE run_ids (floor INTEGER NOT NULL)',
    '''INSERT INTO run_ids SELECT IFNULL((
        SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0)''',
    'DROP TABLE runs',
    'ALTER TABLE runs_3 RENAME TO runs',
    # last_runs, runs(): per job, newest first
    'CREATE INDEX runs_by_job ON runs (application_id, job, id)',
    '''CREATE UNIQUE INDEX runs_by_key ON runs (run_key)
        WHERE run_key IS NOT NULL''',
)

# version 4: a run key is unique per application id and job, not across
# the store, so that a caller's key cannot reach another job's or another
# tenant's run; ``began`` tells a run that started (start_run: a second
# start with its key is refused) from one only recorded (record_run: the
# first start takes it over). Runs stored before count as started. A
# constant default: adding the column rewrites no row, and a starting run
# stores nothing for it.
_SCHEMA_4 = (
    'ALTER TABLE runs ADD COLUMN began INTEGER NOT NULL DEFAULT 1',
    'DROP INDEX runs_by_key',
    '''CREATE UNIQUE INDEX runs_by_key ON runs (application_id, job, run_key)
        WHERE run_key IS NOT NULL''',
)

# metrics: version 5, the run stats table and the triggers that keep it
_SCHEMA_5 = stats.schema('sqlite')
_STATS = stats.query('sqlite')

#: what brings a store of version n (the index) to version n + 1
_MIGRATIONS = (_SCHEMA_1, _SCHEMA_2, _SCHEMA_3, _SCHEMA_4, _SCHEMA_5)

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

#: the permissions of the store's files: they hold every job's output and
#: the callers' run keys, for the owner's eyes only
_MODE = 0o600

#: held from creating a store file to closing it: a connection of this
#: process that opened it meanwhile would lose its locks at the close
_CREATING = threading.Lock()

#: above every run id (SQLite's rowids are signed 64-bit)
_MAX_ID = 2 ** 63 - 1

_HEARTBEAT = '''INSERT INTO schedulers (application_id, host, pid,
    alive_since, heartbeat) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (application_id, host, pid) DO UPDATE SET
    alive_since = excluded.alive_since, heartbeat = excluded.heartbeat'''

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


class SqliteStore(Store):
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

    # --- connections --------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self._make_private()
        db = sqlite3.connect(self.path, timeout=self.timeout,
                             isolation_level=None, check_same_thread=False)
        try:
            db.execute(f'PRAGMA busy_timeout = {round(self.timeout * 1000)}')
            mode = self._journal_mode_wal(db)
            if mode != 'wal':
                log.warning('%r: journal mode is %s, not wal; readers and '
                            'writers will wait for each other', self, mode)
            db.execute('PRAGMA synchronous = NORMAL')
            db.execute(f'PRAGMA wal_autocheckpoint = {self.CHECKPOINT_PAGES}')
            self._check_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    def _make_private(self) -> None:
        """Create the file for the owner alone, or check the one there,
        before SQLite opens it.

        SQLite creates a file as the umask says (0644: any local user
        reads every output and run key); its ``-wal`` and ``-shm`` files
        get the database file's permissions. So the file is created here,
        0600 whatever the umask, and a file of ours (or its ``-wal`` or
        ``-shm``) that others may use is tightened to its owner's bits. No
        symbolic link is followed (in a shared directory, another user's
        link could point at any file of ours), and only a regular file is
        opened (a FIFO would block).

        An existing file is never opened here: closing a descriptor of a
        file drops every POSIX lock the process holds on it, the locks of
        its open SQLite connections too, and that corrupts the database.
        """
        for _ in range(3):  # another process may remove it in between
            with _CREATING:  # our own connections open it after the close
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL
                                 | os.O_NOFOLLOW | os.O_WRONLY
                                 | os.O_CLOEXEC, _MODE)
                except FileExistsError:
                    pass
                else:
                    try:
                        os.fchmod(fd, _MODE)  # the umask may take bits
                    finally:
                        os.close(fd)
                    break
            if self._tighten(self.path):
                break
        for name in (self.path + '-wal', self.path + '-shm'):
            self._tighten(name)

    def _tighten(self, name: str) -> bool:
        """Take the group's and others' permissions off the file ``name``
        if it is ours (warn once if it is another user's); False if there
        is no such file."""
        try:
            status = os.lstat(name)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(status.st_mode):
            raise StoreError(
                f'SQLite store {self.path}: {name} is a symbolic link, which '
                'onecron does not follow: give the path of the file itself',
                location=self.path)
        if not stat.S_ISREG(status.st_mode):
            raise StoreError(f'SQLite store {self.path}: {name} is not a '
                             'regular file', location=self.path)
        mode = stat.S_IMODE(status.st_mode)
        if not mode & 0o077:
            return True
        if status.st_uid == os.geteuid():
            os.chmod(name, mode & 0o700)  # by path: see _make_private
            log.info('%r: %s could be used by other users (mode %03o): now '
                     '%03o', self, name, mode, mode & 0o700)
        elif name not in self._loose:
            self._loose.add(name)
            log.warning('%r: %s belongs to another user and other users may '
                        'use it (mode %03o): onecron cannot tighten it', self,
                        name, mode)
        return True

    def _journal_mode_wal(self, db: sqlite3.Connection) -> str:
        """Put the file in WAL mode; the journal mode it is in after.

        Processes that open a file together all ask for WAL: SQLite lets
        one of them switch and answers the others "database is locked" at
        once, without waiting, so they ask again until ``timeout``.
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                mode: str = db.execute('PRAGMA journal_mode = WAL'
                                       ).fetchone()[0]
                return mode
            except sqlite3.OperationalError as error:
                if not _busy(error) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _check_schema(self, db: sqlite3.Connection) -> None:
        """Create the schema in a new file, or upgrade an older one.

        Processes that open a new file together all find version 0 at
        first; the version that counts is the one read again under the
        write lock, so that exactly one of them creates (or upgrades) the
        schema and says so, and the others, finding it done, say nothing.
        """
        if self._user_version(db) == SCHEMA_VERSION:
            return
        with self._atomic(db):
            version = self._user_version(db)  # another process may have won
            if version == SCHEMA_VERSION:
                return
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f'SQLite store {self.path} has schema version {version}, '
                    f'newer than version {SCHEMA_VERSION} that this onecron '
                    'knows: upgrade onecron', location=self.path)
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f'PRAGMA user_version = {SCHEMA_VERSION}')
        self._schema_written(version, SCHEMA_VERSION)

    @staticmethod
    def _user_version(db: sqlite3.Connection) -> int:
        version: int = db.execute('PRAGMA user_version').fetchone()[0]
        return version

    def _connection(self, shared: bool = False) -> sqlite3.Connection:
        """This thread's connection, (re)opened when needed.

        ``shared``: the process's write connection instead, which only
        one thread at a time may use (see :meth:`_write`).
        """
        if self._closed:
            raise StoreError(f'SQLite store {self.path} is closed',
                             location=self.path)
        local = self._local if not shared else self._shared
        db: sqlite3.Connection | None = getattr(local, 'db', None)
        if db is not None:
            now = time.monotonic()
            if now - local.checked < self.CHECK_FILE_EVERY:
                return db
            local.checked = now
        if db is not None and _identity(self.path) != local.file:
            self._abandon(db)
            local.db = db = None
            if self._file == local.file:  # the first thread to notice
                self._file = None
                raise StoreError(
                    f'SQLite store {self.path} was removed or replaced; the '
                    'next call opens it anew', location=self.path)
        if db is None:
            db = self._open()
            local.db, local.file = db, _identity(self.path)
            local.checked = time.monotonic()
            self._file = local.file
            with self._lock:
                self._close_orphans()
                self._connections.append((
                    _Forever if shared else threading.current_thread(), db))
        return db

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended."""
        alive = []
        for thread, db in self._connections:
            if thread.is_alive():
                alive.append((thread, db))
            else:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
        self._connections = alive

    def _abandon(self, db: sqlite3.Connection) -> None:
        """Keep ``db`` open and unused until the process ends.

        Closing a connection to a file that was removed, or that a parent
        process still uses, lets SQLite checkpoint and delete the ``-wal``
        file by name: the one that now belongs to the live database.
        """
        with self._lock:
            self._connections = [(thread, other) for thread, other
                                 in self._connections if other is not db]
            self._abandoned.append(db)

    def _after_fork(self) -> None:
        # the child has one thread; locks held by others at fork never free
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._abandoned.extend(db for _, db in self._connections)
        self._connections = []
        self._local = threading.local()
        self._shared = types.SimpleNamespace()
        self._pid = os.getpid()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn SQLite's and the file system's errors into StoreError."""
        try:
            yield
        except (sqlite3.Error, OSError) as error:
            raise self._error(error) from error

    def _error(self, error: sqlite3.Error | OSError) -> StoreError:
        return StoreError(f'SQLite store {self.path}: {error}',
                          location=self.path)

    def _db(self) -> _Use:
        """``with``: this thread's connection, for a read."""
        return self._reading

    def _write(self) -> _Use:
        """``with``: the process's one write connection, for a write.

        The threads of a process take turns here, not at SQLite's lock:
        SQLite makes a writer that finds the file locked sleep a
        millisecond or more, where this lock hands over in microseconds.
        And a connection that wrote last has nothing to catch up on, where
        one per thread would find the others' writes first. Other
        processes still meet at SQLite's lock.
        """
        return self._writing

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write() as db, self._atomic(db):
            yield db

    @staticmethod
    @contextlib.contextmanager
    def _atomic(db: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so a read followed by a
        # write cannot be overtaken by another writer
        db.execute('BEGIN IMMEDIATE')
        try:
            yield
            db.execute('COMMIT')
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute('ROLLBACK')
            raise

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

    def runs(self, application_id: str, job: str | None = None, *,
             limit: int = 50, before_id: int | None = None) -> list[Run]:
        if limit < 0:
            raise ValueError(f'limit {limit} is negative')
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
            return [_run(row) for row in rows]

    def last_runs(self, application_id: str) -> dict[str, Run]:
        with self._db() as db:
            rows = db.execute(_LAST_RUNS, {'app': application_id})
            return {run.job: run for run in map(_run, rows)}

    def get_run(self, run_id: int) -> Run | None:
        with self._db() as db:
            row = db.execute(f'SELECT {_COLUMNS} FROM runs AS r '
                             'WHERE r.id = ?', (run_id,)).fetchone()
        return None if row is None else _run(row)

    def _prune(self, keep_runs: int | None, cutoff: datetime | None,
               claims_before: datetime) -> int:
        arguments = {'keep': keep_runs,
                     'cutoff': None if cutoff is None else _text(cutoff)}
        if keep_runs is None and cutoff is None:
            sql = 'SELECT 0 WHERE 0'
        elif keep_runs is None:
            sql = 'DELETE FROM runs WHERE started < :cutoff'
        else:
            old = 'started < :cutoff OR ' if cutoff is not None else ''
            sql = f'''DELETE FROM runs WHERE id IN (
                SELECT id FROM (
                    SELECT id, started, outcome, ROW_NUMBER() OVER (
                        PARTITION BY application_id, job ORDER BY id DESC) AS n
                    FROM runs)
                WHERE {old}(outcome IS NOT NULL AND n > :keep))'''
        with self._transaction() as db:
            # the next run's id stays above those deleted here
            db.execute('''UPDATE run_ids SET floor = MAX(
                floor, IFNULL((SELECT MAX(id) FROM runs), 0))''')
            deleted: int = max(db.execute(sql, arguments).rowcount, 0)
            db.execute('DELETE FROM claims WHERE scheduled < ?',
                       (_text(claims_before),))
        return deleted

    # --- claims ---------------------------------------------------------

    def _claim(self, application_id: str, job: str, scheduled: datetime,
               key: str, now: datetime) -> bool:
        values = (application_id, job, _text(scheduled), key, _text(now))
        with self._write() as db:
            if db.execute('''INSERT INTO claims (application_id, job,
                    scheduled, run_key, claimed) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING''', values).rowcount:
                return True
            row = db.execute('''SELECT run_key FROM claims WHERE
                application_id = ? AND job = ? AND scheduled = ?''',
                             values[:3]).fetchone()
        return row is not None and row[0] == key

    def _claimed(self, application_id: str, job: str, since: datetime,
                 until: datetime) -> set[datetime]:
        with self._db() as db:
            rows = db.execute('''SELECT scheduled FROM claims WHERE
                application_id = ? AND job = ?
                AND scheduled BETWEEN ? AND ?''',
                              (application_id, job, _text(since),
                               _text(until))).fetchall()
        return {_time(row[0]) for row in rows}

    def _unstarted_claims(self, application_id: str, job: str,
                          since: datetime, until: datetime,
                          claimed_before: datetime) -> dict[str, datetime]:
        with self._db() as db:
            rows = db.execute('''SELECT c.run_key, c.scheduled
                FROM claims AS c WHERE c.application_id = ? AND c.job = ?
                AND c.scheduled BETWEEN ? AND ? AND c.claimed < ?
                AND NOT EXISTS (SELECT 1 FROM runs AS r
                    WHERE r.application_id = c.application_id
                    AND r.job = c.job AND r.run_key = c.run_key)''',
                              (application_id, job, _text(since),
                               _text(until),
                               _text(claimed_before))).fetchall()
        return {key: _time(scheduled) for key, scheduled in rows}

    # --- leases ---------------------------------------------------------

    def _take_lease(self, application_id: str, holder: str, node: str,
                    ttl: float, now: datetime) -> tuple[bool, Lease | None]:
        with self._transaction() as db:
            return _take_lease(db, application_id, holder, node, ttl, now)

    def renew_leases(self, application_ids: Iterable[str], *, holder: str,
                     node: str, ttl: float, now: datetime) -> set[str]:
        if not ttl > 0:
            raise ValueError(f'lease ttl must be positive, got {ttl!r}')
        now = utc(now)
        ids = list(application_ids)
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

    def lease(self, application_id: str) -> Lease | None:
        with self._db() as db:
            return _lease(db, application_id)

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
        return {application_id: Hold(bool(held), _time_or_none(since))
                for application_id, held, since in rows
                if application_id in wanted}

    def heartbeats(self, infos: Iterable[SchedulerInfo]) -> None:
        values = [(info.application_id, info.host, info.pid,
                   _text(info.alive_since), _text(info.heartbeat))
                  for info in infos]
        if not values:
            return
        with self._transaction() as db:
            db.executemany(_HEARTBEAT, values)

    def job_settings(self, application_id: str) -> dict[str, JobSettings]:
        with self._db() as db:
            rows = db.execute('''SELECT job, enabled, schedule, timezone
                FROM job_settings WHERE application_id = ?''',
                              (application_id,)).fetchall()
        return {job: JobSettings(bool(enabled), schedule, timezone)
                for job, enabled, schedule, timezone in rows}

    def set_enabled(self, application_id: str, job: str,
                    enabled: bool) -> None:
        with self._write() as db:
            db.execute('''INSERT INTO job_settings (application_id, job,
                enabled) VALUES (?, ?, ?) ON CONFLICT (application_id, job)
                DO UPDATE SET enabled = excluded.enabled''',
                       (application_id, job, int(enabled)))

    def set_schedule(self, application_id: str, job: str,
                     schedule: str | None,
                     timezone: str | None = None) -> None:
        if schedule is None and timezone is not None:
            raise ValueError(f'a reset of the schedule of {job!r} takes no '
                             f'time zone, got {timezone!r}')
        with self._write() as db:
            db.execute('''INSERT INTO job_settings (application_id, job,
                schedule, timezone) VALUES (?, ?, ?, ?)
                ON CONFLICT (application_id, job) DO UPDATE SET
                schedule = excluded.schedule, timezone = excluded.timezone''',
                       (application_id, job, schedule, timezone))

    def hold(self, application_id: str) -> Hold:
        with self._db() as db:
            return _hold(db, application_id)

    def set_hold(self, application_id: str, held: bool, *,
                 now: datetime) -> Hold:
        since = _text(now)
        with self._transaction() as db:
            before = _hold(db, application_id)
            if before.held != held:
                db.execute('''INSERT INTO holds (application_id, held, since)
                    VALUES (?, ?, ?) ON CONFLICT (application_id) DO UPDATE
                    SET held = excluded.held, since = excluded.since''',
                           (application_id, int(held), since))
        return before

    # --- schedulers -------------------------------------------------------

    def heartbeat(self, info: SchedulerInfo) -> None:
        self.heartbeats([info])

    def schedulers(self,
                   application_id: str | None = None) -> list[SchedulerInfo]:
        sql = '''SELECT application_id, host, pid, alive_since, heartbeat
            FROM schedulers'''
        arguments: tuple[str, ...] = ()
        if application_id is not None:
            sql += ' WHERE application_id = ?'
            arguments = (application_id,)
        sql += ' ORDER BY application_id, host, pid'
        with self._db() as db:
            rows = db.execute(sql, arguments).fetchall()
        return [SchedulerInfo(app, host, pid, _time(alive), _time(beat))
                for app, host, pid, alive, beat in rows]

    def forget_scheduler(self, application_id: str, host: str,
                         pid: int) -> None:
        with self._write() as db:
            db.execute('''DELETE FROM schedulers
                WHERE application_id = ? AND host = ? AND pid = ?''',
                       (application_id, host, pid))

    # --- the store itself -------------------------------------------------

    def version(self) -> int:
        with self._db() as db:
            return self._user_version(db)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pid == os.getpid():
                for _, db in self._connections:
                    with contextlib.suppress(sqlite3.Error):
                        db.close()
            self._connections = []

    # metrics

    def stats_rows(self, application_id: str,
                   ) -> list[tuple[str, str, str, int, float]]:
        """The run stats rows of ``application_id``: one index range (see
        :mod:`onecron.stores.stats`)."""
        with self._db() as db:
            return list(db.execute(_STATS, (application_id,)).fetchall())


class _ForkGuard:
    """Keeps ``os.fork`` out while any thread is inside SQLite.

    A child forked while another thread holds one of SQLite's own mutexes,
    or this module's write lock, inherits them held and blocks on its
    first store call for good (gunicorn ``--preload`` forks its workers
    while the scheduler thread writes). Store calls enter side by side
    (``with _FORKS``); a fork waits until none is inside and holds new
    ones at the door.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._door = threading.Condition(self._lock)
        self._inside = 0
        self._forking = False

    def __enter__(self) -> None:
        with self._lock:
            while self._forking:
                self._door.wait()
            self._inside += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._forking and not self._inside:
                self._door.notify_all()

    def before_fork(self) -> None:
        self._lock.acquire()  # held through the fork
        self._forking = True
        while self._inside:
            self._door.wait()

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._door.notify_all()
        self._lock.release()

    def after_fork_in_child(self) -> None:
        self._reset()  # the parent's threads are not here


_FORKS = _ForkGuard()
os.register_at_fork(before=_FORKS.before_fork,
                    after_in_parent=_FORKS.after_fork_in_parent,
                    after_in_child=_FORKS.after_fork_in_child)


class _Use:
    """``with``: a store's connection inside the fork guard, with SQLite's
    and the file system's errors raised as StoreError.

    ``shared``: the process's write connection, one thread at a time;
    else the calling thread's own. One instance per store and kind, made
    once: every store call passes here, so it costs no generator.
    """

    __slots__ = ('_store', '_shared')

    def __init__(self, store: SqliteStore, *, shared: bool) -> None:
        self._store = store
        self._shared = shared

    def __enter__(self) -> sqlite3.Connection:
        store = self._store
        _FORKS.__enter__()
        try:
            if os.getpid() != store._pid:
                store._after_fork()  # before the lock: it may be a copy
            if not self._shared:
                return store._connection()
            store._write_lock.acquire()
            try:
                return store._connection(shared=True)
            except BaseException:
                store._write_lock.release()
                raise
        except BaseException as error:
            _FORKS.__exit__()
            if isinstance(error, (sqlite3.Error, OSError)):
                raise store._error(error) from error
            raise

    def __exit__(self, kind: object, error: BaseException | None,
                 traceback: object) -> None:
        store = self._store
        if self._shared:
            store._write_lock.release()
        _FORKS.__exit__()
        if isinstance(error, (sqlite3.Error, OSError)):
            raise store._error(error) from error


class _Owner(Protocol):
    """What a connection belongs to: it is closed once that is gone."""

    def is_alive(self) -> bool: ...


class _Forever:
    """The owner of the shared write connection: it outlives threads."""

    @staticmethod
    def is_alive() -> bool:
        return True


def _busy(error: sqlite3.OperationalError) -> bool:
    """Whether ``error`` is SQLite's SQLITE_BUSY ("database is locked")."""
    code: int | None = getattr(error, 'sqlite_errorcode', None)
    if code is None:  # Python 3.10 has only the message
        return str(error).startswith('database is locked')
    return code & 0xFF == 5  # SQLITE_BUSY and its extended codes


def _identity(path: str) -> tuple[int, int] | None:
    """What tells the file at ``path`` from a new one; None if missing."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _row_id(cursor: sqlite3.Cursor) -> int:
    assert cursor.lastrowid is not None  # set by every INSERT
    return cursor.lastrowid


def _text(moment: datetime) -> str:
    """The stored form of a time: fixed-width UTC ISO 8601 text."""
    return utc(moment).isoformat(timespec='microseconds')


def _text_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _text(moment)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _time_or_none(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _hold(db: sqlite3.Connection, application_id: str) -> Hold:
    row = db.execute('SELECT held, since FROM holds WHERE application_id = ?',
                     (application_id,)).fetchone()
    if row is None:
        return Hold(False, None)
    return Hold(bool(row[0]), _time_or_none(row[1]))


def _take_lease(db: sqlite3.Connection, application_id: str, holder: str,
                node: str, ttl: float,
                now: datetime) -> tuple[bool, Lease | None]:
    """Store.take_lease, inside the caller's write transaction."""
    expires = _text(now + timedelta(seconds=ttl))
    before = _lease(db, application_id)
    if before is None:
        db.execute('''INSERT INTO leases (application_id, holder, node,
            acquired, renewed, expires) VALUES (?, ?, ?, ?, ?, ?)''', (
            application_id, holder, node, _text(now), _text(now), expires))
        return True, None
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


def _lease(db: sqlite3.Connection, application_id: str) -> Lease | None:
    row = db.execute('''SELECT holder, node, acquired, renewed, expires
        FROM leases WHERE application_id = ?''', (application_id,)).fetchone()
    if row is None:
        return None
    holder, node, acquired, renewed, expires = row
    return Lease(application_id, holder, node, _time(acquired),
                 _time(renewed), _time(expires))


def _run(row: tuple[Any, ...]) -> Run:
    (run_id, application_id, job, scheduled, trigger, started, ended,
     outcome, http_status, output, error, key) = row
    return Run(run_id, application_id, job, _time_or_none(scheduled),
               Trigger(trigger), _time(started), _time_or_none(ended),
               None if outcome is None else Outcome(outcome), http_status,
               output, error, key)
