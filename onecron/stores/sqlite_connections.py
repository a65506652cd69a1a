"""The SQLite store's connections: its files, their permissions, forks.

With :mod:`onecron.stores.sqlite`, the only modules that import
:mod:`sqlite3`. Each thread of each process has its own connection to
read, and each process one to write; a forked child opens new ones rather
than touch its parent's, and a file that is removed or replaced is opened
anew.
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
from collections.abc import Iterator
from typing import Protocol

from onecron.stores.base import StoreError
from onecron.stores.sql import SqlStore
from onecron.stores.sqlite_schema import _MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger('onecron.stores.sqlite')

#: the permissions of the store's files: they hold every job's output and
#: the callers' run keys, for the owner's eyes only
_MODE = 0o600

#: held from creating a store file to closing it: a connection of this
#: process that opened it meanwhile would lose its locks at the close
_CREATING = threading.Lock()


class SqliteConnections(SqlStore):
    """How an SQLite store opens, checks, shares and closes its
    connections; :class:`~onecron.stores.sqlite.SqliteStore` sets the
    attributes."""

    path: str
    timeout: float
    CHECK_FILE_EVERY: float
    CHECKPOINT_PAGES: int
    _pid: int
    _lock: threading.Lock
    _write_lock: threading.Lock
    _local: threading.local
    _shared: types.SimpleNamespace
    _loose: set[str]
    _connections: list[tuple[_Owner, sqlite3.Connection]]
    _abandoned: list[sqlite3.Connection]
    _file: tuple[int, int] | None
    _closed: bool
    _reading: _Use
    _writing: _Use

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

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pid == os.getpid():
                for _, db in self._connections:
                    with contextlib.suppress(sqlite3.Error):
                        db.close()
            self._connections = []


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

    def __init__(self, store: SqliteConnections, *, shared: bool) -> None:
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
