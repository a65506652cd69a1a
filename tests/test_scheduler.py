"""The scheduler against a real server: on time, concurrent, once per host."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.protocol.hosts import parse_allowed_hosts
from onecron.running.lock import HostLock, lock_path
from onecron.schedule.clock import ManualClock

from .conftest import wait_for
from .virtual import run_for, run_until

EVERY_SECOND = '* * * * * *'
ROOT = Path(__file__).parent.parent


class Runs:
    """Records each run: when it happened and which occurrence it was."""

    def __init__(self) -> None:
        self.items: list[tuple[float, datetime, Request]] = []

    def __call__(self, request: Request) -> None:
        occurrence = datetime.fromisoformat(
            request.headers['X-Onecron-Occurrence'])
        self.items.append((time.time(), occurrence, request))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def occurrences(self) -> list[datetime]:
        return [occurrence for _, occurrence, _ in self.items]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[CronApp]:
    app = CronApp(secret='s', lock_dir=str(tmp_path))
    yield app
    app.stop()


def test_start_fires_each_occurrence_once_and_not_early(
        app: CronApp, live_server: Any) -> None:
    """Successive occurrences run once each, never before they are due."""
    runs = Runs()
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(runs)
    app.start(base_url=live_server(app).url)
    wait_for(lambda: len(runs) >= 3)
    occurrences = runs.occurrences
    assert occurrences == sorted(set(occurrences))
    steps = {(b - a).total_seconds() for a, b in zip(occurrences,
                                                     occurrences[1:])}
    assert steps == {1.0}
    for ran_at, occurrence, _ in runs.items:
        assert ran_at >= occurrence.timestamp()


def test_jitter_shifts_the_fire_time(app: CronApp, live_server: Any) -> None:
    """A job with jitter runs at its occurrence plus its offset."""
    runs = Runs()
    app2 = CronApp(secret='s', lock_dir=app.lock_dir, max_offset=0.5,
                   application_id='jittery')
    app2.cronjob(EVERY_SECOND, name='tick')(runs)
    offset = app2.jobs['tick'].offset_for('jittery')
    try:
        app2.start(base_url=live_server(app2).url)
        wait_for(lambda: len(runs) >= 2)
    finally:
        app2.stop()
    for ran_at, occurrence, _ in runs.items:
        assert ran_at >= occurrence.timestamp() + offset


def test_first_request_starts_the_scheduler(
        timed: CronApp, live_server: Any, clock: ManualClock) -> None:
    """Nothing is scheduled until a request comes; the URL of a request
    for an allowed host is the base."""
    app = timed
    runs = Runs()
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(runs)
    server = live_server(app)
    app.allowed_hosts = parse_allowed_hosts([f'127.0.0.1:{server.port}'])
    run_for(clock, 3, app)
    assert len(runs) == 0 and not app.schedulers
    Request.blank(server.url + '/hello').get_response(app)
    run_until(clock, lambda: len(runs) >= 1, app, limit=1)
    assert app.schedulers['default'].base_url == server.url


def test_once_runs_exactly_once(app: CronApp, live_server: Any) -> None:
    """once=True: one run, no rescheduling."""
    once, every = Runs(), Runs()
    app.cronjob(EVERY_SECOND, name='once', once=True, jitter=False)(once)
    app.cronjob(EVERY_SECOND, name='every', jitter=False)(every)
    app.start(base_url=live_server(app).url)
    wait_for(lambda: len(every) >= 4)
    assert len(once) == 1


def test_failures_are_reported_and_the_job_rescheduled(
        app: CronApp, live_server: Any, caplog: Any) -> None:
    """A job that raises is a failure naming the job, reported (ERROR) by
    the endpoint that ran it; the scheduler sees the 500 and does not
    report it again; the job still runs again."""
    calls: list[int] = []

    @app.cronjob(EVERY_SECOND, name='flaky', jitter=False)
    def flaky(request: Request) -> None:
        calls.append(1)
        raise ValueError('nope')

    with caplog.at_level(logging.INFO, logger='onecron'):
        app.start(base_url=live_server(app).url)
        wait_for(lambda: len(calls) >= 2)
        wait_for(lambda: any('HTTP 500' in r.getMessage()
                             for r in caplog.records))
    seen = [r for r in caplog.records if 'HTTP 500' in r.getMessage()]
    assert 'flaky' in seen[0].getMessage()
    assert seen[0].levelno == logging.INFO
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all('flaky' in r.getMessage()
                          and 'ValueError' in r.getMessage()
                          for r in errors)


def test_a_hung_job_delays_no_other(tmp_path: Path, live_server: Any,
                                    caplog: Any) -> None:
    """While one job hangs, another keeps its schedule; the hang times out."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), trigger_timeout=1.5)
    release = threading.Event()
    quick = Runs()
    app.cronjob(EVERY_SECOND, name='hung', once=True, jitter=False)(
        lambda request: release.wait(10))
    app.cronjob(EVERY_SECOND, name='quick', jitter=False)(quick)
    try:
        with caplog.at_level(logging.ERROR, logger='onecron'):
            app.start(base_url=live_server(app).url)
            wait_for(lambda: len(quick) >= 4)
            wait_for(lambda: any('timed out' in r.getMessage()
                                 for r in caplog.records))
    finally:
        release.set()
        app.stop()
    steps = {(b - a).total_seconds() for a, b in zip(quick.occurrences,
                                                     quick.occurrences[1:])}
    assert steps == {1.0}
    assert any('hung' in r.getMessage() and 'timed out' in r.getMessage()
               for r in caplog.records)


def test_a_redirect_is_a_failure(tmp_path: Path, live_server: Any,
                                 caplog: Any,
                                 sentry_events: list[dict[str, Any]]) -> None:
    """A job URL that redirects is reported, not silently followed; the
    report names the redirect's scheme and host, never the token that a
    Location echoing the job URL holds (log, Sentry, run history)."""
    app = CronApp(secret='s', lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs.sqlite'))
    app.cronjob(EVERY_SECOND, name='moved', jitter=False)(lambda r: None)

    def redirecting(environ: dict[str, Any], start_response: Any) -> Any:
        # as an http-to-https redirect does: the whole URL, token included
        start_response('301 Moved Permanently', [(
            'Location', 'https://elsewhere.example' + environ['PATH_INFO'])])
        return [b'']

    server = live_server(redirecting)
    token = app.url_for('moved', server.url).rsplit('/', 1)[1]
    try:
        with caplog.at_level(logging.DEBUG, logger='onecron'):
            app.start(base_url=server.url)
            wait_for(lambda: any('redirect' in r.getMessage()
                                 for r in caplog.records))
            wait_for(lambda: app.store is not None and app.store.runs(
                'default', 'moved'))
    finally:
        app.stop()
    [record, *_] = [r for r in caplog.records if 'redirect' in r.getMessage()]
    assert 'moved' in record.getMessage()
    assert 'redirect to https://elsewhere.example' in record.getMessage()
    assert all(token not in r.getMessage() for r in caplog.records)
    assert app.store is not None
    [run, *_] = app.store.runs('default', 'moved')
    assert run.error is not None and 'elsewhere.example' in run.error
    assert token not in repr(run)
    assert sentry_events and token not in repr(sentry_events)


def test_stop_releases_the_lock_and_start_works_again(
        timed: CronApp, live_server: Any, clock: ManualClock) -> None:
    """stop() ends the threads and frees the lock; start() resumes."""
    app = timed
    runs = Runs()
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(runs)
    url = live_server(app).url
    app.start(base_url=url)
    run_until(clock, lambda: len(runs) >= 1, app)
    scheduler = app.schedulers['default']
    app.stop()
    assert not scheduler.alive and not app.caller.running
    lock = HostLock(lock_path(app.lock_dir, 'default'))
    assert lock.acquire()
    lock.release()
    count = len(runs)
    Request.blank(url + '/').get_response(app)  # requests don't restart it
    run_for(clock, 3, app)
    assert len(runs) == count  # none was in flight: the steps waited
    app.start(base_url=url)
    run_for(clock, 2, app)
    assert len(runs) == count + 2  # each second once, from the restart


def test_disabled_never_starts_a_thread(tmp_path: Path,
                                        live_server: Any) -> None:
    """enabled=False: no scheduler, but the job URL still works."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), enabled=False)
    runs: list[int] = []
    app.cronjob(EVERY_SECOND, name='tick')(lambda r: runs.append(1))
    server = live_server(app)
    Request.blank(server.url + '/').get_response(app)
    app.start(base_url=server.url)
    assert not app.schedulers and not app.caller.running
    import urllib.request
    with urllib.request.urlopen(app.url_for('tick', server.url)) as answer:
        assert answer.status == 200
    assert runs == [1]


def test_job_added_after_start_is_scheduled(app: CronApp,
                                            live_server: Any) -> None:
    """A job registered while the scheduler runs is picked up."""
    early, late = Runs(), Runs()
    app.cronjob(EVERY_SECOND, name='early', jitter=False)(early)
    app.start(base_url=live_server(app).url)
    wait_for(lambda: len(early) >= 1)
    app.cronjob(EVERY_SECOND, name='late', jitter=False)(late)
    wait_for(lambda: len(late) >= 2)


def test_each_application_id_is_scheduled_on_its_own(
        tmp_path: Path, live_server: Any) -> None:
    """Tenants get a scheduler each, with the URL of their first request
    (its host allowed)."""
    seen: list[str] = []
    app = CronApp(secret='s', lock_dir=str(tmp_path),
                  allowed_hosts=['127.0.0.1'],
                  application_id=lambda request: request.script_name.strip(
                      '/') or 'root')
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(
        lambda request: seen.append(app.application_id_of(request)))

    def mount(environ: dict[str, Any], start_response: Any) -> Any:
        # a tiny dispatcher: /<tenant>/... is served with SCRIPT_NAME set
        request = Request(environ)
        request.path_info_pop()
        return app(request.environ, start_response)

    server = live_server(mount)
    app.allowed_hosts = parse_allowed_hosts([f'127.0.0.1:{server.port}'])
    try:
        for tenant in ('town-a', 'town-b'):
            Request.blank(f'{server.url}/{tenant}/').send()
        wait_for(lambda: {'town-a', 'town-b'} <= set(seen))
        assert {key: s.base_url for key, s in app.schedulers.items()} == {
            'town-a': server.url + '/town-a',
            'town-b': server.url + '/town-b'}
    finally:
        app.stop()


# -- real processes --------------------------------------------------------

def start_host(lock_dir: Path, run_log: Path,
               *extra: str) -> subprocess.Popen[str]:
    errors = open(lock_dir / f'host-{len(list(lock_dir.glob("host-*")))}'
                               '.err', 'w')
    process = subprocess.Popen(
        [sys.executable, '-m', 'tests.host', str(lock_dir), str(run_log),
         *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=errors,
        text=True, start_new_session=True)
    errors.close()
    return process


def ready_pid(process: subprocess.Popen[str], lock_dir: Path) -> int:
    """The pid in the next 'ready' line; the hosts' stderr if none."""
    assert process.stdout is not None
    line = process.stdout.readline().split()
    assert len(line) == 2 and line[0] == 'ready', '\n'.join(
        path.read_text() for path in lock_dir.glob('host-*.err'))
    return int(line[1])


def read_runs(run_log: Path) -> list[tuple[int, str]]:
    if not run_log.exists():
        return []
    return [(int(pid), occurrence) for pid, occurrence in
            (line.split() for line in run_log.read_text().splitlines())]


def test_one_process_per_host_fires_and_another_takes_over(
        tmp_path: Path) -> None:
    """Two processes, one fires; after kill -9 the other takes over."""
    run_log = tmp_path / 'runs.log'
    first = start_host(tmp_path, run_log)
    second = None
    try:
        wait_for(lambda: read_runs(run_log), timeout=15)
        second = start_host(tmp_path, run_log)
        ready_pid(second, tmp_path)
        # the second stands by while the first fires on (real processes:
        # as many fires as it takes, not a fixed sleep)
        ready = len(read_runs(run_log))
        wait_for(lambda: len(read_runs(run_log)) >= ready + 3)
        assert {pid for pid, _ in read_runs(run_log)} == {first.pid}
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed_at = len(read_runs(run_log))
        wait_for(lambda: second.pid in {pid for pid, _ in
                                        read_runs(run_log)}, timeout=10)
        wait_for(lambda: len(read_runs(run_log)) >= killed_at + 3)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    runs = read_runs(run_log)
    occurrences = [occurrence for _, occurrence in runs]
    assert len(occurrences) == len(set(occurrences)), 'an occurrence ran twice'
    # the takeover costs at most a few occurrences on a loaded machine
    seconds = [datetime.fromisoformat(o).timestamp() for o in occurrences]
    gap = max(b - a for a, b in zip(seconds, seconds[1:]))
    assert gap <= 4


def test_fork_safety(tmp_path: Path) -> None:
    """A scheduler started before fork is not assumed alive in the child."""
    run_log = tmp_path / 'runs.log'
    parent = start_host(tmp_path, run_log, '--fork')
    try:
        pids = {ready_pid(parent, tmp_path) for _ in range(2)}
        child_pid = (pids - {parent.pid}).pop()
        wait_for(lambda: len(read_runs(run_log)) >= 3, timeout=15)
        assert {pid for pid, _ in read_runs(run_log)} == {parent.pid}
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_for(lambda: child_pid in {pid for pid, _ in
                                       read_runs(run_log)}, timeout=10)
    finally:
        # the whole session: the forked child too, even if it never spoke
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if parent.poll() is None:
            parent.wait()
    occurrences = [occurrence for _, occurrence in read_runs(run_log)]
    assert len(occurrences) == len(set(occurrences))
