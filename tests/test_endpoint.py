"""The job URL, in process: what runs, what answers, what gets reported."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from webob import Request, Response

from onecron import CronApp

SECRET = 'test-secret'


@pytest.fixture
def app(tmp_path: Path) -> CronApp:
    return CronApp(secret=SECRET, enabled=False,
                   base_url='http://example.org', lock_dir=str(tmp_path))


def path_of(app: CronApp, name: str) -> str:
    return app.url_for(name).removeprefix('http://example.org')


@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_valid_token_runs_the_job_once(app: CronApp, method: str) -> None:
    """GET or POST with a valid token runs the job with the request: 200."""
    seen: list[Request] = []

    @app.cronjob(hour=8, minute=30, timezone='Europe/Zurich', name='report')
    def report(request: Request) -> None:
        seen.append(request)

    response = Request.blank(path_of(app, 'report'),
                             method=method).get_response(app)
    assert response.status_int == 200
    assert len(seen) == 1 and isinstance(seen[0], Request)
    assert seen[0].method == method


def test_string_result_is_the_body(app: CronApp) -> None:
    """A job that returns text answers with it."""
    @app.cronjob(minute='*/5', name='count')
    def count(request: Request) -> str:
        return '3 rows removed'

    response = Request.blank(path_of(app, 'count')).get_response(app)
    assert response.text == '3 rows removed\n'


@pytest.mark.parametrize('method', ['HEAD', 'PUT', 'DELETE', 'OPTIONS',
                                    'PATCH'])
def test_other_methods_run_nothing(app: CronApp, method: str) -> None:
    """Any method but GET/POST: 405 with Allow, and the job does not run."""
    runs: list[int] = []
    app.cronjob(minute=0, name='job')(lambda request: runs.append(1))
    response = Request.blank(path_of(app, 'job'),
                             method=method).get_response(app)
    assert response.status_int == 405
    assert response.headers['Allow'] == 'GET, POST'
    assert runs == []


def test_bad_tokens_are_404_without_a_hint(app: CronApp) -> None:
    """Bad, truncated, forged, foreign and unregistered: the same 404."""
    runs: list[int] = []
    app.cronjob(minute=0, name='job')(lambda request: runs.append(1))
    token = path_of(app, 'job').rsplit('/', 1)[1]
    foreign = CronApp(secret='other', enabled=False)
    foreign.cronjob(minute=0, name='job')(lambda request: None)
    unregistered = CronApp(secret=SECRET, enabled=False)
    unregistered.cronjob(minute=0, name='ghost')(lambda request: None)
    paths = [
        '/cronjobs/garbage', '/cronjobs/' + token[:-2],
        '/cronjobs/' + token[:-1] + ('A' if token[-1] != 'A' else 'B'),
        foreign.url_for('job', 'http://x').removeprefix('http://x'),
        unregistered.url_for('ghost', 'http://x').removeprefix('http://x'),
        '/cronjobs/' + token + '/extra', '/cronjobs/jobs',
        '/cronjobs/status.jsonx',
    ]
    bodies = set()
    for path in paths:
        response = Request.blank(path).get_response(app)
        assert response.status_int == 404, path
        bodies.add(response.body)
    assert runs == []
    assert bodies == {b'Not Found\n'}


def test_raising_job(app: CronApp, caplog: Any,
                     sentry_events: list[dict[str, Any]]) -> None:
    """A job that raises: generic 500, ERROR with traceback, Sentry event."""
    @app.cronjob(minute=0, name='broken')
    def broken(request: Request) -> None:
        raise RuntimeError('password=hunter2')

    with caplog.at_level(logging.ERROR, logger='onecron'):
        response = Request.blank(path_of(app, 'broken')).get_response(app)
    assert response.status_int == 500
    assert b'hunter2' not in response.body
    assert b'Traceback' not in response.body
    records = [r for r in caplog.records if r.name.startswith('onecron')]
    assert len(records) == 1 and records[0].levelno == logging.ERROR
    assert 'broken' in records[0].getMessage()
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is RuntimeError
    assert len(sentry_events) == 1
    exception = sentry_events[0]['exception']['values'][0]
    assert exception['type'] == 'RuntimeError'
    assert sentry_events[0]['tags']['onecron.job'] == 'broken'


def test_slow_job_is_reported(caplog: Any,
                              sentry_events: list[dict[str, Any]],
                              tmp_path: Path) -> None:
    """A run longer than slow_after: WARNING with name and duration."""
    app = CronApp(secret=SECRET, enabled=False, slow_after=0.05,
                  base_url='http://example.org', lock_dir=str(tmp_path))
    app.cronjob(minute=0, name='sluggish')(lambda request: time.sleep(0.1))
    with caplog.at_level(logging.WARNING, logger='onecron'):
        response = Request.blank(path_of(app, 'sluggish')).get_response(app)
    assert response.status_int == 200
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING
                and 'slow' in r.getMessage()]
    assert 'sluggish' in record.getMessage()
    assert 'took 0.1' in record.getMessage()
    assert sentry_events[0]['level'] == 'warning'


def test_other_requests_go_to_the_wrapped_app_untouched() -> None:
    """Outside the prefix, the wrapped app sees the request as it was."""
    seen: list[dict[str, Any]] = []

    def wrapped(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(dict(environ))
        start_response('201 Created', [('X-Mine', 'yes')])
        return [b'wrapped']

    app = CronApp(wrapped, secret=SECRET, enabled=False)
    for path in ['/', '/cronjobsx', '/other/cronjobs/x', '/cron']:
        request = Request.blank(path)
        response = request.get_response(app)
        assert response.status_int == 201 and response.body == b'wrapped'
        assert response.headers['X-Mine'] == 'yes'
        assert seen[-1]['PATH_INFO'] == path


def test_without_wrapped_app_everything_else_is_404() -> None:
    """wrapped=None: a plain 404 outside the prefix."""
    app = CronApp(secret=SECRET, enabled=False)
    assert Request.blank('/anything').get_response(app).status_int == 404


def test_custom_prefix_and_script_name(tmp_path: Path) -> None:
    """Job URLs follow the prefix and the mount point of the app."""
    app = CronApp(secret=SECRET, enabled=False, prefix='/_jobs/',
                  lock_dir=str(tmp_path))
    runs: list[str] = []
    app.cronjob(minute=0, name='job')(
        lambda request: runs.append(request.application_url))
    url = app.url_for('job', base_url='http://h/mount')
    assert url.startswith('http://h/mount/_jobs/')
    request = Request.blank(url.removeprefix('http://h/mount'),
                            base_url='http://h/mount')
    assert request.get_response(app).status_int == 200
    assert runs == ['http://h/mount']


def test_response_is_a_real_wsgi_response(app: CronApp) -> None:
    """The answer carries a content type and length."""
    app.cronjob(minute=0, name='job')(lambda request: None)
    response: Response = Request.blank(path_of(app, 'job')).get_response(app)
    assert response.content_type == 'text/plain'
    assert response.content_length == len(response.body)


# --- job_access -------------------------------------------------------------


def access_app(tmp_path: Any, runs: list[int], **options: Any) -> CronApp:
    app = CronApp(secret=SECRET, enabled=False, base_url='http://example.org',
                  store=str(tmp_path / 'runs.sqlite'), lock_dir=str(tmp_path),
                  **options)
    app.cronjob(minute=0, name='job')(lambda request: runs.append(1))
    return app


def call_from(app: CronApp, remote_addr: str,
              headers: dict[str, str] | None = None) -> int:
    request = Request.blank(path_of(app, 'job'), method='POST',
                            remote_addr=remote_addr, headers=headers or {})
    status: int = request.get_response(app).status_int
    return status


@pytest.mark.parametrize('remote_addr, headers, proxies, status', [
    ('127.0.0.1', {}, (), 200),
    ('::1', {}, (), 200),
    ('10.0.0.5', {}, (), 403),
    ('127.0.0.1', {'X-Forwarded-For': '203.0.113.9'}, (), 403),
    ('127.0.0.1', {'X-Forwarded-For': '203.0.113.9'}, ('127.0.0.1',), 403),
    ('127.0.0.1', {'X-Forwarded-For': '127.0.0.1'}, ('127.0.0.1',), 200),
    ('10.0.0.1', {'X-Forwarded-For': '127.0.0.1'}, ('10.0.0.0/8',), 200),
    ('10.0.0.1', {'X-Forwarded-For': '127.0.0.1'}, (), 403),
], ids=['v4', 'v6', 'remote', 'untrusted-proxy', 'proxy-for-remote',
        'proxy-for-local', 'trusted-net', 'spoofed'])
def test_job_access_loopback(tmp_path: Any, remote_addr: str,
                             headers: dict[str, str],
                             proxies: tuple[str, ...], status: int) -> None:
    """job_access='loopback' lets in clients on this machine, reading
    X-Forwarded-For only from trusted_proxies, as the status page does;
    a refused call runs and records nothing."""
    runs: list[int] = []
    app = access_app(tmp_path, runs, job_access='loopback',
                     trusted_proxies=proxies)
    assert call_from(app, remote_addr, headers) == status
    assert len(runs) == (status == 200)
    assert app.store is not None
    assert len(app.store.runs('default')) == (status == 200)


def test_job_access_any_is_the_default(tmp_path: Any) -> None:
    """By default any client with a valid token runs the job."""
    runs: list[int] = []
    app = access_app(tmp_path, runs)
    assert call_from(app, '203.0.113.9') == 200 and runs == [1]


def test_job_access_callable(tmp_path: Any,
                             caplog: pytest.LogCaptureFixture) -> None:
    """A callable decides per request; a refusal is 403, logged at INFO
    without the token."""
    runs: list[int] = []
    seen: list[Request] = []

    def only_with_header(request: Request) -> bool:
        seen.append(request)
        return request.headers.get('X-Internal') == 'yes'

    app = access_app(tmp_path, runs, job_access=only_with_header)
    with caplog.at_level(logging.INFO, logger='onecron'):
        assert call_from(app, '10.0.0.5') == 403
    assert call_from(app, '10.0.0.5', {'X-Internal': 'yes'}) == 200
    assert runs == [1] and len(seen) == 2
    [record] = [r for r in caplog.records if 'job_access' in r.getMessage()]
    assert record.levelno == logging.INFO
    assert '10.0.0.5' in record.getMessage()
    assert path_of(app, 'job').rsplit('/', 1)[1] not in record.getMessage()


def test_job_access_callable_that_raises(
        tmp_path: Any, sentry_events: list[dict[str, Any]]) -> None:
    """A callable that raises refuses the call (403) and is reported."""
    runs: list[int] = []

    def broken(request: Request) -> bool:
        raise RuntimeError('auth backend down')

    app = access_app(tmp_path, runs, job_access=broken)
    assert call_from(app, '127.0.0.1') == 403
    assert runs == []
    assert app.store is not None and app.store.runs('default') == []
    [event] = sentry_events
    assert event['exception']['values'][0]['value'] == 'auth backend down'


def test_job_access_refuses_before_the_token_is_read(tmp_path: Any) -> None:
    """A refused client gets 403 for a bad token and a wrong method alike:
    it learns nothing about the URL."""
    app = access_app(tmp_path, [], job_access='loopback')
    for method, path in (('GET', '/cronjobs/garbage'),
                         ('HEAD', path_of(app, 'job'))):
        request = Request.blank(path, method=method, remote_addr='10.0.0.5')
        assert request.get_response(app).status_int == 403


def test_job_access_leaves_the_status_page_alone(tmp_path: Any) -> None:
    """job_access does not decide who sees the status page, and
    status_access does not decide who calls the jobs."""
    app = access_app(tmp_path, [], job_access=lambda request: False,
                     status_access=lambda request: True)
    page = Request.blank('/cronjobs/status.json', remote_addr='10.0.0.5')
    assert page.get_response(app).status_int == 200
    assert call_from(app, '127.0.0.1') == 403
