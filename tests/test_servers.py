"""Real WSGI servers — waitress, gunicorn (sync and threaded workers, with
and without ``--preload``) and uWSGI — serving the per-second job of
``tests/host.py`` with an SQLite store: the job runs, each occurrence once,
from one scheduler, and the server's own stop signal ends it cleanly, the
host lock and the lease released.

Each server is a process group of its own on 127.0.0.1, run for a few
seconds; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from onecron.running.lock import HostLock, lock_path
from onecron.stores.base import Outcome, Trigger
from onecron.stores.sqlite import SqliteStore

from .conftest import wait_for
from .host import ROOT, read_runs

#: how many runs each server makes before it is stopped, and how long it
#: may take to make them (from its start)
RUNS = 4
RUNS_WITHIN = 12.0
#: how long a server may take to exit after its stop signal
STOP_WITHIN = 10.0

BIN = Path(sys.executable).parent

@dataclass(frozen=True)
class Server:
    """How to start a server on a port, and its graceful stop signal."""

    argv: Callable[[int], list[str]]
    stop: signal.Signals = signal.SIGTERM


#: the app that starts its scheduler itself at import (app.start()), and the
#: one that leaves it to autostart
STARTED = 'tests.host:gunicorn_app'
AUTOSTARTED = 'tests.host:autostart_app'


def waitress(port: int) -> list[str]:
    return [sys.executable, '-m', 'waitress', f'--listen=127.0.0.1:{port}',
            '--threads=4', '--call', STARTED]


def waitress_serve(port: int) -> list[str]:
    """The console script, with the autostarting app."""
    return [str(BIN / 'waitress-serve'), f'--listen=127.0.0.1:{port}',
            '--threads=4', '--call', AUTOSTARTED]


def gunicorn(*options: str,
             app: str = STARTED) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [sys.executable, '-m', 'gunicorn', '--bind',
                f'127.0.0.1:{port}', '--graceful-timeout', '5',
                '--no-control-socket', *options, f'{app}()']
    return argv


def uwsgi(*options: str, app: str = STARTED) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        binary = shutil.which('uwsgi', path=str(BIN)) or shutil.which('uwsgi')
        if binary is None:
            pytest.fail('uwsgi is not installed (it is in the test extra)',
                        pytrace=False)
        return [binary, '--http', f'127.0.0.1:{port}',
                '--module', f'{app}()', '--need-app',
                '--master', '--processes', '2', '--enable-threads',
                '--die-on-term', '--worker-reload-mercy', '5',
                '--disable-logging', *options]
    return argv


class Running:
    """A server in a process group of its own; killed after the test."""

    def __init__(self, server: Server, directory: Path,
                 name: str = 'server') -> None:
        self.server = server
        self.directory = directory
        self.run_log = directory / 'runs.log'
        self.errors = directory / f'{name}.err'
        port = free_port()
        environ = dict(os.environ, ONECRON_TEST_LOCK_DIR=str(directory),
                       ONECRON_TEST_RUN_LOG=str(self.run_log),
                       ONECRON_TEST_STORE=str(directory / 'runs.sqlite'),
                       ONECRON_TEST_BASE_URL=f'http://127.0.0.1:{port}')
        with open(self.errors, 'w') as stream:
            self.process = subprocess.Popen(
                server.argv(port), cwd=ROOT, env=environ,
                stdin=subprocess.DEVNULL, stdout=stream, stderr=stream,
                start_new_session=True)

    def log(self) -> str:
        return self.errors.read_text()

    def runs(self) -> list[tuple[int, str]]:
        """(pid, occurrence) of each run so far."""
        return read_runs(self.run_log)

    def wait_for_runs(self, count: int) -> None:
        try:
            wait_for(lambda: len(self.runs()) >= count, timeout=RUNS_WITHIN)
        except AssertionError:
            raise AssertionError(
                f'fewer than {count} runs within {RUNS_WITHIN}s: '
                f'{self.runs()}\n{self.log()}') from None

    def stop(self, sig: signal.Signals | None = None) -> int | None:
        """Send the stop signal to the server; its exit status (None: it
        did not exit within STOP_WITHIN)."""
        self.process.send_signal(sig or self.server.stop)
        try:
            return self.process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            return None

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[[Path], SqliteStore]]:
    """Open the servers' store (closed after the test)."""
    stores: list[SqliteStore] = []

    def open_store(directory: Path) -> SqliteStore:
        stores.append(SqliteStore(directory / 'runs.sqlite'))
        return stores[-1]

    yield open_store
    for store in stores:
        store.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start servers on ``tmp_path`` (lock dir, run log and store)."""
    started: list[Running] = []

    def start(server: Server, name: str = 'server') -> Running:
        running = Running(server, tmp_path, name)
        started.append(running)
        return running

    yield start
    for running in started:
        running.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port: int = probe.getsockname()[1]
    return port


def assert_each_occurrence_once(runs: list[tuple[int, str]]) -> None:
    counts = Counter(occurrence for _, occurrence in runs)
    twice = [occurrence for occurrence, count in counts.items() if count > 1]
    assert not twice, f'ran more than once: {twice}'
    times = sorted(datetime.fromisoformat(occurrence) for occurrence in counts)
    holes = [(a, b) for a, b in zip(times, times[1:])
             if b - a != timedelta(seconds=1)]
    assert not holes, f'occurrences lost between: {holes}'


def assert_store_agrees(store: SqliteStore,
                        runs: list[tuple[int, str]]) -> None:
    """The store holds one scheduler run per occurrence, and the ones the
    job logged ended ok."""
    stored = [run for run in store.runs('default', 'tick', limit=1000)
              if run.trigger is Trigger.SCHEDULER]
    counts = Counter(run.scheduled for run in stored)
    assert max(counts.values()) == 1, f'one occurrence twice: {counts}'
    ok = {run.scheduled for run in stored if run.outcome is Outcome.OK}
    assert {datetime.fromisoformat(o) for _, o in runs} <= ok, stored


def assert_lock_free(directory: Path) -> None:
    lock = HostLock(lock_path(str(directory), 'default'))
    assert lock.acquire(), 'the host lock is still held'
    lock.release()


def assert_released(directory: Path, store: SqliteStore) -> None:
    """The host lock is free, the lease released, no scheduler listed."""
    assert_lock_free(directory)
    lease = store.lease('default')
    assert lease is not None and lease.expires <= lease.renewed, lease
    assert store.schedulers() == []


SERVERS = [
    pytest.param(Server(waitress, signal.SIGINT), id='waitress'),
    pytest.param(Server(gunicorn('--workers', '3')), id='gunicorn-sync'),
    pytest.param(Server(gunicorn('--workers', '3', '--preload')),
                 id='gunicorn-sync-preload'),
    pytest.param(Server(gunicorn('--worker-class', 'gthread', '--threads',
                                 '4', '--workers', '2')),
                 id='gunicorn-gthread'),
    pytest.param(Server(gunicorn('--worker-class', 'gthread', '--threads',
                                 '4', '--workers', '2', '--preload')),
                 id='gunicorn-gthread-preload'),
    pytest.param(Server(uwsgi('--lazy-apps')), id='uwsgi-lazy-apps'),
]


@pytest.mark.parametrize('server', SERVERS)
def test_server_runs_each_occurrence_once_and_stops_cleanly(
        start: Callable[..., Running],
        opened: Callable[[Path], SqliteStore], tmp_path: Path,
        server: Server) -> None:
    """Under the server the job runs, each occurrence once, fired by one
    scheduler; the server's stop signal ends it with status 0, no stray
    process or traceback, the lock and the lease released."""
    running = start(server)
    running.wait_for_runs(RUNS)
    store = opened(tmp_path)
    schedulers = store.schedulers('default')
    serving = running.log()
    code = running.stop()
    log = running.log()
    assert code == 0, f'exit status {code}:\n{log}'
    wait_for(lambda: not running.group_alive(), timeout=5)
    assert 'Traceback' not in log and 'Exception in thread' not in log, log
    # one scheduler fired while the server served; as it stops, a worker
    # that is exiting too may take the lock the first let go (each
    # occurrence still ran once: see below)
    assert serving.count('is active in process') == 1, log
    assert len(schedulers) == 1, schedulers
    runs = running.runs()
    assert_each_occurrence_once(runs)
    assert_store_agrees(store, runs)
    assert_released(tmp_path, store)


def test_uwsgi_master_never_releases_the_lease(
        start: Callable[..., Running],
        opened: Callable[[Path], SqliteStore], tmp_path: Path) -> None:
    """uWSGI without --lazy-apps loads the app, and so the scheduler, in
    the master, which runs no atexit hook: jobs run once each and the
    master exits with 0, the kernel freeing the lock, but the lease stays
    held until it expires and the scheduler stays listed."""
    running = start(Server(uwsgi('--py-call-uwsgi-fork-hooks')))
    running.wait_for_runs(RUNS)
    code = running.stop()
    log = running.log()
    assert code == 0, f'exit status {code}:\n{log}'
    assert log.count('is active in process') == 1, log
    runs = running.runs()
    assert_each_occurrence_once(runs)
    store = opened(tmp_path)
    assert_store_agrees(store, runs)
    assert_lock_free(tmp_path)
    lease = store.lease('default')
    assert lease is not None and lease.expires > lease.renewed, lease
    assert [info.pid for info in store.schedulers()] == [
        running.process.pid]


def test_waitress_serve_dies_on_sigterm_and_a_restart_takes_over_at_once(
        start: Callable[..., Running],
        opened: Callable[[Path], SqliteStore], tmp_path: Path) -> None:
    """waitress-serve has no SIGTERM handler: it dies by the signal and no
    atexit hook runs, so the lease is left held (the kernel frees the
    lock); a server restarted on the same host fires at once all the
    same, without waiting for the lease to expire."""
    first = start(Server(waitress), 'first')
    first.wait_for_runs(1)
    assert first.stop() == -signal.SIGTERM
    store = opened(tmp_path)
    lease = store.lease('default')
    assert lease is not None and lease.expires > lease.renewed, lease
    second = start(Server(waitress, signal.SIGINT), 'second')
    wait_for(lambda: any(pid == second.process.pid
                         for pid, _ in second.runs()), timeout=5)
    assert second.stop() == 0, second.log()
    runs = second.runs()
    counts = Counter(occurrence for _, occurrence in runs)
    assert max(counts.values()) == 1, f'ran more than once: {counts}'
    assert_lock_free(tmp_path)
    lease = store.lease('default')
    assert lease is not None and lease.expires <= lease.renewed, lease
    assert second.process.pid not in [
        info.pid for info in store.schedulers()]


#: how long autostarted servers may take to make RUNS runs, from their
#: start, without a request
AUTOSTART_WITHIN = 15.0

AUTOSTARTING = [
    pytest.param(Server(waitress_serve, signal.SIGINT), 'waitress-serve', 1,
                 id='waitress-serve'),
    pytest.param(Server(gunicorn('--workers', '2', app=AUTOSTARTED)),
                 'gunicorn', 2, id='gunicorn'),
    pytest.param(Server(gunicorn('--workers', '2', '--preload',
                                 app=AUTOSTARTED)),
                 'gunicorn', 2, id='gunicorn-preload'),
    pytest.param(Server(uwsgi('--lazy-apps', app=AUTOSTARTED)), 'uWSGI', 2,
                 id='uwsgi-lazy-apps'),
    pytest.param(Server(uwsgi(app=AUTOSTARTED)), 'uWSGI', 2, id='uwsgi'),
]


@pytest.mark.parametrize(('server', 'name', 'workers'), AUTOSTARTING)
def test_server_autostarts_without_a_request(
        start: Callable[..., Running],
        opened: Callable[[Path], SqliteStore], tmp_path: Path,
        server: Server, name: str, workers: int) -> None:
    """With base_url configured and no request at all, each worker starts
    scheduling on its own (never a pre-fork master): one is active, the
    job runs within seconds, each occurrence once."""
    running = start(server)
    try:
        wait_for(lambda: len(running.runs()) >= RUNS,
                 timeout=AUTOSTART_WITHIN)
    except AssertionError:
        raise AssertionError(f'fewer than {RUNS} runs: {running.runs()}\n'
                             f'{running.log()}') from None
    # every worker tries (a busy machine may boot one late, and then the
    # active scheduler's job call may reach it before its own start)
    started = (f'scheduler autostarted in {name} worker pid',
               f'before its autostart in {name} worker pid')
    try:
        wait_for(lambda: sum(map(running.log().count, started)) >= workers,
                 timeout=10)
    except AssertionError:
        raise AssertionError(running.log()) from None
    store = opened(tmp_path)
    schedulers = store.schedulers('default')
    log = running.log()
    assert len(schedulers) == 1, schedulers
    assert schedulers[0].pid != running.process.pid or workers == 1, log
    assert log.count('is active in process') == 1, log
    assert sum(map(log.count, started)) == workers, log
    runs = running.runs()
    assert_each_occurrence_once(runs)
    assert_store_agrees(store, runs)
    assert running.stop() is not None, log
