"""A throwaway PostgreSQL cluster for the tests, and the means to upset it.

:class:`Cluster` runs ``initdb`` and ``pg_ctl`` in a fresh temporary
directory owned by an unprivileged user (``postgres`` when the tests run as
root, else the user running them). It listens on 127.0.0.1 at a free port,
keeps its sockets in that directory, trusts loopback clients and does not
sync to disk: a database for tests, started once per session and removed
after.

:class:`Bouncer` puts Debian's PgBouncer, in transaction pooling mode, in
front of a cluster, run as the same user from a temporary directory too.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import psycopg

#: the user the server runs as when the tests run as root
SERVER_USER = 'postgres'

SETTINGS = {
    'listen_addresses': "'127.0.0.1'",
    'fsync': 'off',
    'full_page_writes': 'off',
    'max_connections': '100',
    'log_min_messages': 'warning',
}


class MissingServer(RuntimeError):
    """No PostgreSQL server (or PgBouncer) binaries on this machine."""


def binaries() -> str:
    """The directory of ``initdb`` and ``pg_ctl``: on PATH or Debian's."""
    initdb = shutil.which('initdb')
    if initdb is not None and shutil.which('pg_ctl') is not None:
        return os.path.dirname(os.path.realpath(initdb))
    candidates = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'),
                        key=lambda path: _version(path.split('/')[-3]))
    for initdb in reversed(candidates):
        if os.access(os.path.join(os.path.dirname(initdb), 'pg_ctl'),
                     os.X_OK):
            return os.path.dirname(initdb)
    raise MissingServer(
        'the PostgreSQL tests need the server binaries initdb and pg_ctl, '
        'on PATH or in /usr/lib/postgresql/*/bin: install them (Debian: '
        'apt-get install postgresql; .ci/run does it)')


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split('.') if part.isdigit())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port: int = probe.getsockname()[1]
    return port


class Cluster:
    """A PostgreSQL cluster in a temporary directory; see the module."""

    def __init__(self) -> None:
        self.bin = binaries()
        self._user: str | None = None
        account = None
        if os.geteuid() == 0:  # the server refuses to run as root
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise MissingServer(
                    f'running as root, the PostgreSQL tests need the user '
                    f'{SERVER_USER!r} to run the server as') from None
            self._user = SERVER_USER
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix='onecron-postgresql-')
        if account is not None:
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.data = os.path.join(self.root, 'data')
        self.log = os.path.join(self.root, 'server.log')
        self._databases = 0
        self._stopped = True
        try:
            self._create()
            self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _create(self) -> None:
        self._run('initdb', '--pgdata', self.data, '--username', 'postgres',
                  '--auth', 'trust', '--encoding', 'UTF8', '--locale', 'C',
                  '--no-sync', '--no-instructions')
        settings = dict(SETTINGS, port=str(self.port),
                        unix_socket_directories=f"'{self.root}'")
        # appended to: the file stays the server user's
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as conf:
            conf.writelines(f'{name} = {value}\n'
                            for name, value in settings.items())

    def __repr__(self) -> str:
        return f'<Cluster {self.root} port {self.port}>'

    def _run(self, program: str, *arguments: str,
             check: bool = True) -> int:
        """Run ``program`` as the server's user; return its exit status."""
        command: Sequence[str] = [os.path.join(self.bin, program), *arguments]
        if self._user is not None:
            command = ['runuser', '-u', self._user, '--', *command]
        result = subprocess.run(command, cwd=self.root,
                                stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=60)
        if check and result.returncode:
            raise RuntimeError(f'{" ".join(command)} failed '
                               f'({result.returncode}): {result.stderr}'
                               f'{self._log_tail()}')
        return result.returncode

    def _log_tail(self) -> str:
        try:
            with open(self.log) as log:
                return '\nserver log:\n' + ''.join(log.readlines()[-20:])
        except OSError:
            return ''

    # --- control -----------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run('pg_ctl', 'start', '--pgdata', self.data, '--log', self.log,
                  '--wait', '--timeout', '60')
        self._stopped = False

    def stop(self, mode: str = 'immediate') -> None:
        """Stop the server (by default as a crash would: no goodbyes)."""
        self._run('pg_ctl', 'stop', '--pgdata', self.data, '--mode', mode,
                  '--wait', '--timeout', '60')
        self._stopped = True

    def running(self) -> bool:
        """Whether the server runs (``pg_ctl status``)."""
        return self._run('pg_ctl', 'status', '--pgdata', self.data,
                         check=False) == 0

    def start_if_stopped(self) -> None:
        """Start the server again if a test left it stopped."""
        if self._stopped:
            self.start()

    def restart(self) -> None:
        """Stop the server at once and start it again."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server if it runs and delete its directory."""
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- databases and sessions ---------------------------------------------

    def url(self, database: str = 'postgres', *,
            password: str | None = None) -> str:
        """A URL for ``database``; a password is sent only if asked for."""
        secret = '' if password is None else f':{password}'
        return (f'postgresql://postgres{secret}@127.0.0.1:{self.port}/'
                f'{database}')

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A new autocommit connection to the ``postgres`` database."""
        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self) -> str:
        """Create a new empty database and return its name."""
        self._databases += 1
        name = f'test_{self._databases}'
        with self.admin() as db:
            db.execute(f'CREATE DATABASE {name}')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending the sessions still connected to it."""
        with self.admin() as db:
            db.execute(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')

    def sessions(self, database: str) -> list[tuple[int, str]]:
        """The (pid, application name) of every session on ``database``."""
        with self.admin() as db:
            rows = db.execute(
                'SELECT pid, application_name FROM pg_stat_activity '
                'WHERE datname = %s AND pid <> pg_backend_pid()',
                (database,)).fetchall()
        return [(pid, name) for pid, name in rows]

    def terminate(self, database: str) -> int:
        """End every session on ``database`` (``pg_terminate_backend``);
        return how many there were."""
        with self.admin() as db:
            rows = db.execute(
                'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                'WHERE datname = %s AND pid <> pg_backend_pid()',
                (database,)).fetchall()
        return len(rows)


class Bouncer:
    """PgBouncer on 127.0.0.1 at a free port, in front of ``cluster``.

    Transaction pooling: each transaction of a client may run on another
    of the server sessions, which are handed out in turn (round robin;
    the ``pgbouncer_url`` fixture opens :attr:`sessions` of them), so
    that whatever a client leaves in a session (a ``SET``, a prepared
    statement, a session's lock) is soon missing, or found by another
    client, as in production.
    """

    #: the server sessions a test's pool should have at least
    sessions = 3

    def __init__(self, cluster: Cluster) -> None:
        binary = shutil.which('pgbouncer') or '/usr/sbin/pgbouncer'
        if not os.access(binary, os.X_OK):
            raise MissingServer(
                'the PgBouncer tests need pgbouncer: install it (Debian: '
                'apt-get install pgbouncer; .ci/run does it)')
        self.cluster = cluster
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix='onecron-pgbouncer-')
        self.log = os.path.join(self.root, 'pgbouncer.log')
        self._pidfile = os.path.join(self.root, 'pgbouncer.pid')
        config = os.path.join(self.root, 'pgbouncer.ini')
        users = os.path.join(self.root, 'users.txt')
        with open(users, 'w') as file:
            file.write('"postgres" ""\n')
        with open(config, 'w') as file:
            file.write(f"""[databases]
* = host=127.0.0.1 port={cluster.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = 10
server_round_robin = 1
max_client_conn = 200
logfile = {self.log}
pidfile = {self._pidfile}
""")
        command = [binary, '--daemon', config]
        if cluster._user is not None:  # pgbouncer refuses to run as root
            account = pwd.getpwnam(cluster._user)
            for path in (self.root, users, config):
                os.chown(path, account.pw_uid, account.pw_gid)
            command = ['runuser', '-u', cluster._user, '--', *command]
        try:
            result = subprocess.run(command, cwd=self.root,
                                    stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True,
                                    timeout=30)
            if result.returncode:
                raise RuntimeError(f'{" ".join(command)} failed '
                                   f'({result.returncode}): {result.stderr}'
                                   f'{self._log_tail()}')
            self._wait_ready()
        except BaseException:
            self.stop()
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def __repr__(self) -> str:
        return f'<Bouncer {self.root} port {self.port}>'

    def _log_tail(self) -> str:
        try:
            with open(self.log) as log:
                return '\nPgBouncer log:\n' + ''.join(log.readlines()[-20:])
        except OSError:
            return ''

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url(), autocommit=True,
                                     connect_timeout=2) as db:
                    db.execute('SELECT 1')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f'{self!r} does not answer'
                                       f'{self._log_tail()}') from None
                time.sleep(0.05)

    def url(self, database: str = 'postgres') -> str:
        """A URL for ``database`` through PgBouncer."""
        return f'postgresql://postgres@127.0.0.1:{self.port}/{database}'

    def stop(self) -> None:
        """Stop PgBouncer (if it runs) and wait until it is gone."""
        try:
            with open(self._pidfile) as file:
                pid = int(file.read().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Stop PgBouncer and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
