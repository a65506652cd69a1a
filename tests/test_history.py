"""Runs written down, and the operator's switches obeyed, over a real
server and a real SQLite store."""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp, InvalidSchedule
from onecron.running.housekeeping import POLL_INTERVAL
from onecron.schedule.clock import ManualClock
from onecron.stores.base import MAX_OUTPUT, Outcome, Trigger

from .conftest import wait_for
from .virtual import manual_clock, run_for, run_until

EVERY_SECOND = '* * * * * *'
log = logging.getLogger('tests.jobs')


@pytest.fixture
def app(tmp_path: Path) -> Iterator[CronApp]:
    app = CronApp(secret='s', lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs.sqlite'))
    yield app
    app.stop()


@pytest.fixture
def clock() -> ManualClock:
    return manual_clock()


@pytest.fixture
def timed(tmp_path: Path, clock: ManualClock) -> Iterator[CronApp]:
    """An app with a store, on the virtual ``clock``."""
    app = CronApp(secret='s', lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs.sqlite'), clock=clock)
    yield app
    app.stop()


def runs_of(app: CronApp, job: str) -> list[Any]:
    assert app.store is not None
    return app.store.runs('default', job)


def test_scheduled_run_is_recorded_with_output(app: CronApp,
                                               live_server: Any) -> None:
    """A scheduled run: occurrence, trigger, times, 200, result and log."""
    @app.cronjob(EVERY_SECOND, name='tick', jitter=False, once=True)
    def tick(request: Request) -> str:
        log.warning('cleaned %d rows', 3)
        return 'done'

    app.start(base_url=live_server(app).url)
    [run] = wait_for(lambda: [r for r in runs_of(app, 'tick')
                              if not r.running])
    assert run.outcome is Outcome.OK and run.http_status == 200
    assert run.trigger is Trigger.SCHEDULER
    assert run.scheduled is not None and run.started >= run.scheduled
    assert run.duration is not None and run.duration >= 0
    assert 'cleaned 3 rows' in run.output and run.output.endswith('done')


def test_failed_run_keeps_the_traceback(app: CronApp,
                                        live_server: Any) -> None:
    """A job that raises: failed, 500, the traceback in the record."""
    app.cronjob(name='broken')(lambda r: 1 / 0)
    url = live_server(app).url
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(app.url_for('broken', url))
    [run] = runs_of(app, 'broken')
    assert run.outcome is Outcome.FAILED and run.http_status == 500
    assert run.trigger is Trigger.URL and run.scheduled is None
    assert 'ZeroDivisionError' in (run.error or '')
    assert 'Traceback' in (run.error or '')


def test_huge_output_is_truncated(app: CronApp, live_server: Any) -> None:
    """Output beyond the bound is cut with a marker, never stored whole."""
    app.cronjob(name='chatty')(lambda r: 'x' * (MAX_OUTPUT * 3))
    with urllib.request.urlopen(app.url_for('chatty', live_server(app).url)):
        pass
    [run] = runs_of(app, 'chatty')
    assert len(run.output) < MAX_OUTPUT + 200
    assert 'output truncated' in run.output


def test_skipped_and_timed_out_runs(app: CronApp, live_server: Any) -> None:
    """should_run False is recorded skipped; a call past timeout timed out."""
    release = threading.Event()
    app.cronjob(EVERY_SECOND, name='gated', jitter=False, once=True,
                should_run=lambda app_id: False)(lambda r: None)
    app.cronjob(EVERY_SECOND, name='slow', jitter=False, once=True,
                timeout=0.5)(lambda r: release.wait(5))
    try:
        app.start(base_url=live_server(app).url)
        wait_for(lambda: runs_of(app, 'gated'))
        wait_for(lambda: [r for r in runs_of(app, 'slow')
                          if r.outcome is Outcome.TIMED_OUT])
    finally:
        release.set()
    assert runs_of(app, 'gated')[0].outcome is Outcome.SKIPPED
    # the job ends later: its end is written, the outcome stays timed out
    wait_for(lambda: runs_of(app, 'slow')[0].ended is not None)
    time.sleep(0.3)
    assert runs_of(app, 'slow')[0].outcome is Outcome.TIMED_OUT


def test_overlap_skip_is_recorded(app: CronApp, live_server: Any) -> None:
    """A trigger refused because the job still runs is a skipped run."""
    running = threading.Event()
    release = threading.Event()

    @app.cronjob(name='long')
    def long(request: Request) -> None:
        running.set()
        release.wait(5)

    url = app.url_for('long', live_server(app).url)
    thread = threading.Thread(target=lambda: urllib.request.urlopen(url))
    thread.start()
    running.wait(5)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url)
    release.set()
    thread.join()
    outcomes = sorted(run.outcome.value for run in runs_of(app, 'long'))
    assert outcomes == ['ok', 'skipped']


def ticking(app: CronApp, live_server: Any,
            clock: ManualClock) -> list[str]:
    """Start a job due every second; the occurrences it ran, as they
    come."""
    runs: list[str] = []
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(
        lambda r: runs.append(r.headers['X-Onecron-Occurrence']))
    app.start(base_url=live_server(app).url)
    run_until(clock, lambda: runs, app)
    return runs


def quiet_after_poll(runs: list[str], clock: ManualClock,
                     app: CronApp) -> int:
    """Let the scheduler see a switch (it looks every 2 s: at most
    that many fires more), then check no run happens for 5 s more; the
    run count."""
    count = len(runs)
    run_for(clock, POLL_INTERVAL, app)
    assert len(runs) <= count + POLL_INTERVAL
    count = len(runs)
    run_for(clock, 5, app)
    assert len(runs) == count
    return count


def test_disable_and_override_apply_within_seconds(
        timed: CronApp, live_server: Any, clock: ManualClock) -> None:
    """Switches in the store reach the running scheduler by polling,
    within its poll interval."""
    app = timed
    runs = ticking(app, live_server, clock)
    app.set_enabled('tick', False)
    count = quiet_after_poll(runs, clock, app)
    # still queued (its occurrences are claimed), but it will not run
    assert app.schedulers['default'].next_run('tick') is not None
    assert app.next_run('tick') is None
    app.set_enabled('tick', True)
    run_until(clock, lambda: len(runs) > count, app,
              limit=POLL_INTERVAL + 1)
    with pytest.raises(InvalidSchedule):
        app.override_schedule('tick', '*/0 * * * *')
    assert str(app.schedule_of('tick')) == EVERY_SECOND
    app.override_schedule('tick', '0 0 1 1 *')
    assert str(app.schedule_of('tick')) == '0 0 1 1 *'
    count = quiet_after_poll(runs, clock, app)
    next_run = app.next_run('tick')
    assert next_run is not None and next_run.month == 1 and next_run.day == 1
    app.override_schedule('tick', None)
    run_until(clock, lambda: len(runs) > count, app,
              limit=POLL_INTERVAL + 1)


def test_hold_records_missed_and_release_catches_up(
        timed: CronApp, live_server: Any, clock: ManualClock) -> None:
    """Held jobs miss their runs (recorded); release can run them once."""
    app = timed
    runs = ticking(app, live_server, clock)
    app.hold()
    run_for(clock, POLL_INTERVAL, app)  # seen by the next poll
    count = len(runs)
    run_for(clock, 3, app)
    assert len(runs) == count
    [missed] = [r for r in runs_of(app, 'tick')
                if r.outcome is Outcome.MISSED]
    assert app.next_run('tick') is None
    assert app.release(catch_up=True) == ['tick']
    wait_for(lambda: any(r.trigger is Trigger.SOON
                         for r in runs_of(app, 'tick')))


def test_a_failing_store_does_not_stop_the_scheduler(
        tmp_path: Path, live_server: Any, caplog: Any) -> None:
    """With the store's directory gone, jobs still run; reported once."""
    directory = tmp_path / 'store'
    directory.mkdir()
    app = CronApp(secret='s', lock_dir=str(tmp_path),
                  store=str(directory / 'runs.sqlite'))
    runs: list[int] = []
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(
        lambda r: runs.append(1))
    try:
        with caplog.at_level(logging.ERROR, logger='onecron'):
            app.start(base_url=live_server(app).url)
            wait_for(lambda: runs)
            for name in os.listdir(directory):
                os.remove(directory / name)
            directory.rmdir()
            count = len(runs)
            wait_for(lambda: len(runs) >= count + 3)
    finally:
        app.stop()
    failures = [r for r in caplog.records
                if 'run store failed' in r.getMessage()]
    assert len(failures) == 1
