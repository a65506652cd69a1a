"""The job endpoint and the status page under concurrent load, on waitress
and gunicorn on 127.0.0.1: no errors, no run lost or written down twice.

The load comes from ``wrk`` (Debian's package; ``.ci/run`` installs it),
three seconds a run; a claim race from a bounded Python client.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest

from onecron.protocol.headers import RUN_HEADER
from onecron.stores.base import Outcome
from onecron.stores.sqlite import SqliteStore

from .conftest import LiveServer, wait_for
from .load_app import build

ROOT = Path(__file__).parent.parent
SERVERS = ['waitress', 'gunicorn-sync', 'gunicorn-gthread']
#: wrk's threads and connections, per wrk process
THREADS, CONNECTIONS = 2, 16


class Wrk(NamedTuple):
    """What wrk reports about one run."""

    requests: int
    socket_errors: dict[str, int]
    not_2xx: int
    output: str


def parse_wrk(output: str) -> Wrk:
    """wrk's summary: it prints the error lines only when there are any."""
    requests = re.search(r'(\d+) requests in', output)
    assert requests is not None, output
    errors = re.search(r'Socket errors: connect (\d+), read (\d+), '
                       r'write (\d+), timeout (\d+)', output)
    counts = [int(n) for n in errors.groups()] if errors else [0] * 4
    not_2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', output)
    return Wrk(int(requests.group(1)),
               dict(zip(('connect', 'read', 'write', 'timeout'), counts)),
               int(not_2xx.group(1)) if not_2xx else 0, output)


def start_wrk(url: str, seconds: int = 3) -> subprocess.Popen[str]:
    wrk = shutil.which('wrk')
    if wrk is None:
        pytest.fail('wrk is missing: apt-get install wrk (.ci/run does)',
                    pytrace=False)
    return subprocess.Popen(
        [wrk, f'-t{THREADS}', f'-c{CONNECTIONS}', f'-d{seconds}s',
         '--timeout', '5s', url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port: int = probe.getsockname()[1]
    return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, tmp_path: Path,
           live_server: Callable[..., LiveServer]) -> Iterator[str]:
    """The load app served on 127.0.0.1; its base URL."""
    if request.param == 'waitress':
        yield live_server(build(str(tmp_path)), threads=8).url
        return
    port = free_port()
    threads = (['--worker-class', 'gthread', '--threads', '4']
               if request.param == 'gunicorn-gthread' else [])
    errors = open(tmp_path / 'gunicorn.err', 'w')
    process = subprocess.Popen(
        [sys.executable, '-m', 'gunicorn', '--workers', '2', *threads,
         '--bind', f'127.0.0.1:{port}', '--graceful-timeout', '5',
         '--backlog', '256', 'tests.load_app:gunicorn_app()'],
        cwd=ROOT, env=dict(os.environ, ONECRON_TEST_LOAD_DIR=str(tmp_path)),
        stderr=errors, start_new_session=True)
    base = f'http://127.0.0.1:{port}'
    try:
        wait_for(lambda: process.poll() is not None
                 or answers(f'{base}/cronjobs/status.json'), timeout=20)
        assert process.poll() is None, (tmp_path / 'gunicorn.err').read_text()
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        errors.close()


def ran(directory: Path) -> list[str]:
    """The pids of the job's runs so far, one per run."""
    path = directory / 'ran'
    return path.read_text().split() if path.exists() else []


def settled(directory: Path) -> list[str]:
    """The runs once no more arrive: calls wrk gave up on at its end may
    still be running."""
    previous = None
    while True:
        runs = ran(directory)
        if runs == previous:
            return runs
        previous = runs
        time.sleep(0.3)


def test_job_and_status_page_under_load(server: str, tmp_path: Path) -> None:
    """wrk on the job URL, status.json and the page at once: every answer
    is a 2xx, no socket errors, and the store holds exactly one finished
    run per run of the job; wrk's count of answered calls is among them
    (calls in flight when wrk stops run, but wrk does not count them)."""
    job_url = build(str(tmp_path)).url_for('noop', server)
    loads = {'job': start_wrk(job_url),
             'status.json': start_wrk(f'{server}/cronjobs/status.json'),
             'page': start_wrk(f'{server}/cronjobs/')}
    results = {name: parse_wrk(process.communicate(timeout=30)[0])
               for name, process in loads.items()}
    for name, result in results.items():
        assert result.requests > 0, result.output
        assert result.socket_errors == dict.fromkeys(
            ('connect', 'read', 'write', 'timeout'), 0), (name, result.output)
        assert result.not_2xx == 0, (name, result.output)
    runs = settled(tmp_path)
    with SqliteStore(tmp_path / 'runs.sqlite') as store:
        stored = store.runs('default', 'noop', limit=len(runs) + 1000)
    assert len(stored) == len(runs), 'runs lost or written twice'
    assert Counter(run.outcome for run in stored) == {Outcome.OK: len(runs)}
    assert len({run.id for run in stored}) == len(stored)
    calls = results['job'].requests
    assert calls <= len(runs) <= calls + CONNECTIONS, (calls, len(runs))


def test_one_occurrence_url_called_at_once_runs_once(server: str,
                                                      tmp_path: Path) -> None:
    """32 clients call one occurrence URL at the same moment, each with a
    run key of its own: one run, 31 answers of 409, one record."""
    occurrence = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    url = urlsplit(build(str(tmp_path))._fire_url(
        'noop', server, 'default', occurrence))
    start = threading.Barrier(32)
    statuses: list[int] = []

    def call(number: int) -> None:
        connection = http.client.HTTPConnection(url.netloc, timeout=20)
        try:
            start.wait(10)
            connection.request('POST', url.path,
                               headers={RUN_HEADER: f'client-{number}'})
            statuses.append(connection.getresponse().status)
        finally:
            connection.close()

    clients = [threading.Thread(target=call, args=(n,)) for n in range(32)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(30)
    assert sorted(statuses) == [200] + [409] * 31
    assert len(ran(tmp_path)) == 1
    with SqliteStore(tmp_path / 'runs.sqlite') as store:
        [run] = store.runs('default', 'noop')
        claimed = store.claimed('default', 'noop', occurrence, occurrence)
    assert run.scheduled == occurrence and run.outcome is Outcome.OK
    assert run.key is not None and run.key.startswith('client-')
    assert claimed == {occurrence}


def test_wrk_summary_is_read_with_and_without_error_lines() -> None:
    """The parser finds the counts, and zeros when wrk prints no error
    lines."""
    clean = parse_wrk('  2 threads and 16 connections\n'
                      '  5120 requests in 3.00s, 1.02MB read\n'
                      'Requests/sec:   1706.12\n')
    assert clean.requests == 5120 and clean.not_2xx == 0
    assert set(clean.socket_errors.values()) == {0}
    failing = parse_wrk('  12 requests in 3.00s, 1.02MB read\n'
                        '  Socket errors: connect 1, read 2, write 3, '
                        'timeout 4\n  Non-2xx or 3xx responses: 7\n')
    assert failing.socket_errors == {'connect': 1, 'read': 2, 'write': 3,
                                     'timeout': 4}
    assert failing.not_2xx == 7
