"""A whole onecron host in one process, for tests that need real processes.

``python -m tests.host LOCK_DIR RUN_LOG [options]`` serves a CronApp on a
free loopback port with a job due every second, and appends one line per
run to RUN_LOG: ``<pid> <nominal occurrence>``. Processes given one
LOCK_DIR are one host; other lock directories are other hosts.

Options: ``--fork`` starts the scheduler, then forks (as gunicorn
``--preload`` does) and the child starts its own; both keep running.
``--store`` (a path or URL), ``--misfire``, ``--grace`` and
``--lease-time`` are passed to the CronApp.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from waitress.server import create_server
from webob import Request

from onecron import CronApp


def build_app(lock_dir: str, run_log: str, **options: Any) -> CronApp:
    """The host's CronApp: a job every second that logs its runs."""
    app = CronApp(secret='multi-process test secret, 32+ chars',
                  lock_dir=lock_dir, **options)

    @app.cronjob('* * * * * *', name='tick', jitter=False)
    def tick(request: Request) -> None:
        line = f'{os.getpid()} {request.headers["X-Onecron-Occurrence"]}\n'
        with open(run_log, 'a') as log:
            log.write(line)

    return app


def gunicorn_app() -> CronApp:
    """For ``gunicorn 'tests.host:gunicorn_app()'``: the settings come from
    ONECRON_TEST_* variables; the scheduler starts at import (in the
    master with ``--preload``, else in each worker)."""
    environ = os.environ
    logging.basicConfig(
        level=logging.INFO,
        format=f'%(asctime)s {os.getpid()} %(name)s %(message)s')
    app = build_app(environ['ONECRON_TEST_LOCK_DIR'],
                    environ['ONECRON_TEST_RUN_LOG'],
                    store=environ.get('ONECRON_TEST_STORE') or None)
    app.start(base_url=environ['ONECRON_TEST_BASE_URL'])
    return app


def autostart_app() -> CronApp:
    """For servers that start the scheduler on their own: as
    :func:`gunicorn_app`, with ``base_url`` configured and no ``start()``
    call, so the default ``autostart='auto'`` decides."""
    environ = os.environ
    logging.basicConfig(
        level=logging.INFO,
        format=f'%(asctime)s {os.getpid()} %(name)s %(message)s')
    return build_app(environ['ONECRON_TEST_LOCK_DIR'],
                     environ['ONECRON_TEST_RUN_LOG'],
                     store=environ.get('ONECRON_TEST_STORE') or None,
                     base_url=environ['ONECRON_TEST_BASE_URL'])


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m tests.host')
    parser.add_argument('lock_dir')
    parser.add_argument('run_log')
    parser.add_argument('--fork', action='store_true')
    parser.add_argument('--store')
    parser.add_argument('--misfire', default='once')
    parser.add_argument('--grace', type=float)
    parser.add_argument('--lease-time', type=float, default=30.0)
    options = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        format=f'%(asctime)s {os.getpid()} %(name)s %(message)s')
    app = build_app(options.lock_dir, options.run_log, store=options.store,
                    misfire=options.misfire, grace=options.grace,
                    lease_time=options.lease_time)

    server = create_server(app, host='127.0.0.1', port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base_url = f'http://127.0.0.1:{server.effective_port}'
    app.start(base_url=base_url)
    if options.fork:
        if os.fork() == 0:
            # the child: the parent's scheduler thread is not here
            assert not app.schedulers, app.schedulers
            child = create_server(app, host='127.0.0.1', port=0, threads=4)
            threading.Thread(target=child.run, daemon=True).start()
            app.start(base_url=f'http://127.0.0.1:{child.effective_port}')
    # a clean stop: exit, so the atexit hook stops the scheduler
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
    print(f'ready {os.getpid()}', flush=True)
    threading.Event().wait()


class Hosts:
    """Starts host processes for a test and kills every one of them after.

    Each host's stderr goes to a file in ``directory``, shown when a host
    fails to start.
    """

    def __init__(self, directory: Path, run_log: Path) -> None:
        self.directory = directory
        self.run_log = run_log
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, lock_dir: Path, *extra: str) -> subprocess.Popen[str]:
        """Start a host process on ``lock_dir``; wait until it serves."""
        lock_dir.mkdir(parents=True, exist_ok=True)
        errors = self.directory / f'host-{len(self.processes)}.err'
        with open(errors, 'w') as stream:
            process = subprocess.Popen(
                [sys.executable, '-m', 'tests.host', str(lock_dir),
                 str(self.run_log), *extra], cwd=ROOT,
                stdout=subprocess.PIPE, stderr=stream, text=True,
                start_new_session=True)
        self.processes.append(process)
        self.ready_pid(process)
        return process

    def ready_pid(self, process: subprocess.Popen[str]) -> int:
        """The pid in the next 'ready' line; the hosts' stderr if none."""
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert len(line) == 2 and line[0] == 'ready', self.errors()
        return int(line[1])

    def errors(self) -> str:
        return '\n'.join(path.read_text() for path in
                         sorted(self.directory.glob('host-*.err')))

    def kill(self, process: subprocess.Popen[str]) -> None:
        """kill -9 the process and its forked children; reap it."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def stop(self, process: subprocess.Popen[str]) -> None:
        """End the process cleanly (SIGTERM: its atexit hooks run)."""
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill(process)

    def kill_all(self) -> None:
        for process in self.processes:
            self.kill(process)

    def runs(self) -> list[tuple[int, str]]:
        """(pid, occurrence) of each run so far."""
        return read_runs(self.run_log)


def read_runs(run_log: Path) -> list[tuple[int, str]]:
    """(pid, occurrence) of each run a host's job wrote to ``run_log``."""
    if not run_log.exists():
        return []
    return [(int(pid), occurrence) for pid, occurrence in
            (line.split() for line in run_log.read_text().splitlines())]


ROOT = Path(__file__).parent.parent

if __name__ == '__main__':
    main()
