"""The PostgreSQL store's connections: opened late, lost, reopened.

With :mod:`onecron.stores.postgres`, the only modules that import
:mod:`psycopg` (version 3). See :mod:`onecron.stores.postgres` for the
rules: a connection per thread, each call its own transaction with its
own time limits, a backoff after a lost connection, a parent's
connections never touched by a forked child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from onecron.stores.base import StoreError, _redacted
from onecron.stores.postgres_schema import (
    _MIGRATION_LOCK,
    _MIGRATIONS,
    SCHEMA_VERSION,
)
from onecron.stores.sql import SqlStore

log = logging.getLogger('onecron.stores.postgres')

#: seconds before the first reconnection, doubled after each failed one
FIRST_RETRY = 0.5
#: the most seconds between attempts to reconnect
LAST_RETRY = 30.0

#: seconds a schema upgrade or a prune may take: a lone, rare writer
SLOW_TIMEOUT = 300
_Connection = psycopg.Connection[tuple[Any, ...]]
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


class PostgresConnections(SqlStore):
    """How a PostgreSQL store connects, loses and finds its server again,
    and closes; :class:`~onecron.stores.postgres.PostgresStore` sets the
    attributes."""

    location: str
    timeout: float
    _password: str | None
    _conninfo: str
    _milliseconds: str
    _pid: int
    _lock: threading.Lock
    _local: threading.local
    _connections: list[tuple[threading.Thread, _Connection]]
    _abandoned: list[_Connection]
    _generation: int
    _retry_delay: float
    _retry_at: float
    _closed: bool
    _setup: threading.Lock
    _ready: bool

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
    def _write(self) -> contextlib.AbstractContextManager[_Connection]:
        """``with``: a connection to write: every call is a transaction."""
        return self._db()

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


