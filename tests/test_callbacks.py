"""One rule for the application's callbacks that raise (status_access,
job_access, application_id, should_run): refuse, report once per
callback and exception type through the app's reporter, never a made-up
tenant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.reporting import Reporter
from onecron.stores.base import Outcome

from .conftest import LiveServer, wait_for

EVERY_SECOND = '* * * * * *'


class Recording(Reporter):
    """Keeps the failures reported, and reports them as usual."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str, str]] = []

    def failure(self, job: str, application_id: str, message: str,
                exc: BaseException | None = None) -> None:
        self.failures.append((job, application_id, message))
        super().failure(job, application_id, message, exc)


@pytest.fixture
def reporter() -> Recording:
    return Recording()


def broken(*args: Any) -> bool:
    raise RuntimeError('callback bug')


def other_bug(*args: Any) -> bool:
    raise KeyError('another bug')


def get(app: CronApp, path: str, **kw: Any) -> int:
    return int(Request.blank(path, remote_addr='127.0.0.1',
                             **kw).get_response(app).status_int)


def test_status_access_that_raises_refuses_and_reports_once(
        reporter: Recording, sentry_events: list[dict[str, Any]]) -> None:
    """A status_access callable that raises: 403 every time, one failure
    through the reporter (log and Sentry) per exception type."""
    app = CronApp(secret='s', enabled=False, status_access=broken,
                  reporter=reporter)
    assert [get(app, '/cronjobs/') for _ in range(3)] == [403] * 3
    assert len(reporter.failures) == 1
    assert 'the status_access callable raised RuntimeError' in \
        reporter.failures[0][2]
    assert len(sentry_events) == 1


def test_job_access_that_raises_refuses_and_reports_once(
        reporter: Recording, sentry_events: list[dict[str, Any]]) -> None:
    """A job_access callable that raises: 403, nothing runs, one report
    per exception type (a second type is reported too), no token in it."""
    ran: list[int] = []
    policy: list[Callable[..., bool]] = [broken]
    app = CronApp(secret='s', enabled=False, reporter=reporter,
                  job_access=lambda request: policy[0](request),
                  base_url='http://127.0.0.1:9')
    app.cronjob(name='job')(lambda request: ran.append(1))
    url = app.url_for('job')
    assert [get(app, url) for _ in range(3)] == [403] * 3
    policy[0] = other_bug
    assert get(app, url) == 403
    assert ran == []
    assert [message.split(':')[0] for _, _, message in reporter.failures] \
        == ['the job_access callable raised RuntimeError',
            'the job_access callable raised KeyError']
    token = url.rsplit('/', 1)[1]
    assert len(sentry_events) == 2
    assert token not in repr(sentry_events)


def test_application_id_that_raises_refuses_and_reports_once(
        reporter: Recording, tmp_path: Path,
        sentry_events: list[dict[str, Any]]) -> None:
    """An application_id callable that raises: the job URL is 404, nothing
    runs or starts, no tenant is made up; one report per exception type
    (it used to be a log line only, when starting a scheduler)."""
    ran: list[int] = []
    app = CronApp(secret='s', application_id=broken, reporter=reporter,
                  base_url='http://127.0.0.1:9', lock_dir=str(tmp_path),
                  store=tmp_path / 'runs.db')
    try:
        app.cronjob(name='job')(lambda request: ran.append(1))
        url = app.url_for('job', application_id='tenant')
        assert [get(app, url) for _ in range(3)] == [404] * 3
        assert ran == [] and dict(app.schedulers) == {}
        assert app.application_ids() == []
        assert len(reporter.failures) == 1
        assert 'the application_id callable raised RuntimeError' in \
            reporter.failures[0][2]
        assert len(sentry_events) == 1
    finally:
        app.stop()


def test_should_run_that_raises_skips_and_reports_once(
        reporter: Recording, tmp_path: Path,
        live_server: Callable[..., LiveServer]) -> None:
    """A should_run that raises: the occurrences are recorded skipped and
    the job never runs; one report for the job, not one per fire."""
    ran: list[int] = []
    asked: list[str] = []

    def failing(application_id: str) -> bool:
        asked.append(application_id)
        raise RuntimeError('pre-check bug')

    app = CronApp(secret='s', reporter=reporter, lock_dir=str(tmp_path),
                  store=tmp_path / 'runs.db', autostart=False)
    try:
        app.cronjob(EVERY_SECOND, name='gated', jitter=False,
                    should_run=failing)(lambda request: ran.append(1))
        app.start(base_url=live_server(app).url)
        wait_for(lambda: len(asked) >= 3)
        assert app.store is not None
        wait_for(lambda: len(app.store.runs('default', 'gated')) >= 2)
        runs = app.store.runs('default', 'gated')
        assert {run.outcome for run in runs} == {Outcome.SKIPPED}
        assert ran == []
        assert [(job, message.split(':')[0])
                for job, _, message in reporter.failures] == [
            ('gated', 'the should_run callable raised RuntimeError')]
    finally:
        app.stop()
