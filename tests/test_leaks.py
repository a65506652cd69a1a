"""A job URL's token reaches no log line, Sentry event, stored run or
answer that outlives the call; what a job returns or prints always gets
an answer."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk import transport as sentry_transport
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware
from webob import Request

from onecron import CronApp

from .conftest import wait_for

log = logging.getLogger('a_users_app')


@pytest.fixture
def app(tmp_path: Path) -> Iterator[CronApp]:
    app = CronApp(secret='s' * 32, lock_dir=str(tmp_path), enabled=False,
                  base_url='http://app.test',
                  store=str(tmp_path / 'runs.sqlite'))
    yield app
    app.stop()


def call(app: CronApp, name: str) -> tuple[str, Any]:
    url = app.url_for(name)
    response = Request.blank(url, method='POST').get_response(app)
    return url.rsplit('/', 1)[1], response


def test_a_job_quoting_its_url_leaks_no_token(
        app: CronApp, caplog: pytest.LogCaptureFixture,
        sentry_events: list[dict[str, Any]]) -> None:
    """A job that logs request.url and raises with it in the message: the
    stored output and traceback, onecron's log records and the one Sentry
    event (its frames' local ``request`` included) say [token] instead."""

    @app.cronjob(name='careless')
    def careless(request: Request) -> None:
        log.warning('running at %s', request.url)
        raise RuntimeError(f'could not finish {request.url}')

    caplog.set_level(logging.INFO)
    token, response = call(app, 'careless')
    assert response.status_code == 500
    assert app.store is not None
    [run] = app.store.runs('default', 'careless')
    assert run.output is not None and '[token]' in run.output
    assert run.error is not None and '[token]' in run.error
    assert token not in repr(run)
    onecron_lines = [logging.Formatter().format(record)
                     for record in caplog.records
                     if record.name.startswith('onecron')]
    assert onecron_lines and all(token not in line for line in onecron_lines)
    assert len(sentry_events) == 1
    event = json.dumps(sentry_events[0], default=str)
    assert 'could not finish' in event and '[token]' in event
    assert token not in event


def test_answers_are_not_stored_by_caches(app: CronApp) -> None:
    """Every answer of a job URL says Cache-Control: no-store."""
    app.cronjob(name='fine')(lambda request: 'done')
    app.cronjob(name='broken')(lambda request: 1 / 0)
    for name, status in (('fine', 200), ('broken', 500)):
        _, response = call(app, name)
        assert response.status_code == status
        assert response.headers['Cache-Control'] == 'no-store'
    response = Request.blank('/cronjobs/nothing-here').get_response(app)
    assert response.status_code == 404
    assert response.headers['Cache-Control'] == 'no-store'


def test_a_returned_surrogate_is_answered(app: CronApp) -> None:
    """A job returning text with a lone surrogate (bytes it read that
    were not UTF-8) gets 200 with the surrogate escaped, and its run is
    stored."""
    app.cronjob(name='odd')(lambda request: 'read \udcff from a file')
    _, response = call(app, 'odd')
    assert response.status_code == 200
    assert response.text == 'read \\udcff from a file\n'


def test_a_path_that_is_not_utf8_is_404(app: CronApp) -> None:
    """Bytes that are not UTF-8 under the prefix, after a valid token or
    alone, name nothing: 404, never an exception out of the app."""
    app.cronjob(name='job')(lambda request: None)
    token = app.url_for('job').rsplit('/', 1)[1]
    for path in (f'/cronjobs/{token}%FF', '/cronjobs/%C3%28',
                 '/cronjobs/o/%FF%FE', '/cronjobs/jobs/%80'):
        response = Request.blank(path, method='POST').get_response(app)
        assert response.status_code == 404, path


def test_a_failing_scheduled_job_is_one_sentry_event(
        tmp_path: Path, live_server: Any, caplog: pytest.LogCaptureFixture,
        sentry_events: list[dict[str, Any]]) -> None:
    """A job that raises when the scheduler calls it is reported once, by
    the endpoint that ran it: the scheduler does not add an 'HTTP 500'
    event of its own for the same run."""
    app = CronApp(secret='s' * 32, lock_dir=str(tmp_path))
    ran: list[int] = []

    @app.cronjob('* * * * * *', name='boom', jitter=False, once=True)
    def boom(request: Request) -> None:
        ran.append(1)
        raise ValueError('boom')

    try:
        app.start(base_url=live_server(app).url)
        caplog.set_level(logging.INFO, 'onecron')
        # the scheduler has seen the answer once it logs it
        wait_for(lambda: any('HTTP 500' in record.getMessage()
                             for record in caplog.records))
    finally:
        app.stop()
    messages = [json.dumps(event, default=str) for event in sentry_events]
    assert len(sentry_events) == 1, messages
    assert 'boom' in messages[0] and 'HTTP 500' not in messages[0]


class _Envelopes(sentry_transport.Transport):
    """Keeps every envelope the client sends, serialized."""

    def __init__(self, sent: list[bytes]) -> None:
        super().__init__()
        self.sent = sent

    def capture_envelope(self, envelope: Any) -> None:
        self.sent.append(envelope.serialize())


def test_sentrys_wsgi_middleware_sends_no_token(app: CronApp) -> None:
    """Behind Sentry's own WSGI middleware, with tracing on, neither the
    error event of a failing job nor the request's transaction names the
    token: the middleware adds the request's URL after onecron's global
    processor ran, so the scrubbing runs last, as before_send does."""
    sent: list[bytes] = []
    sentry_sdk.init(dsn='https://key@sentry.invalid/1',
                    transport=_Envelopes(sent), traces_sample_rate=1.0)
    try:
        app.cronjob(name='broken')(lambda request: 1 / 0)
        url = app.url_for('broken')
        token = url.rsplit('/', 1)[1]
        response = Request.blank(url, method='POST').get_response(
            SentryWsgiMiddleware(app))
        assert response.status_code == 500
        sentry_sdk.flush()
    finally:
        sentry_sdk.init()  # back to a client that sends nothing
    kinds = b''.join(sent)
    assert b'"type":"event"' in kinds and b'"type":"transaction"' in kinds
    assert b'ZeroDivisionError' in kinds
    assert b'/cronjobs/[token]' in kinds
    assert all(token.encode() not in envelope for envelope in sent)
