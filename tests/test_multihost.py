"""Many hosts, one PostgreSQL: every occurrence exactly once, through
takeovers and under real gunicorn.

Each host is a lock directory of its own; each process is a real process
(``tests/host.py``) serving a per-second job on loopback.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from onecron import CronApp
from onecron.stores.postgres import PostgresStore

from .conftest import wait_for
from .host import ROOT, Hosts

#: how long the per-second job runs across the hosts, and when the kills
#: happen (seconds from the first run)
RUN_FOR = 60
KILL_ONE_AT = 20
KILL_HOST_AT = 40


def occurrences_of(hosts_runs: list[tuple[int, str]]) -> list[datetime]:
    return sorted(datetime.fromisoformat(occurrence)
                  for _, occurrence in hosts_runs)


def assert_each_once_and_none_lost(runs: list[tuple[int, str]]) -> None:
    counts = Counter(occurrence for _, occurrence in runs)
    twice = [occurrence for occurrence, count in counts.items() if count > 1]
    assert not twice, f'ran more than once: {twice}'
    occurrences = occurrences_of(runs)
    holes = [(a, b) for a, b in zip(occurrences, occurrences[1:])
             if b - a != timedelta(seconds=1)]
    assert not holes, f'occurrences lost between: {holes}'


def active_pid(hosts: Hosts) -> int:
    """The process that ran the newest occurrence."""
    runs = hosts.runs()
    return max(runs, key=lambda run: run[1])[0]


def test_three_hosts_two_processes_each_kill_nine_midway(
        tmp_path: Path, postgresql_url: str) -> None:
    """3 hosts x 2 processes on one PostgreSQL, a per-second job for a
    minute: each occurrence runs exactly once, through a kill -9 of the
    active process and then of the whole active host (misfire='all'
    replays what the takeovers missed, so none is lost)."""
    hosts = Hosts(tmp_path, tmp_path / 'runs.log')
    options = ('--store', postgresql_url, '--lease-time', '4',
               '--misfire', 'all')
    by_host: dict[str, list[int]] = {}
    try:
        for host in ('a', 'b', 'c'):
            for _ in range(2):
                process = hosts.start(tmp_path / f'host-{host}', *options)
                by_host.setdefault(host, []).append(process.pid)
        wait_for(lambda: hosts.runs(), timeout=20)
        began = time.monotonic()
        processes = {process.pid: process for process in hosts.processes}

        def host_of(pid: int) -> str:
            return next(h for h, pids in by_host.items() if pid in pids)

        time.sleep(max(0.0, KILL_ONE_AT - (time.monotonic() - began)))
        victim = active_pid(hosts)
        hosts.kill(processes[victim])
        wait_for(lambda: active_pid(hosts) != victim, timeout=10)
        sibling = active_pid(hosts)
        assert host_of(sibling) == host_of(victim), \
            'the other process of the same host took over first'

        time.sleep(max(0.0, KILL_HOST_AT - (time.monotonic() - began)))
        dead_host = host_of(active_pid(hosts))
        for pid in by_host[dead_host]:
            hosts.kill(processes[pid])
        killed = time.monotonic()
        wait_for(lambda: host_of(active_pid(hosts)) != dead_host,
                 timeout=15)
        failover = time.monotonic() - killed
        time.sleep(max(0.0, RUN_FOR - (time.monotonic() - began)))
    finally:
        hosts.kill_all()
    runs = hosts.runs()
    assert len(runs) >= RUN_FOR - 5
    assert_each_once_and_none_lost(runs)
    assert failover < 4 + 3, f'took {failover:.1f}s to fail over'
    with PostgresStore(postgresql_url) as store:
        stored = store.runs('default', 'tick', limit=1000)
    # a missed record stands for a range (the takeovers' gaps), not for
    # one occurrence: it names none
    scheduled = Counter(run.scheduled for run in stored
                        if run.scheduled is not None)
    assert max(scheduled.values()) == 1, 'two records of one occurrence'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize('preload', [False, True],
                         ids=['workers-import', 'preload'])
def test_gunicorn_four_workers_one_scheduler(
        tmp_path: Path, postgresql_url: str, preload: bool) -> None:
    """Real gunicorn, 4 sync workers, with and without --preload: one
    scheduler fires, each occurrence runs once, and the workers serve
    the job calls."""
    port = free_port()
    run_log = tmp_path / 'runs.log'
    environ = dict(os.environ, ONECRON_TEST_LOCK_DIR=str(tmp_path),
                   ONECRON_TEST_RUN_LOG=str(run_log),
                   ONECRON_TEST_STORE=postgresql_url,
                   ONECRON_TEST_BASE_URL=f'http://127.0.0.1:{port}')
    command = [sys.executable, '-m', 'gunicorn', '--workers', '4',
               '--bind', f'127.0.0.1:{port}', '--graceful-timeout', '5',
               *(['--preload'] if preload else []),
               'tests.host:gunicorn_app()']
    errors = open(tmp_path / 'gunicorn.err', 'w')
    server = subprocess.Popen(command, cwd=ROOT, env=environ,
                              stderr=errors, start_new_session=True)
    hosts = Hosts(tmp_path, run_log)
    try:
        wait_for(lambda: len(hosts.runs()) >= 6, timeout=30)
        with PostgresStore(postgresql_url) as store:
            schedulers = store.schedulers('default')
    finally:
        server.terminate()
        try:
            code = server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
            code = None
        errors.close()
    log = (tmp_path / 'gunicorn.err').read_text()
    runs = hosts.runs()
    assert_each_once_and_none_lost(runs)
    assert len(schedulers) == 1, schedulers
    assert log.count('is active in process') == 1, log
    assert len({pid for pid, _ in runs}) >= 2, 'the workers share the calls'
    assert code == 0, f'no clean shutdown:\n{log}'


def test_a_database_outage_stops_firing_and_is_reported_once(
        tmp_path: Path, postgresql_url: str, postgresql_server: Any,
        live_server: Any, caplog: Any) -> None:
    """The server goes away: no job fires without its claim, the outage
    is logged once, and after the server is back the scheduler
    reconnects (with backoff) and fires again."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), store=postgresql_url)
    seen: list[str] = []
    app.cronjob('* * * * * *', name='tick', jitter=False)(
        lambda request: seen.append(request.headers['X-Onecron-Occurrence']))
    try:
        app.start(base_url=live_server(app).url)
        wait_for(lambda: len(seen) >= 2)
        with caplog.at_level(logging.ERROR, logger='onecron'):
            postgresql_server.stop()
            time.sleep(0.5)  # a call handed over already may still arrive
            count = len(seen)
            time.sleep(3)
            assert len(seen) == count, 'fired without a claim'
            postgresql_server.start()
            wait_for(lambda: len(seen) >= count + 2, timeout=40)
    finally:
        app.stop()
    outages = [record for record in caplog.records
               if 'run store failed' in record.getMessage()]
    assert len(outages) == 1, [r.getMessage() for r in outages]
    assert len(seen) == len(set(seen))
