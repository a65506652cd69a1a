"""Run keys (``X-Onecron-Run``) over a real server and a real SQLite store:
one run per key, application id and job.

A caller who holds a job URL chooses the key; the key may neither run the
job twice nor reach the record of another job's or another tenant's run.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.protocol.headers import RUN_HEADER
from onecron.stores.base import Outcome, Run, Trigger

TENANT_HEADER = 'X-Tenant'


@pytest.fixture
def app(tmp_path: Path) -> Iterator[CronApp]:
    """Jobs of the tenant a request names in X-Tenant, with a store; no
    scheduler."""
    app = CronApp(secret='a run keys test secret, 32+ chars',
                  lock_dir=str(tmp_path), enabled=False,
                  store=str(tmp_path / 'runs.sqlite'),
                  application_id=lambda request: request.headers.get(
                      TENANT_HEADER, 'default'))
    yield app
    app.stop()


def post(url: str, key: str, tenant: str = 'default') -> tuple[int, str]:
    """POST to a job URL with a run key; the status and the body's line."""
    request = urllib.request.Request(
        url, data=b'', method='POST',
        headers={RUN_HEADER: key, TENANT_HEADER: tenant})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode().rstrip('\n')
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode().rstrip('\n')


def runs(app: CronApp, tenant: str = 'default') -> list[Run]:
    assert app.store is not None
    return app.store.runs(tenant)


def counting(app: CronApp, name: str, **options: Any) -> list[str]:
    """Register the job ``name``; the calls it got, as they come."""
    calls: list[str] = []

    @app.cronjob(name=name, **options)
    def job(request: Request) -> str:
        calls.append(request.headers.get(TENANT_HEADER, 'default'))
        return f'call {len(calls)}'

    return calls


def test_a_second_call_with_a_run_key_gets_409_and_runs_nothing(
        app: CronApp, live_server: Any) -> None:
    """The second POST with the same X-Onecron-Run gets 409, does not run
    the job and leaves the first run's record as it was."""
    calls = counting(app, 'report')
    url = app.url_for('report', live_server(app).url, application_id='default')
    assert post(url, 'key-1') == (200, 'call 1')
    [first] = runs(app)
    assert (first.outcome, first.output, first.key) == (
        Outcome.OK, 'call 1', 'key-1')
    assert post(url, 'key-1') == (
        409, 'Conflict: this run key has started already')
    assert calls == ['default']
    assert runs(app) == [first]


def test_a_repeated_key_is_refused_while_the_run_still_runs(
        app: CronApp, live_server: Any) -> None:
    """With overlap 'allow' (no lock keeps a second call out), a call with
    the key of a running run gets 409; the running run ends as its own."""
    running = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    @app.cronjob(name='long', overlap='allow')
    def long(request: Request) -> str:
        calls.append(1)
        running.set()
        release.wait(10)
        return 'done'

    url = app.url_for('long', live_server(app).url, application_id='default')
    answers: list[tuple[int, str]] = []
    first = threading.Thread(target=lambda: answers.append(post(url, 'k')))
    first.start()
    try:
        assert running.wait(10)
        assert post(url, 'k')[0] == 409
    finally:
        release.set()
        first.join(10)
    assert answers == [(200, 'done')] and calls == [1]
    [run] = runs(app)
    assert (run.outcome, run.output, run.trigger) == (
        Outcome.OK, 'done', Trigger.URL)


def test_one_key_on_two_jobs_runs_both(app: CronApp,
                                       live_server: Any) -> None:
    """Job A's run key does not stop job B: both run and keep their own
    records."""
    calls_a = counting(app, 'a')
    calls_b = counting(app, 'b')
    server = live_server(app).url
    for name in ('a', 'b'):
        url = app.url_for(name, server, application_id='default')
        assert post(url, 'shared')[0] == 200
    assert (calls_a, calls_b) == (['default'], ['default'])
    assert sorted((run.job, run.key, run.outcome) for run in runs(app)) == [
        ('a', 'shared', Outcome.OK), ('b', 'shared', Outcome.OK)]


def test_a_tenants_key_does_not_touch_another_tenants_run(
        app: CronApp, live_server: Any) -> None:
    """Tenant x calling with tenant y's run key runs x's job and writes
    x's run; y's run keeps its record, and y's key still refuses y."""
    calls = counting(app, 'report')
    server = live_server(app).url
    # static URLs are bound to their tenant: each calls its own
    url_x = app.url_for('report', server, application_id='x')
    url = app.url_for('report', server, application_id='y')
    assert post(url, 'k', tenant='y') == (200, 'call 1')
    [theirs] = runs(app, 'y')
    assert post(url_x, 'k', tenant='x') == (200, 'call 2')
    assert calls == ['y', 'x']
    assert runs(app, 'y') == [theirs]
    [ours] = runs(app, 'x')
    assert (ours.output, ours.key) == ('call 2', 'k') and ours != theirs
    assert post(url, 'k', tenant='y')[0] == 409
    assert calls == ['y', 'x']
