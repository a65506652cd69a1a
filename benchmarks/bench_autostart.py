"""How soon jobs run after a deploy when nobody visits the site.

    python benchmarks/bench_autostart.py             # about 20 seconds

Run from the repository root. Starts ``gunicorn -w 2`` (sync workers) on
``tests/host.py``'s ``autostart_app``: a CronApp with ``base_url``
configured, an SQLite store in a throwaway directory and a job due every
second that logs its runs. No request is ever made. Prints each run of the
first 15 seconds (its occurrence relative to the server's start, and the
worker that served the job's call), then stops the server with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.host import read_runs  # noqa: E402

WATCH = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port: int = probe.getsockname()[1]
    return port


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        port = free_port()
        environ = dict(os.environ, ONECRON_TEST_LOCK_DIR=directory,
                       ONECRON_TEST_RUN_LOG=str(path / 'runs.log'),
                       ONECRON_TEST_STORE=str(path / 'runs.sqlite'),
                       ONECRON_TEST_BASE_URL=f'http://127.0.0.1:{port}')
        started = datetime.now(timezone.utc)
        with open(path / 'server.log', 'w') as log:
            server = subprocess.Popen(
                [sys.executable, '-m', 'gunicorn', '-w', '2', '--bind',
                 f'127.0.0.1:{port}', '--no-control-socket',
                 'tests.host:autostart_app()'], cwd=ROOT, env=environ,
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True)
        try:
            time.sleep(WATCH)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(15)
        runs = read_runs(path / 'runs.log')
        print(f'gunicorn -w 2, no request: {len(runs)} runs in the first '
              f'{WATCH:.0f} s')
        for pid, occurrence in runs:
            at = datetime.fromisoformat(occurrence) - started
            print(f'  {at.total_seconds():6.2f} s  served by pid {pid}')
        for line in (path / 'server.log').read_text().splitlines():
            if 'autostarted' in line or 'is active' in line:
                print(' ', line)


if __name__ == '__main__':
    main()
