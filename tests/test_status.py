"""The status page, status.json, job history and the operator's controls."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webob import Request, Response

from onecron import CronApp
from onecron.running.caller import Caller, CallRequest
from onecron.schedule.clock import utcnow
from onecron.stores.base import (
    Outcome,
    Run,
    SchedulerInfo,
    Store,
    StoreError,
    Trigger,
)
from onecron.stores.sqlite import SqliteStore
from onecron.web.access import Access, LoginThrottle
from onecron.web.status.page import StatusPage
from onecron.web.status.render import CSS_HASH

from .conftest import LiveServer, wait_for

NOW = datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)
LOCAL = '127.0.0.1'


def make_app(store: str | Path | Store | None, **options: Any) -> CronApp:
    """A CronApp with a daily, a weekday and a manual-only job."""
    options.setdefault('clock', lambda: NOW)
    options.setdefault('enabled', False)
    app = CronApp(secret='status secret', store=store, **options)

    @app.cronjob(hour=8, minute=30, timezone='Europe/Zurich',
                 name='morning')
    def morning(request: Request) -> str:
        return 'good morning'

    @app.cronjob('*/15 * * * MON-FRI', name='feed')
    def feed(request: Request) -> None:
        pass

    @app.cronjob(name='manual')
    def manual(request: Request) -> None:
        pass

    return app


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / 'runs.db')


@pytest.fixture
def app(store: Store) -> CronApp:
    return make_app(store)


class RecordingCaller(Caller):
    """A caller that keeps the calls it is given instead of making them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[CallRequest] = []

    def call_all(self, requests: Iterable[CallRequest]) -> None:
        self.calls.extend(requests)


class Client:
    """Requests to a status page in process, keeping the CSRF cookie."""

    def __init__(self, app: CronApp, remote_addr: str = LOCAL) -> None:
        self.app = app  # through CronApp's own routing
        self.remote_addr = remote_addr
        self.cookie = ''

    def get(self, path: str, **kw: Any) -> Response:
        response = Request.blank(path, remote_addr=self.remote_addr,
                                 headers=self._headers(kw),
                                 **kw).get_response(self.app)
        match = re.search(r'onecron_csrf=([^;]+)',
                          response.headers.get('Set-Cookie', ''))
        if match:
            self.cookie = match[1]
        return response

    def token(self) -> str:
        match = re.search(r'name="csrf" value="([0-9a-f]+)"',
                          self.get('/cronjobs/').text)
        assert match, 'no form on the page'
        return match[1]

    def post(self, action: str, csrf: str | None = None,
             **fields: str) -> Response:
        if csrf is None:
            csrf = self.token()
        return Request.blank(f'/cronjobs/control/{action}', method='POST',
                             remote_addr=self.remote_addr,
                             headers=self._headers({}),
                             POST={**fields, 'csrf': csrf}
                             ).get_response(self.app)

    def _headers(self, kw: dict[str, Any]) -> dict[str, str]:
        headers = dict(kw.pop('headers', {}))
        if self.cookie:
            headers['Cookie'] = f'onecron_csrf={self.cookie}'
        return headers


@pytest.fixture
def client(app: CronApp) -> Client:
    return Client(app)


def record(store: Store, job: str, minutes_ago: float, outcome: Outcome,
           *, seconds: float = 1.5, application_id: str = 'default',
           **fields: Any) -> int:
    started = NOW - timedelta(minutes=minutes_ago)
    return store.record_run(application_id, job, trigger=Trigger.SCHEDULER,
                            started=started,
                            ended=started + timedelta(seconds=seconds),
                            outcome=outcome, **fields)


def row(html: str, job: str) -> str:
    """The rows of ``job`` on the overview: its data and its controls."""
    match = re.search(rf'<tbody data-job="{re.escape(job)}">(.*?)</tbody>',
                      html, re.S)
    assert match, f'no row for {job}'
    return match[1]


def cell(html: str, job: str, css_class: str) -> str:
    """The text of one cell of ``job``'s row, tags left out."""
    match = re.search(rf'<td class="{css_class}"[^>]*>(.*?)</td>',
                      row(html, job), re.S)
    assert match, f'no {css_class} cell for {job}'
    return re.sub(r'<[^>]+>', '', match[1])


# --- routing ------------------------------------------------------------


@pytest.mark.parametrize('path, handled', [
    ('', True), ('/', True), ('/status.json', True), ('/jobs/x', True),
    ('/jobs/a.b', True), ('/control/hold', True), ('/Zm9v.abc', False),
    ('/status.css', False), ('/jobs', False), ('/controls', False),
])
def test_handles(path: str, handled: bool) -> None:
    """The page claims its own paths and leaves job tokens alone."""
    assert StatusPage.handles(path) is handled


def test_prefix_redirects_to_the_page(client: Client) -> None:
    """The bare prefix redirects to the page."""
    response = client.get('/cronjobs')
    assert response.status_int == 301
    assert response.location == 'http://localhost/cronjobs/'


def test_unknown_page_is_404(client: Client) -> None:
    """A path under /jobs/ or /control/ that names nothing is a 404."""
    assert client.get('/cronjobs/jobs/nope').status_int == 404
    assert client.post('nope', application_id='default').status_int == 404


def test_other_paths_are_404(client: Client) -> None:
    """A path the page does not claim is a 404 if it reaches the page."""
    assert client.get('/cronjobs/status.css').status_int == 404


def test_repr_names_prefix_and_access(client: Client) -> None:
    """The repr names the prefix and who may use the page."""
    assert repr(StatusPage(client.app)) == \
        "<StatusPage '/cronjobs' <Access loopback proxies=0>>"


def test_wrong_methods_get_405(client: Client) -> None:
    """Pages answer GET, controls POST; the rest get 405 and Allow."""
    response = client.get('/cronjobs/', method='POST')
    assert response.status_int == 405
    assert response.headers['Allow'] == 'GET, HEAD'
    response = client.get('/cronjobs/control/hold')
    assert response.status_int == 405 and response.headers['Allow'] == 'POST'


def test_page_is_not_cached_nor_framed(client: Client) -> None:
    """Pages, errors included, are never cached, cannot be framed, and
    allow exactly their own style sheet."""
    for path in ('/cronjobs/', '/cronjobs/jobs/nope'):
        headers = client.get(path).headers
        assert headers['Cache-Control'] == 'no-store'
        assert headers['X-Frame-Options'] == 'DENY'
        assert "frame-ancestors 'none'" in headers['Content-Security-Policy']
        assert f'style-src {CSS_HASH};' in headers[
            'Content-Security-Policy']


def test_css_hash_matches_the_style_sheet(client: Client) -> None:
    """The CSP hash is the hash of the inline style element's text."""
    import base64
    import hashlib
    css = re.search(r'<style>(.*?)</style>', client.get('/cronjobs/').text,
                    re.S)
    assert css
    digest = base64.b64encode(hashlib.sha256(css[1].encode()).digest())
    assert CSS_HASH == f"'sha256-{digest.decode()}'"


# --- access -------------------------------------------------------------


@pytest.mark.parametrize('path', ['/cronjobs/', '/cronjobs/status.json',
                                  '/cronjobs/jobs/morning', '/cronjobs'])
def test_remote_client_gets_403(app: CronApp, path: str) -> None:
    """The page, the JSON and the history refuse non-loopback clients."""
    response = Client(app, '192.0.2.7').get(path)
    assert response.status_int == 403
    assert 'onecron_csrf' not in response.headers.get('Set-Cookie', '')


def test_remote_control_gets_403_and_changes_nothing(
        app: CronApp, store: Store) -> None:
    """A control from a non-allowed client is refused before anything."""
    response = Client(app, '192.0.2.7').post(
        'disable', csrf='x', job='morning', application_id='default')
    assert response.status_int == 403
    assert store.job_settings('default') == {}


def test_basic_auth_asks_for_a_login(store: Store) -> None:
    """With status_user set, a client without credentials gets 401 and a
    Basic challenge."""
    from onecron.web.access import hash_password
    app = make_app(store, status_user='ops',
                   status_password_hash=hash_password('pw'))
    response = Client(app).get('/cronjobs/')
    assert response.status_int == 401
    assert response.headers['WWW-Authenticate'].startswith(
        'Basic realm="onecron"')
    response = Client(app).get('/cronjobs/', headers={
        'Authorization': 'Basic b3BzOnB3'})  # ops:pw
    assert response.status_int == 200


def test_status_access_callable(store: Store) -> None:
    """status_access=callable replaces the loopback rule."""
    app = make_app(store, status_access=lambda request: request.headers.get(
        'X-Role') == 'admin')
    remote = Client(app, '192.0.2.7')
    assert remote.get('/cronjobs/').status_int == 403
    assert remote.get('/cronjobs/', headers={
        'X-Role': 'admin'}).status_int == 200


def test_errors_are_pages_for_browsers_and_text_for_scripts(
        client: Client) -> None:
    """An error is an HTML page for a browser and plain text for curl."""
    response = client.get('/cronjobs/jobs/<nope>', headers={
        'Accept': 'text/html,application/xhtml+xml,*/*;q=0.8'})
    assert response.status_int == 404
    assert response.content_type == 'text/html'
    assert "There is no job named &#x27;&lt;nope&gt;&#x27;" in response.text
    assert '<nope>' not in response.text
    response = client.get('/cronjobs/jobs/<nope>', headers={'Accept': '*/*'})
    assert response.content_type == 'text/plain'
    assert response.text == ("404 Not Found\n\n"
                             "There is no job named '<nope>'.\n")


# --- the overview -------------------------------------------------------


def test_overview_lists_jobs_with_their_schedules(client: Client) -> None:
    """Each job shows its schedule in words and as written; a manual-only
    job says so; each links to its history."""
    page = client.get('/cronjobs/')
    assert page.status_int == 200 and page.content_type == 'text/html'
    morning = row(page.text, 'morning')
    assert 'at 08:30 every day, Europe/Zurich' in morning
    assert '<code>30 8 * * *</code>' in morning
    assert 'href="/cronjobs/jobs/morning?application_id=default"' in morning
    assert 'manual only' in row(page.text, 'manual')
    assert '<code>*/15 * * * MON-FRI</code>' in row(page.text, 'feed')


def test_overview_shows_next_run_with_jitter(app: CronApp,
                                             client: Client) -> None:
    """The next run is the app's, jitter included, on the wall clock of
    the job's zone (UTC on hover)."""
    next_run = app.next_run('morning', 'default')
    assert next_run is not None and next_run.second > 0  # the jitter
    assert f'<time datetime="{next_run.isoformat()}" ' \
        f'title="2024-05-01 06:30:{next_run.second:02} UTC">' \
        f'2024-05-01 08:30:{next_run.second:02}&nbsp;CEST</time> ' \
        f'<small>in 30 min</small>' in row(client.get('/cronjobs/').text,
                                           'morning')


def test_overview_shows_times_in_the_jobs_zone(store: Store,
                                               client: Client) -> None:
    """A job at 08:30 in Zurich shows its next and last runs at 08:30
    Zurich time with the zone's abbreviation, not at 06:30 UTC; a job
    in UTC shows UTC; the scheduler's times are in UTC."""
    store.heartbeat(SchedulerInfo('default', 'web-1', 42, NOW, NOW))
    record(store, 'morning', 24 * 60 - 30, Outcome.OK)  # 08:30 Zurich
    page = client.get('/cronjobs/').text
    morning = cell(page, 'morning', 'next')
    assert re.fullmatch(r'2024-05-01 08:30:\d\d&nbsp;CEST in 30 min',
                        morning), morning
    assert '2024-04-30 08:30:00&nbsp;CEST</time>' in row(page, 'morning')
    assert 'title="2024-04-30 06:30:00 UTC"' in row(page, 'morning')
    assert '06:30' not in re.sub(r'<[^>]+>', '', row(page, 'morning'))
    assert re.fullmatch(r'2024-05-01 06:00:\d\d&nbsp;UTC in \d+ s',
                        cell(page, 'feed', 'next'))  # 06:00 and jitter
    assert 'alive since <time datetime="2024-05-01T06:00:00+00:00" ' \
        'title="2024-05-01 06:00:00 UTC">2024-05-01 06:00:00&nbsp;UTC' \
        '</time>' in page
    assert "times in each job's zone" in page \
        and 'all times in UTC' not in page


def test_overview_shows_last_run_and_state(store: Store,
                                           client: Client) -> None:
    """The last run's outcome, time and duration; RUNNING while a run is
    unfinished, IDLE otherwise."""
    record(store, 'morning', 90, Outcome.OK)
    record(store, 'morning', 30, Outcome.FAILED, seconds=75)
    store.start_run('default', 'feed', trigger=Trigger.SOON,
                    started=NOW - timedelta(seconds=20))
    page = client.get('/cronjobs/').text
    morning = row(page, 'morning')
    assert '<span class="badge bad">failed</span>' in morning
    assert '30 min ago' in morning and '1 min 15 s' in morning
    assert '<span class="badge off">IDLE</span>' in morning
    feed = row(page, 'feed')
    assert '<span class="badge run">RUNNING</span>' in feed
    assert '<span class="badge run">running</span>' in feed
    assert 'never' in row(page, 'manual')


def test_crashed_run_does_not_keep_a_job_running(store: Store,
                                                 client: Client) -> None:
    """An unfinished run older than the job's last run (a crash) does not
    make the job RUNNING."""
    store.start_run('default', 'feed', trigger=Trigger.SCHEDULER,
                    started=NOW - timedelta(hours=2))
    record(store, 'feed', 10, Outcome.OK)
    assert 'IDLE' in row(client.get('/cronjobs/').text, 'feed')


def test_overview_marks_overrides_and_disabled_jobs(store: Store,
                                                    client: Client) -> None:
    """An overridden schedule is shown and marked, a disabled job too,
    with the buttons that undo them."""
    store.set_schedule('default', 'morning', '0 7 * * *')
    store.set_enabled('default', 'feed', False)
    page = client.get('/cronjobs/').text
    morning = row(page, 'morning')
    assert '<code>0 7 * * *</code>' in morning and 'overridden' in morning
    assert 'at 07:00 every day, Europe/Zurich' in morning
    assert 'Reset schedule' in morning
    feed = row(page, 'feed')
    assert 'disabled' in feed and '>Enable</button>' in feed
    assert cell(page, 'feed', 'next') == 'disabled'
    assert '>Disable</button>' in row(page, 'manual')
    assert 'Reset schedule' not in feed


def test_overview_shows_the_scheduler(store: Store, client: Client) -> None:
    """The scheduler's host, pid, start and heartbeat; or that none was
    seen."""
    assert 'no scheduler seen' in client.get('/cronjobs/').text
    store.heartbeat(SchedulerInfo('default', 'web-1', 4242,
                                  NOW - timedelta(hours=3),
                                  NOW - timedelta(seconds=4)))
    page = client.get('/cronjobs/').text
    assert 'scheduler <strong>web-1</strong> pid <strong>4242</strong>' \
        in page
    assert '3 h ago' in page and '4 s ago' in page


def test_overview_has_a_section_per_application_id(
        store: Store, client: Client) -> None:
    """Every application id the store knows gets its own section."""
    store.heartbeat(SchedulerInfo('tenant-b', 'web-2', 7, NOW, NOW))
    record(store, 'feed', 5, Outcome.OK, application_id='tenant-b')
    page = client.get('/cronjobs/').text
    assert '<section id="app-default">' in page
    tenant = page[page.index('<section id="app-tenant-b">'):]
    assert 'web-2' in tenant and '<span class="badge ok">ok</span>' in tenant


def test_overview_offers_hold_and_both_releases(store: Store,
                                                client: Client) -> None:
    """An active id offers Hold; a held one shows since when and offers
    both ways to release."""
    page = client.get('/cronjobs/').text
    assert 'Hold all jobs' in page and 'Release' not in page
    store.set_hold('default', True, now=NOW - timedelta(minutes=5))
    page = client.get('/cronjobs/').text
    assert 'HELD' in page and '5 min ago' in page
    assert 'Release and run what was missed' in page
    assert 'Release and just reschedule' in page
    assert 'Hold all jobs' not in page


def test_overview_shows_the_queue(app: CronApp, client: Client) -> None:
    """The page shows how many calls wait in the application's pool."""
    assert 'pool: <strong>0</strong> waiting, <strong>0</strong> running' \
        in client.get('/cronjobs/').text


def test_overview_escapes_everything(store: Store) -> None:
    """Job names and stored texts are escaped wherever they appear."""
    app = make_app(store)

    @app.cronjob(name='<b>"bold"</b>')
    def bold(request: Request) -> None:
        pass

    page = Client(app).get('/cronjobs/').text
    assert '<b>' not in page
    assert '&lt;b&gt;&quot;bold&quot;&lt;/b&gt;' in page
    assert 'jobs/%3Cb%3E%22bold%22%3C%2Fb%3E?application_id=default' in page


# --- status.json --------------------------------------------------------


def test_status_json(app: CronApp, store: Store, client: Client) -> None:
    """status.json carries the page's data with ISO 8601 times."""
    run_id = record(store, 'morning', 30, Outcome.OK, seconds=2)
    store.set_enabled('default', 'feed', False)
    store.heartbeat(SchedulerInfo('default', 'web-1', 42,
                                  NOW - timedelta(hours=1), NOW))
    response = client.get('/cronjobs/status.json')
    assert response.content_type == 'application/json'
    data = response.json
    assert list(data) == ['applications']
    [application] = data['applications']
    assert application['id'] == 'default'
    assert application['scheduler'] == {
        'host': 'web-1', 'pid': 42, 'alive_since': '2024-05-01T05:00:00+00:00',
        'heartbeat': '2024-05-01T06:00:00+00:00'}
    assert application['held'] is False and application['queued'] == 0
    jobs = {job['name']: job for job in application['jobs']}
    assert list(jobs) == ['feed', 'manual', 'morning']
    next_run = app.next_run('morning', 'default')
    assert next_run is not None
    assert jobs['morning'] == {
        'name': 'morning', 'schedule': '30 8 * * *',
        'description': 'at 08:30 every day, Europe/Zurich',
        'timezone': 'Europe/Zurich', 'overridden': False, 'manual': False,
        'enabled': True, 'state': 'IDLE', 'next_run': next_run.isoformat(),
        'last_run': {'id': run_id, 'started': '2024-05-01T05:30:00+00:00',
                     'ended': '2024-05-01T05:30:02+00:00', 'duration': 2.0,
                     'outcome': 'ok', 'trigger': 'scheduler'},
        # metrics: no nominal time, no lateness; the stats' last success
        'lateness': None, 'last_success': '2024-05-01T05:30:02+00:00'}
    assert jobs['feed']['enabled'] is False
    assert jobs['feed']['next_run'] is None
    assert jobs['manual']['schedule'] is None
    assert jobs['manual']['next_run'] is None
    assert jobs['manual']['last_run'] is None


def test_disabled_job_has_no_next_run(
        tmp_path: Path, live_server: Callable[..., LiveServer]) -> None:
    """A running scheduler keeps a disabled job's next fire queued (to
    skip it); the page shows "disabled" instead of a next run, and
    status.json a null next_run; held jobs show "held"."""
    app = make_app(tmp_path / 'runs.db', clock=utcnow, enabled=True,
                   lock_dir=str(tmp_path / 'locks'))
    assert app.store is not None
    app.store.set_enabled('default', 'morning', False)
    server = live_server(app)
    app.start(base_url=server.url)
    try:
        scheduler = app._schedulers['default']
        wait_for(lambda: scheduler.next_run('morning') is not None)
        client = Client(app)
        page = client.get('/cronjobs/').text
        assert cell(page, 'morning', 'next') == 'disabled'
        assert cell(page, 'feed', 'next') != 'disabled'
        [application] = client.get(
            '/cronjobs/status.json').json['applications']
        jobs = {job['name']: job for job in application['jobs']}
        assert jobs['morning']['enabled'] is False
        assert jobs['morning']['next_run'] is None
        assert jobs['feed']['next_run'] is not None
        app.hold()
        wait_for(lambda: app.next_run('feed') is None)
        page = client.get('/cronjobs/').text
        assert cell(page, 'feed', 'next') == 'held'
        assert cell(page, 'morning', 'next') == 'disabled'
        assert cell(page, 'manual', 'next') == '–'
    finally:
        app.stop()


def test_status_json_while_held_and_running(store: Store,
                                            client: Client) -> None:
    """A held id says so and since when; a running job is RUNNING with a
    last run without outcome."""
    store.set_hold('default', True, now=NOW)
    store.start_run('default', 'feed', trigger=Trigger.SOON, started=NOW)
    [application] = client.get('/cronjobs/status.json').json['applications']
    assert application['held'] is True
    assert application['held_since'] == NOW.isoformat()
    feed = next(job for job in application['jobs'] if job['name'] == 'feed')
    assert feed['state'] == 'RUNNING' and feed['next_run'] is None
    assert feed['last_run']['outcome'] is None
    assert feed['last_run']['duration'] is None


# --- history ------------------------------------------------------------


def test_history_shows_each_run_in_full(store: Store,
                                        client: Client) -> None:
    """A run's start, trigger, scheduled time, duration, outcome, HTTP
    status, output and error, escaped."""
    run_id = record(store, 'morning', 10, Outcome.FAILED, seconds=3,
                    scheduled=NOW - timedelta(minutes=10, seconds=20),
                    http_status=500, output='<script>alert(1)</script>',
                    error='Traceback ...\nValueError: a < b')
    page = client.get('/cronjobs/jobs/morning?application_id=default')
    assert page.status_int == 200
    html = page.text
    assert f'<tr id="run-{run_id}">' in html
    assert '<td data-label="Trigger">scheduler</td>' in html
    # in the job's zone, Zurich's: 05:49:40 UTC is 07:49:40 CEST
    assert 'title="2024-05-01 05:49:40 UTC">' \
        '2024-05-01 07:49:40&nbsp;CEST</time>' in html  # scheduled
    assert 'title="2024-05-01 05:50:00 UTC">' \
        '2024-05-01 07:50:00&nbsp;CEST</time>' in html  # started
    assert '3.00 s' in html and '<td data-label="HTTP">500</td>' in html
    assert '<pre>&lt;script&gt;alert(1)&lt;/script&gt;</pre>' in html
    assert 'ValueError: a &lt; b</pre>' in html
    assert '<script>' not in html


def test_history_shows_a_failed_runs_traceback_once(store: Store) -> None:
    """A job that raises leaves its traceback in the run's error and, as
    the failure is logged, in its output: the history shows it once,
    under Error, and keeps what else the job logged."""
    app = make_app(store, base_url='http://localhost')

    @app.cronjob(name='broken')
    def broken(request: Request) -> None:
        logging.getLogger('feeds').warning('fetching the feed')
        raise ValueError('the feed is gone')

    assert Request.blank(app.url_for('broken')).get_response(
        app).status_int == 500
    [run] = store.runs('default', 'broken')
    assert run.error is not None and run.error.startswith('Traceback')
    assert run.error.strip() in run.output  # what the page must not repeat
    html = Client(app).get('/cronjobs/jobs/broken').text
    assert html.count('Traceback (most recent call last)') == 1
    assert html.count('ValueError: the feed is gone') == 1
    assert 'WARNING feeds: fetching the feed' in html
    assert 'job broken (default) failed: ValueError raised' in html
    error = html.index('<div class="bad">Error</div>')
    assert html.index('Traceback (most recent call last)') > error


def test_history_pages_with_before_id(store: Store, client: Client) -> None:
    """History shows the newest 50 runs and links to older ones."""
    ids = [record(store, 'feed', 200 - minute, Outcome.OK)
           for minute in range(60)]
    record(store, 'morning', 1, Outcome.OK)  # another job's run
    html = client.get('/cronjobs/jobs/feed?application_id=default').text
    shown = [int(run) for run in re.findall(r'<tr id="run-(\d+)">', html)]
    assert shown == ids[:-51:-1]
    older = f'/cronjobs/jobs/feed?application_id=default&amp;before_id=' \
        f'{ids[10]}'
    assert f'href="{older}"' in html and 'newest runs' not in html
    html = client.get(older.replace('&amp;', '&')).text
    shown = [int(run) for run in re.findall(r'<tr id="run-(\d+)">', html)]
    assert shown == ids[9::-1]
    assert 'older runs' not in html and 'newest runs' in html


def test_history_defaults_to_the_first_application_id(
        store: Store, client: Client) -> None:
    """Without application_id the history is the first id's."""
    record(store, 'feed', 1, Outcome.OK, output='mine')
    assert 'mine' in client.get('/cronjobs/jobs/feed').text


@pytest.mark.parametrize('query, status', [
    ('application_id=nobody', 404), ('before_id=x', 400),
    ('before_id=-1', 400)])
def test_history_bad_queries(client: Client, query: str,
                             status: int) -> None:
    """An unknown application id is 404, a bad before_id 400."""
    assert client.get(f'/cronjobs/jobs/feed?{query}').status_int == status


@pytest.mark.parametrize('before_id', [
    '9' * 5000, '9' * 20, str(2 ** 63), '0', '-1', '+1', '%201', '1_0',
    '', 'x', '%C2%B2', '%D9%A1%D9%A2', '1.0', '0x10',
], ids=['5000-digits', '20-digits', '2**63', 'zero', 'negative', 'plus',
        'space', 'underscore', 'empty', 'letter', 'superscript-two',
        'arabic-digits', 'decimal', 'hex'])
def test_history_before_id_out_of_range_is_400(client: Client,
                                               before_id: str) -> None:
    """A before_id that is not a run id from 1 to 2**63-1 (ASCII digits)
    gets 400 with a short plain message, never an exception."""
    response = client.get(f'/cronjobs/jobs/feed?before_id={before_id}',
                          headers={'Accept': 'text/plain'})
    assert response.status_int == 400
    assert response.content_type == 'text/plain'
    assert response.text.startswith(
        '400 Bad Request\n\nbefore_id must be a run id (a whole number '
        'from 1 to 9223372036854775807), got ')
    assert len(response.text) < 300


def test_history_before_id_at_the_top_of_the_range(store: Store,
                                                   client: Client) -> None:
    """The largest run id SQL stores is a valid before_id."""
    run_id = record(store, 'feed', 1, Outcome.OK)
    page = client.get(f'/cronjobs/jobs/feed?before_id={2 ** 63 - 1}')
    assert page.status_int == 200 and f'id="run-{run_id}"' in page.text


def test_history_without_runs(client: Client) -> None:
    """A job that never ran says so."""
    assert 'No runs recorded.' in client.get('/cronjobs/jobs/feed').text


# --- bad bytes, odd text -------------------------------------------------


@pytest.mark.parametrize('path, method', [
    ('/cronjobs/jobs/\xff', 'GET'), ('/cronjobs/jobs/fe\xc3', 'GET'),
    ('/cronjobs/jobs/\xed\xb3\xbf', 'GET'),  # an encoded surrogate
    ('/cronjobs/control/\xff', 'POST'), ('/cronjobs/jobs/\u0100', 'GET'),
], ids=['ff', 'cut-short', 'surrogate', 'control', 'not-latin-1'])
def test_path_that_is_not_utf8_is_404(app: CronApp, path: str,
                                      method: str) -> None:
    """A path under the page that is not UTF-8 names nothing: 404, for a
    client the page answers and for one it refuses alike (the answer
    tells neither anything)."""
    for remote_addr, status in ((LOCAL, 404), ('192.0.2.7', 404)):
        request = Request.blank('/', method=method, remote_addr=remote_addr)
        request.environ['PATH_INFO'] = path
        response = request.get_response(app)
        assert response.status_int == status
        assert response.headers['Cache-Control'] == 'no-store'


def test_script_name_that_is_not_utf8_is_404(app: CronApp) -> None:
    """A mount point (SCRIPT_NAME) that is not UTF-8 is a 404 too."""
    request = Request.blank('/cronjobs/', remote_addr=LOCAL)
    request.environ['SCRIPT_NAME'] = '/\xff'
    assert request.get_response(app).status_int == 404


@pytest.mark.parametrize('url', [
    '/cronjobs/?done=%ff', '/cronjobs/?%ff=1', '/cronjobs/?done=\xff',
    '/cronjobs/jobs/feed?application_id=%ff',
    '/cronjobs/jobs/feed?before_id=1%ff',
    '/cronjobs/jobs/feed?done=enable&job=%c3',
])
def test_query_that_is_not_utf8_is_400(client: Client, url: str) -> None:
    """A query string that is not UTF-8 gets 400 saying so."""
    path, _, query = url.partition('?')
    request = Request.blank(path, remote_addr=LOCAL)
    request.environ['QUERY_STRING'] = query
    response = request.get_response(client.app)
    assert response.status_int == 400
    assert 'The query string is not UTF-8.' in response.text


def test_bad_bytes_over_http(app: CronApp,
                             live_server: Callable[..., LiveServer]) -> None:
    """On a real server a path or query string that is not UTF-8 gets its
    answer (404, 400), not a server error."""
    server = live_server(app)
    for path, status in (('/cronjobs/jobs/%FF', 404),
                         ('/cronjobs/jobs/feed?before_id=%FF', 400),
                         ('/cronjobs/jobs/feed?before_id=' + '9' * 5000,
                          400)):
        connection = http.client.HTTPConnection('127.0.0.1', server.port,
                                                timeout=10)
        try:
            connection.request('GET', path)
            answer = connection.getresponse()
            assert (answer.status, path) == (status, path)
            answer.read()
        finally:
            connection.close()


class SurrogateStore(SqliteStore):
    """A store that hands back texts with lone surrogates, as a custom
    store reading undecodable bytes with surrogateescape would."""

    def runs(self, *args: Any, **kwargs: Any) -> list[Run]:
        return [dataclasses.replace(run, output=f'{run.output}\udcff',
                                    error='bad \udc80 byte')
                for run in super().runs(*args, **kwargs)]


def test_lone_surrogates_are_shown_escaped(tmp_path: Path) -> None:
    """A run's output holding a lone surrogate shows as its escape in the
    history: never a UnicodeEncodeError. (A job name holding one is
    refused when the job registers.)"""
    store = SurrogateStore(tmp_path / 'runs.db')
    record(store, 'feed', 1, Outcome.FAILED, output='printed')
    history = Client(make_app(store)).get('/cronjobs/jobs/feed')
    assert history.status_int == 200
    assert '<pre>printed\\udcff</pre>' in history.text
    assert 'bad \\udc80 byte' in history.text


# --- fuzzing the page -----------------------------------------------------


def _cheap_hash(password: str) -> str:
    """A valid scrypt hash at the lowest cost accepted."""
    salt = b'fuzz salt'
    digest = hashlib.scrypt(password.encode(), salt=salt, n=1024, r=1, p=1)
    return (f'scrypt$1024$1$1${base64.b64encode(salt).decode()}$'
            f'{base64.b64encode(digest).decode()}')


@pytest.fixture(scope='module')
def fuzzed(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[CronApp, StatusPage]]:
    """A page with a store, basic auth and a trusted proxy on loopback;
    its throttle never locks out, so examples get past the login."""
    path = tmp_path_factory.mktemp('status-fuzz')
    store = SqliteStore(path / 'runs.db')
    record(store, 'feed', 1, Outcome.OK, output='out')
    app = make_app(store)
    page = StatusPage(app, access=Access(
        user='ops', password_hash=_cheap_hash('pw'),
        trusted_proxies=['127.0.0.1', '::1'], secret='status secret',
        throttle=LoginThrottle(limit=10 ** 6)))
    yield app, page
    app.stop()


RAW = st.binary(max_size=24).map(lambda data: data.decode('latin-1'))
#: paths the page claims (CronApp hands it these), raw bytes in them
PAGE_PATHS = st.one_of(
    st.sampled_from(['/cronjobs', '/cronjobs/', '/cronjobs/status.json',
                     '/cronjobs/jobs/feed', '/cronjobs/control/hold',
                     '/cronjobs/control/disable']),
    st.builds(lambda page, tail: f'/cronjobs/{page}/{tail}',
              st.sampled_from(['jobs', 'control']), RAW))


def _query_string(pairs: list[tuple[str, str]]) -> str:
    """Name=value pairs, the values quoted unless already escapes."""
    return '&'.join(
        f'{name}={value if value.startswith("%") else quote(value)}'
        for name, value in pairs)


QUERY = st.one_of(
    st.just(''), RAW,
    st.lists(st.tuples(
        st.sampled_from(['before_id', 'application_id', 'done', 'job',
                         'limit', 'x']),
        st.one_of(st.text(max_size=12), st.integers().map(str),
                  st.sampled_from(['9' * 5000, '%ff', '%ed%b3%bf']))),
        max_size=3).map(_query_string))
FORWARDING = st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                   blacklist_characters='\x7f'),
                     max_size=40)
PAGE_HEADERS = st.dictionaries(
    st.sampled_from(['X-Forwarded-For', 'Forwarded', 'X-Real-IP',
                     'Authorization', 'Cookie', 'Accept', 'Content-Type']),
    st.one_of(FORWARDING, st.sampled_from([
        '127.0.0.1', 'for="[::1]:80"', 'for=unknown', 'Basic b3BzOnB3',
        'Basic \xff', 'onecron_csrf=' + 'a' * 43, 'text/html',
        'application/x-www-form-urlencoded'])),
    max_size=4)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(path=PAGE_PATHS, query=QUERY, headers=PAGE_HEADERS,
       logged_in=st.booleans(),
       method=st.sampled_from(['GET', 'GET', 'POST', 'HEAD', 'PUT']),
       body=st.binary(max_size=40),
       remote_addr=st.sampled_from(['127.0.0.1', '127.0.0.1', '::1',
                                    '192.0.2.7', '']))
def test_any_request_to_the_page_gets_an_answer(
        fuzzed: tuple[CronApp, StatusPage], path: str, query: str,
        headers: dict[str, str], logged_in: bool, method: str, body: bytes,
        remote_addr: str) -> None:
    """Raw bytes in the path and query string, odd forwarding and
    Authorization headers, any body: the page answers with a status it
    means, in UTF-8, and never raises; no control passes without its
    CSRF token."""
    app, page = fuzzed
    assert StatusPage.handles(path[len('/cronjobs'):])
    if logged_in:
        headers = {**headers, 'Authorization': 'Basic b3BzOnB3'}  # ops:pw
    request = Request.blank('/', method=method, headers=headers,
                            remote_addr=remote_addr, body=body)
    request.environ['PATH_INFO'] = path
    request.environ['QUERY_STRING'] = query
    response = request.get_response(page)
    assert response.status_int in (200, 301, 303, 400, 401, 403, 404, 405,
                                   409), response.status
    response.body.decode('utf-8')
    store = app.store
    assert store is not None  # and no forged control changed it
    assert store.job_settings('default') == {}
    assert not store.hold('default').held


# --- controls -----------------------------------------------------------


def test_enable_and_disable(store: Store, client: Client) -> None:
    """Disable and enable are stored and answer 303 back to the page,
    which says what happened."""
    response = client.post('disable', job='feed', application_id='default')
    assert response.status_int == 303
    assert response.location == ('http://localhost/cronjobs/?done=disable&'
                                 'job=feed&application_id=default')
    assert store.job_settings('default')['feed'].enabled is False
    page = client.get(response.location).text
    assert 'feed is disabled' in page
    client.post('enable', job='feed', application_id='default')
    assert store.job_settings('default')['feed'].enabled is True


def test_override_and_reset(app: CronApp, store: Store,
                            client: Client) -> None:
    """An override is stored with its zone and becomes the schedule in
    force; reset goes back to the code's."""
    response = client.post('override', job='morning',
                           application_id='default', schedule=' 0 6 * * * ',
                           timezone='America/New_York')
    assert response.status_int == 303
    assert str(app.schedule_of('morning', 'default')) == '0 6 * * *'
    assert store.job_settings('default')['morning'].timezone == \
        'America/New_York'
    response = client.post('override', job='morning',
                           application_id='default', schedule='@hourly')
    assert store.job_settings('default')['morning'].timezone is None
    client.post('reset', job='morning', application_id='default')
    assert store.job_settings('default')['morning'].schedule is None
    assert str(app.schedule_of('morning', 'default')) == '30 8 * * *'


@pytest.mark.parametrize('schedule, timezone, message', [
    ('0 25 * * *', '', 'hour'),
    ('* * 30 2 *', '', 'never'),
    ('0 6 * * *', 'Mars/Olympus', "unknown time zone 'Mars/Olympus'"),
    ('   ', '', 'give a schedule'),
], ids=['out-of-range', 'never-fires', 'bad-zone', 'empty'])
def test_bad_override_is_400_and_keeps_the_schedule(
        app: CronApp, store: Store, client: Client, schedule: str,
        timezone: str, message: str) -> None:
    """A schedule that does not parse gets 400 with the InvalidSchedule
    message, and the schedule in force stays."""
    client.post('override', job='morning', application_id='default',
                schedule='0 7 * * *')
    response = client.post('override', job='morning',
                           application_id='default', schedule=schedule,
                           timezone=timezone)
    assert response.status_int == 400
    assert message in response.text
    assert store.job_settings('default')['morning'].schedule == '0 7 * * *'


def test_hold_and_release(store: Store, client: Client) -> None:
    """Hold and both kinds of release change the stored hold state."""
    assert client.post('hold', application_id='default').status_int == 303
    assert store.hold('default').held
    assert client.post('release', application_id='default',
                       catch_up='0').status_int == 303
    assert not store.hold('default').held
    client.post('hold', application_id='default')
    client.post('release', application_id='default', catch_up='1')
    assert not store.hold('default').held


def test_release_with_catch_up_runs_what_was_missed(
        store: Store, client: Client) -> None:
    """Releasing with catch-up asks for the jobs that missed a run."""
    caller = RecordingCaller()
    app = make_app(store, base_url='http://127.0.0.1:9', caller=caller)
    client = Client(app)
    client.post('hold', application_id='default')
    store.record_run('default', 'feed', trigger=Trigger.SCHEDULER,
                     started=NOW + timedelta(seconds=1),
                     ended=NOW + timedelta(seconds=1),
                     outcome=Outcome.MISSED)
    client.post('release', application_id='default', catch_up='1')
    assert [call.url == app.url_for('feed') for call in caller.calls] == [
        True]


def test_run_now_calls_the_job_url(store: Store) -> None:
    """Run now hands one call of the job's URL to the caller, as a
    manual run (as ``onecron run``'s); run_soon() from code stays
    ``soon``."""
    caller = RecordingCaller()
    app = make_app(store, base_url='http://127.0.0.1:9', caller=caller)
    response = Client(app).post('run-now', job='manual',
                                application_id='default')
    assert response.status_int == 303
    [call] = caller.calls
    assert call.url == app.url_for('manual')
    assert 'X-Onecron-Trigger: manual' in call.headers
    app.run_soon('manual')
    assert 'X-Onecron-Trigger: soon' in caller.calls[1].headers


@pytest.mark.parametrize('action', ['run-now', 'enable', 'disable',
                                    'override', 'reset'])
def test_control_of_unknown_job_is_404(client: Client, action: str) -> None:
    """A control naming no registered job is a 404."""
    response = client.post(action, job='ghost', application_id='default',
                           schedule='@daily')
    assert response.status_int == 404


def test_control_of_unknown_application_is_404(client: Client) -> None:
    """A control naming an application id nobody knows is a 404."""
    assert client.post('hold', application_id='ghost').status_int == 404


@pytest.mark.parametrize('csrf', ['', 'f' * 64, None],
                         ids=['empty', 'forged', 'other-client'])
def test_control_without_valid_csrf_is_403(app: CronApp, store: Store,
                                           client: Client,
                                           csrf: str | None) -> None:
    """A POST without the token of the client's cookie is refused and
    changes nothing."""
    if csrf is None:
        csrf = Client(app).token()  # another client's token
    client.token()  # the client has a cookie of its own
    response = client.post('disable', csrf=csrf, job='feed',
                           application_id='default')
    assert response.status_int == 403
    assert 'CSRF' in response.text
    assert store.job_settings('default') == {}


def test_control_without_cookie_is_403(client: Client) -> None:
    """A POST from a client that never loaded the page is refused."""
    token = client.token()
    client.cookie = ''
    response = client.post('hold', csrf=token, application_id='default')
    assert response.status_int == 403


def test_control_can_go_back_to_the_history(client: Client) -> None:
    """A control posted from a history page redirects back there."""
    response = client.post('disable', job='feed', application_id='default',
                           back='history')
    assert response.location == (
        'http://localhost/cronjobs/jobs/feed?application_id=default&'
        'done=disable&job=feed&application_id=default')
    assert 'feed is disabled' in client.get(response.location).text


def test_notice_names_only_known_jobs(client: Client) -> None:
    """A crafted ?done= link cannot put words of its own on the page."""
    page = client.get('/cronjobs/?done=enable&job=free+bitcoin').text
    assert 'free bitcoin' not in page and 'class="notice"' not in page
    assert 'class="notice"' not in client.get('/cronjobs/?done=x').text
    page = client.get('/cronjobs/?done=hold&application_id=free+bitcoin').text
    assert 'free bitcoin' not in page and 'class="notice"' not in page
    page = client.get('/cronjobs/?done=hold&application_id=default').text
    assert 'The jobs of default are held.' in page


def test_run_now_without_base_url_is_409(client: Client) -> None:
    """Run now answers 409 with the reason when no base URL is known."""
    response = client.post('run-now', job='feed', application_id='default')
    assert response.status_int == 409
    assert 'no base URL' in response.text


# --- without a store; a failing store ------------------------------------


def test_page_works_without_a_store() -> None:
    """Without a store the page lists the jobs and says there is no
    history; switches answer 409 with the reason."""
    client = Client(make_app(None))
    page = client.get('/cronjobs/').text
    assert 'no run store' in page and 'Hold all jobs' not in page
    assert 'at 08:30 every day' in row(page, 'morning')
    assert 'No run store is configured' in client.get(
        '/cronjobs/jobs/morning').text
    [application] = client.get('/cronjobs/status.json').json['applications']
    assert application['held'] is False
    for action in ('disable', 'hold'):
        response = client.post(action, job='feed', application_id='default')
        assert response.status_int == 409
        assert 'CronApp(store=...)' in response.text


class BrokenStore(SqliteStore):
    """A store whose reads and writes fail, as a locked database's do."""

    def last_runs(self, application_id: str) -> dict[str, Any]:
        raise StoreError('database is locked', location=self.path)

    def set_enabled(self, application_id: str, job: str,
                    enabled: bool) -> None:
        raise StoreError('disk I/O error', location=self.path)


def test_failing_store_is_503(tmp_path: Path) -> None:
    """A store that fails gives a 503 naming the failure, on pages and
    controls alike."""
    client = Client(make_app(BrokenStore(tmp_path / 'runs.db')))
    response = client.get('/cronjobs/status.json')
    assert response.status_int == 503
    assert 'database is locked' in response.text
    # the page cannot be shown to get a token: sign a cookie by hand
    client.cookie = 'k' * 43
    csrf = client.app._status.access.csrf_token(Request.blank('/', headers={
        'Cookie': f'onecron_csrf={client.cookie}'}), Response(), '/')
    response = client.post('disable', csrf=csrf, job='feed',
                           application_id='default')
    assert response.status_int == 503
    assert 'disk I/O error' in response.text


def test_no_application_id_seen_yet(store: Store) -> None:
    """With a computed application id and none seen yet, the page says so
    and a history has no id to show."""
    client = Client(make_app(store, application_id=lambda request: 'x'))
    assert 'No application id has been seen yet' in client.get(
        '/cronjobs/').text
    assert client.get('/cronjobs/status.json').json == {'applications': []}
    assert client.get('/cronjobs/jobs/feed').status_int == 404


# --- over HTTP ----------------------------------------------------------


def test_run_now_over_http(tmp_path: Path,
                           live_server: Callable[..., LiveServer]) -> None:
    """On a real server, Run now runs the job through its URL; the run,
    recorded as manual, shows in status.json and the history."""
    app = make_app(tmp_path / 'runs.db', clock=utcnow, enabled=True,
                   lock_dir=str(tmp_path))
    server = live_server(app)
    app.start(base_url=server.url, application_id='default')
    try:
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()))
        with opener.open(f'{server.url}/cronjobs/') as response:
            match = re.search(r'name="csrf" value="([0-9a-f]+)"',
                              response.read().decode())
        assert match
        form = f'csrf={match[1]}&job=morning&application_id=default'
        with opener.open(f'{server.url}/cronjobs/control/run-now',
                         data=form.encode()) as response:
            assert response.status == 200  # after the 303
            assert response.url.endswith('done=run-now&job=morning&'
                                         'application_id=default')

        def last_run() -> Any:
            with opener.open(f'{server.url}/cronjobs/status.json') as answer:
                data = json.load(answer)
            jobs = {job['name']: job
                    for job in data['applications'][0]['jobs']}
            last = jobs['morning']['last_run']
            return last if last and last['outcome'] == 'ok' else None

        # a person asked for it: manual, as a run of `onecron run` is
        assert wait_for(last_run)['trigger'] == 'manual'
        assert app.store is not None
        [run] = app.store.runs('default', 'morning')
        assert run.trigger is Trigger.MANUAL
        with opener.open(f'{server.url}/cronjobs/jobs/morning') as response:
            html = response.read().decode()
        assert '<td data-label="Trigger">manual</td>' in html
        assert 'good morning' in html
        with pytest.raises(urllib.error.HTTPError) as error:
            opener.open(f'{server.url}/cronjobs/control/hold',
                        data=b'application_id=default')
        assert error.value.code == 403
    finally:
        app.stop()


# --- queries per application id ------------------------------------------

#: the store's public read methods
_READS = ('runs', 'last_runs', 'get_run', 'claimed', 'unstarted_claims',
          'lease', 'job_settings', 'job_settings_of', 'holds_of', 'hold',
          'schedulers', 'version')


class _Counting:
    """Counts the calls of the store's public read methods made by the
    thread that set ``thread`` (a scheduler's thread reads too)."""

    thread: int | None = None
    reads = 0

    def _count(self) -> None:
        if threading.get_ident() == self.thread:
            self.reads += 1


def _counting(base: type[Store]) -> type[Store]:
    """A subclass of the store class ``base`` that counts its reads."""
    def counted(name: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._count()
            return getattr(base, name)(self, *args, **kwargs)
        return method
    return type(f'Counting{base.__name__}', (_Counting, base),
                {name: counted(name) for name in _READS})


def _queries(make_store: Callable[[], Store], jobs: int, active: bool,
             tmp_path: Path, live_server: Callable[..., LiveServer]) -> int:
    """Store reads of one status.json with ``jobs`` jobs, this process's
    scheduler active or not."""
    store: Any = make_store()
    app = CronApp(secret='status secret', store=store, clock=utcnow,
                  enabled=active, autostart=False,
                  lock_dir=str(tmp_path / f'locks-{jobs}'))
    for number in range(jobs):
        app.cronjob(f'{number % 60} * * * *', name=f'job{number:03}')(
            lambda request: None)
    store.set_enabled('default', 'job000', False)
    store.set_schedule('default', f'job{jobs - 1:03}', '*/5 * * * *')
    store.set_hold('default', False, now=utcnow())
    try:
        if active:
            app.start(base_url=live_server(app).url)
            scheduler = app._schedulers['default']
            wait_for(lambda: scheduler.active
                     and scheduler.next_run(f'job{jobs - 1:03}'))
        store.thread = threading.get_ident()
        store.reads = 0
        response = Client(app).get('/cronjobs/status.json')
        reads: int = store.reads
        store.thread = None
        [application] = response.json['applications']
        assert len(application['jobs']) == jobs
        assert all(job['next_run'] is not None
                   for job in application['jobs'][1:])
        return reads
    finally:
        app.stop()
        store.close()


@pytest.mark.parametrize('active', [False, True],
                         ids=['standing-by', 'active'])
@pytest.mark.parametrize('backend', ['sqlite', 'postgresql'])
def test_status_reads_a_fixed_number_of_queries(
        backend: str, active: bool, tmp_path: Path,
        request: pytest.FixtureRequest,
        live_server: Callable[..., LiveServer]) -> None:
    """status.json reads the store the same number of times for 1, 10 and
    50 jobs, with or without this process's scheduler active."""
    if backend == 'sqlite':
        def make_store() -> Store:
            return _counting(SqliteStore)(tmp_path / 'runs.db')
    else:
        from onecron.stores.postgres import PostgresStore
        url = request.getfixturevalue('postgresql_url')

        def make_store() -> Store:
            return _counting(PostgresStore)(url)
    counts = {jobs: _queries(make_store, jobs, active, tmp_path,
                             live_server)
              for jobs in (1, 10, 50)}
    assert counts[1] == counts[10] == counts[50], counts
    assert counts[1] <= 6, counts
