"""Job options over a real server: manual jobs, should_run, chains, overlap,
timeouts, run_soon and the per-application pool."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp, UnknownJob
from onecron.schedule.clock import ManualClock

from .conftest import wait_for
from .virtual import run_for, run_until

EVERY_SECOND = '* * * * * *'


@pytest.fixture
def app(tmp_path: Path) -> Iterator[CronApp]:
    app = CronApp(secret='s', lock_dir=str(tmp_path))
    yield app
    app.stop()


def trigger_header(log: list[str]) -> Any:
    return lambda request: log.append(
        request.headers.get('X-Onecron-Trigger', 'url'))


def test_manual_job_runs_only_when_asked(timed: CronApp, live_server: Any,
                                         clock: ManualClock) -> None:
    """No schedule: never scheduled, but run_soon and the URL run it."""
    app = timed
    runs: list[str] = []
    ticks: list[str] = []
    app.cronjob(name='manual')(trigger_header(runs))
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(
        trigger_header(ticks))
    assert app.jobs['manual'].manual and app.jobs['manual'].schedule is None
    url = live_server(app).url
    app.start(base_url=url)
    run_for(clock, 3, app)
    assert runs == [] and len(ticks) == 3
    app.run_soon('manual')
    wait_for(lambda: runs == ['soon'])
    with urllib.request.urlopen(app.url_for('manual', url)):
        pass
    assert runs == ['soon', 'url']


def test_run_soon_waits_for_its_delay(timed: CronApp, live_server: Any,
                                      clock: ManualClock) -> None:
    """run_soon(delay=...) runs once, not before the delay is over (on
    the app's clock)."""
    app = timed
    ran_at: list[float] = []
    app.cronjob(name='later')(lambda request: ran_at.append(clock.time()))
    app.base_url = live_server(app).url
    asked = clock.time()
    app.run_soon('later', delay=0.6)
    run_for(clock, 0.5)
    with pytest.raises(AssertionError):  # a real 0.3 s: still armed
        wait_for(lambda: ran_at, timeout=0.3)
    run_until(clock, lambda: ran_at, app, limit=0.25)
    assert ran_at == [asked + 0.75]  # the first step past the delay
    run_for(clock, 5, app)
    assert len(ran_at) == 1
    with pytest.raises(UnknownJob):
        app.run_soon('nope')
    with pytest.raises(ValueError, match='delay'):
        app.run_soon('later', delay=-1)


def test_should_run_false_skips(app: CronApp, live_server: Any,
                                caplog: Any) -> None:
    """should_run gets the application id; False skips the run cheaply."""
    asked: list[str] = []
    runs: list[int] = []

    def never(application_id: str) -> bool:
        asked.append(application_id)
        return False

    app.cronjob(EVERY_SECOND, name='gated', jitter=False,
                should_run=never)(lambda r: runs.append(1))
    with caplog.at_level(logging.INFO, logger='onecron'):
        app.start(base_url=live_server(app).url)
        wait_for(lambda: len(asked) >= 2)
    assert runs == [] and set(asked) == {'default'}
    assert any('skipped' in r.getMessage() for r in caplog.records)


def test_should_run_error_skips_the_run(app: CronApp, live_server: Any,
                                        caplog: Any) -> None:
    """An exception in should_run is a no: the job does not run, the
    skip is recorded, and the error is reported once, not per fire."""
    runs: list[int] = []
    asked: list[str] = []

    def broken(application_id: str) -> bool:
        asked.append(application_id)
        raise RuntimeError('pre-check bug')

    app.cronjob(EVERY_SECOND, name='gated', jitter=False,
                should_run=broken)(lambda r: runs.append(1))
    with caplog.at_level(logging.INFO, logger='onecron'):
        app.start(base_url=live_server(app).url)
        wait_for(lambda: len(asked) >= 3)
    assert runs == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert 'the should_run callable raised RuntimeError' in \
        errors[0].getMessage()
    assert any('skipped' in r.getMessage() for r in caplog.records)


def test_then_chains_after_success_only(app: CronApp,
                                        live_server: Any) -> None:
    """then= triggers the next jobs after a success, not after a failure."""
    order: list[str] = []
    fail = threading.Event()

    @app.cronjob(name='first', then=['second', 'third'])
    def first(request: Request) -> None:
        order.append('first')
        if fail.is_set():
            raise RuntimeError('no chain after me')

    app.cronjob(name='second')(lambda r: order.append(
        'second:' + r.headers['X-Onecron-Trigger']))
    app.cronjob(name='third')(lambda r: order.append('third'))
    url = app.base_url = live_server(app).url  # where chains are called
    with urllib.request.urlopen(app.url_for('first', url)):
        pass
    wait_for(lambda: len(order) == 3)
    assert order[0] == 'first'
    assert sorted(order[1:]) == ['second:chain', 'third']
    fail.set()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(app.url_for('first', url))
    time.sleep(0.5)
    assert len(order) == 4


def test_unknown_chain_target_fails_at_start(app: CronApp) -> None:
    """then= naming a job that never got registered fails at start()."""
    app.cronjob(name='first', then=['ghost'])(lambda r: None)
    with pytest.raises(UnknownJob, match='ghost'):
        app.start(base_url='http://127.0.0.1:9')


@pytest.mark.parametrize('overlap, statuses, most', [
    ('skip', [200, 409], 1),
    ('allow', [200, 200], 2),
    ('wait', [200, 200], 1),
], ids=['skip', 'allow', 'wait'])
def test_overlap(tmp_path: Path, live_server: Any, overlap: str,
                 statuses: list[int], most: int) -> None:
    """A second trigger while the job runs: 409, a second run, or a wait."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), enabled=False)
    running, peak = [0], [0]
    mutex = threading.Lock()

    @app.cronjob(name='long', overlap=overlap)
    def long(request: Request) -> None:
        with mutex:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.6)
        with mutex:
            running[0] -= 1

    url = app.url_for('long', live_server(app).url)
    answers: list[int] = []

    def call() -> None:
        try:
            with urllib.request.urlopen(url) as response:
                answers.append(response.status)
        except urllib.error.HTTPError as error:
            answers.append(error.code)

    first = threading.Thread(target=call)
    first.start()
    wait_for(lambda: running[0] == 1)
    call()
    first.join()
    assert sorted(answers) == statuses
    assert peak[0] == most


def test_job_timeout(app: CronApp, live_server: Any, caplog: Any) -> None:
    """timeout= limits the scheduler's call of that job only."""
    release = threading.Event()
    app.cronjob(EVERY_SECOND, name='slow', once=True, jitter=False,
                timeout=0.5)(lambda r: release.wait(5))
    try:
        with caplog.at_level(logging.ERROR, logger='onecron'):
            app.start(base_url=live_server(app).url)
            wait_for(lambda: any('timed out' in r.getMessage()
                                 for r in caplog.records))
    finally:
        release.set()
    [record] = [r for r in caplog.records if 'timed out' in r.getMessage()]
    assert 'slow' in record.getMessage()


def test_pool_size_runs_one_at_a_time(tmp_path: Path,
                                      live_server: Any) -> None:
    """pool_size=1: jobs due together run one after another, in order."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), pool_size=1)
    running, peak, done = [0], [0], []
    mutex = threading.Lock()

    def job(request: Request) -> None:
        with mutex:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with mutex:
            running[0] -= 1
            done.append(1)

    for number in range(3):
        app.cronjob(EVERY_SECOND, name=f'job{number}', once=True,
                    jitter=False)(job)
    try:
        app.start(base_url=live_server(app, threads=8).url)
        wait_for(lambda: app.pool_for('default').queued > 0, timeout=5)
        wait_for(lambda: len(done) == 3)
    finally:
        app.stop()
    assert peak[0] == 1


@pytest.mark.parametrize('options, fragment', [
    ({'overlap': 'never'}, 'overlap'),
    ({'notify': 'sometimes'}, 'notify'),
    ({'timeout': 0}, 'timeout'),
    ({'then': [1]}, 'then'),
    ({'should_run': True}, 'should_run'),
], ids=['overlap', 'notify', 'timeout', 'then', 'should-run'])
def test_bad_options_fail_at_registration(options: dict[str, Any],
                                          fragment: str) -> None:
    """A bad option fails when the job is registered, naming it."""
    app = CronApp(secret='s', enabled=False)
    with pytest.raises((ValueError, TypeError), match=fragment):
        app.cronjob(minute=0, name='job', **options)(lambda r: None)
    with pytest.raises(ValueError, match='pool_size'):
        CronApp(secret='s', pool_size=0)
