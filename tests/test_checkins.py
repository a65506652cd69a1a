"""Sentry Crons: every run checks in (in_progress, then ok or error) with a
valid slug and the monitor's configuration from its schedule."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware
from sentry_sdk.transport import Transport

from onecron import CronApp, Schedule
from onecron.job import Job
from onecron.running import checkins as checkins_module
from onecron.running.checkins import (
    checkin_margin,
    max_runtime,
    monitor_config,
    monitor_slug,
    sentry_schedule,
)

from .conftest import SENTRY_DSN, wait_for

SECRET = 'a test secret of at least 32 chars'
CheckIns = list[dict[str, Any]]


class CapturingTransport(Transport):
    """Keeps the check-ins of each envelope (and the raw envelopes)
    instead of sending them."""

    def __init__(self, checkins: CheckIns, raw: list[bytes]) -> None:
        super().__init__()
        self.checkins = checkins
        self.raw = raw

    def capture_envelope(self, envelope: Envelope) -> None:
        self.raw.append(envelope.serialize())
        for item in envelope.items:
            if item.type == 'check_in':
                payload = item.payload.json
                assert payload is not None
                self.checkins.append(payload)


@pytest.fixture
def raw() -> list[bytes]:
    """Every envelope sent during the test, serialized."""
    return []


@pytest.fixture
def checkins(raw: list[bytes]) -> Iterator[CheckIns]:
    """The check-ins sent during the test, through a real client with
    tracing on, as a busy application runs it."""
    captured: CheckIns = []
    sentry_sdk.init(dsn=SENTRY_DSN, transport=CapturingTransport(
        captured, raw), traces_sample_rate=1.0, environment='test',
        release='1.2.3')
    yield captured
    sentry_sdk.init()  # back to a client that sends nothing


def make(tmp_path: Path, **options: Any) -> CronApp:
    options.setdefault('max_offset', 0)
    return CronApp(secret=SECRET, lock_dir=str(tmp_path), enabled=False,
                   **options)


def pairs(checkins: CheckIns, slug: str) -> list[tuple[dict[str, Any],
                                                       dict[str, Any]]]:
    """The (start, end) check-ins of ``slug``, by check_in_id."""
    mine = [checkin for checkin in checkins
            if checkin['monitor_slug'] == slug]
    starts = [c for c in mine if c['status'] == 'in_progress']
    ends = {c['check_in_id']: c for c in mine if c['status'] != 'in_progress'}
    return [(start, ends[start['check_in_id']]) for start in starts
            if start['check_in_id'] in ends]


def assert_run(start: dict[str, Any], end: dict[str, Any], slug: str,
               status: str) -> None:
    """One run's check-ins, field by field."""
    assert start['type'] == end['type'] == 'check_in'
    assert start['monitor_slug'] == end['monitor_slug'] == slug
    assert start['status'] == 'in_progress'
    assert start['duration'] is None
    assert re.fullmatch(r'[0-9a-f]{32}', start['check_in_id'])
    assert end['check_in_id'] == start['check_in_id']
    assert end['status'] == status
    assert isinstance(end['duration'], float) and 0 <= end['duration'] < 10
    assert 'monitor_config' not in end
    assert start['environment'] == end['environment'] == 'test'
    assert start['release'] == end['release'] == '1.2.3'
    # check-ins carry the trace context alone, and no request's
    assert set(start['contexts']) == {'trace'}


# -- every kind of run --------------------------------------------------------

def test_scheduled_run_through_a_server_checks_in(
        tmp_path: Path, live_server: Any, checkins: CheckIns,
        raw: list[bytes]) -> None:
    """A run the scheduler calls over HTTP sends in_progress then ok with
    the same check_in_id and its duration, and no token."""
    app = CronApp(secret=SECRET, lock_dir=str(tmp_path), max_offset=0)
    app.cronjob('* * * * * *', name='tick')(lambda request: 'ticked')
    try:
        app.start(base_url=live_server(app).url)
        wait_for(lambda: pairs(checkins, 'tick'))
    finally:
        app.stop()
    start, end = pairs(checkins, 'tick')[0]
    assert_run(start, end, 'tick', 'ok')
    # a seconds field: Sentry cannot express it, so no monitor_config
    assert 'monitor_config' not in start
    assert_no_token(app, 'tick', raw)


def test_run_now_checks_in_ok(tmp_path: Path, live_server: Any,
                              checkins: CheckIns) -> None:
    """run_soon (run now) through a server: in_progress with the monitor
    config of the cron schedule, then ok."""
    app = make(tmp_path, slow_after=90)
    app.cronjob('30 8 * * MON-FRI', timezone='Europe/Zurich',
                name='report', grace=120)(lambda request: None)
    app.base_url = live_server(app).url
    try:
        app.run_soon('report')
        wait_for(lambda: pairs(checkins, 'report'))
    finally:
        app.stop()
    [(start, end)] = pairs(checkins, 'report')
    assert_run(start, end, 'report', 'ok')
    assert start['monitor_config'] == {
        'schedule': {'type': 'crontab', 'value': '30 8 * * MON-FRI'},
        'timezone': 'Europe/Zurich', 'checkin_margin': 2, 'max_runtime': 2}


def test_external_call_of_a_failing_job_checks_in_error(
        tmp_path: Path, live_server: Any, checkins: CheckIns,
        raw: list[bytes]) -> None:
    """A job URL called from outside, whose job raises: in_progress then
    error, and the token of the URL is in no envelope, also with the
    request traced by Sentry's WSGI middleware."""
    app = make(tmp_path)

    @app.cronjob(every=timedelta(hours=2), name='purge', timeout=600)
    def purge(request: Any) -> None:
        raise ValueError(f'purge failed at {request.url}')

    url = app.url_for('purge', live_server(SentryWsgiMiddleware(app)).url)
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(url)
    assert failed.value.code == 500
    [(start, end)] = pairs(checkins, 'purge')
    assert_run(start, end, 'purge', 'error')
    assert start['monitor_config'] == {
        'schedule': {'type': 'interval', 'value': 2, 'unit': 'hour'},
        'timezone': 'UTC', 'checkin_margin': 60, 'max_runtime': 10}
    assert_no_token(app, 'purge', raw)


def test_a_transaction_naming_the_url_stays_out_of_check_ins(
        tmp_path: Path, live_server: Any, checkins: CheckIns,
        raw: list[bytes]) -> None:
    """An application's own transaction around the request, named after
    its path and holding its URL, goes with no check-in."""
    app = make(tmp_path)
    app.cronjob(hour=3, name='nightly')(lambda request: 'done')

    def traced(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ['PATH_INFO']
        with sentry_sdk.start_transaction(op='http.server', name=path,
                                          source='route') as transaction:
            transaction.set_data('url', path)
            return list(app(environ, start_response))

    with urllib.request.urlopen(app.url_for(
            'nightly', live_server(traced).url)):
        pass
    [(start, end)] = pairs(checkins, 'nightly')
    assert_run(start, end, 'nightly', 'ok')
    assert_no_token(app, 'nightly', raw)

def assert_no_token(app: CronApp, name: str, raw: list[bytes]) -> None:
    """No check-in envelope holds the job's token or URL path."""
    token = app.url_for(name, 'http://x').rsplit('/', 1)[1].encode()
    sent = [envelope for envelope in raw if b'"type":"check_in"' in envelope]
    assert len(sent) >= 2
    for envelope in sent:
        assert token not in envelope
        assert b'/cronjobs' not in envelope


def test_multi_tenant_slug_names_the_application_id(
        tmp_path: Path, live_server: Any, checkins: CheckIns) -> None:
    """Each tenant's runs check in under a slug of their own."""
    app = make(tmp_path, application_id=lambda request: request.host.split(
        '.')[0].split(':')[0])
    app.cronjob(hour=3, name='backup')(lambda request: None)
    server = live_server(app)
    for tenant in ('acme', 'globex'):
        url = app.url_for('backup', server.url, application_id=tenant)
        request = urllib.request.Request(url, headers={
            'Host': f'{tenant}.example.org'})
        with urllib.request.urlopen(request):
            pass
    slugs = [checkin['monitor_slug'] for checkin in checkins]
    assert slugs == [monitor_slug('backup', 'acme')] * 2 + [
        monitor_slug('backup', 'globex')] * 2
    assert slugs[0].startswith('acme-backup-')
    assert slugs[0] != slugs[2]


# -- when nothing is sent -----------------------------------------------------

def test_sentry_crons_false_sends_no_check_in(
        tmp_path: Path, live_server: Any, checkins: CheckIns,
        raw: list[bytes]) -> None:
    """CronApp(sentry_crons=False): runs check in nowhere (the failure
    is still reported as an event)."""
    app = make(tmp_path, sentry_crons=False)
    assert app.sentry_crons is False

    @app.cronjob(hour=3, name='nightly')
    def nightly(request: Any) -> None:
        raise ValueError('nope')

    url = app.url_for('nightly', live_server(app).url)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url)
    assert raw  # the failure's event
    assert checkins == []


def test_no_check_in_without_an_active_client(
        tmp_path: Path, live_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a client that sends (no init, or init without a DSN)
    capture_checkin is never called, and the run is served."""
    calls: list[Any] = []
    monkeypatch.setattr(checkins_module, 'capture_checkin',
                        lambda **fields: calls.append(fields))
    app = make(tmp_path)
    app.cronjob(hour=3, name='nightly')(lambda request: 'done')
    url = app.url_for('nightly', live_server(app).url)
    for dsn in ('', None):
        sentry_sdk.init(dsn)
        with urllib.request.urlopen(url) as response:
            assert response.read() == b'done\n'
    assert calls == []


def test_sentry_crons_must_be_a_bool(tmp_path: Path) -> None:
    """sentry_crons='no' is refused when the app is made."""
    with pytest.raises(TypeError, match='sentry_crons must be True or '
                       "False, got 'no'"):
        make(tmp_path, sentry_crons='no')


# -- the monitor's configuration ----------------------------------------------

def job(schedule: Schedule | None, **options: Any) -> Job:
    return Job('j', lambda request: None, schedule, **options)


@pytest.mark.parametrize('expr, value', [
    ('30 8 * * MON-FRI', '30 8 * * MON-FRI'),
    ('@daily', '0 0 * * *'),
    ('*/15 * * * *', '*/15 * * * *'),
])
def test_cron_schedules_are_crontabs(expr: str, value: str) -> None:
    """A five-field expression is sent as a crontab, normalized."""
    assert sentry_schedule(Schedule(expr)) == {'type': 'crontab',
                                               'value': value}


@pytest.mark.parametrize('every, value, unit', [
    (timedelta(minutes=5), 5, 'minute'),
    (timedelta(minutes=90), 90, 'minute'),
    (timedelta(hours=3), 3, 'hour'),
    (timedelta(days=2), 2, 'day'),
    (timedelta(hours=48), 2, 'day'),
])
def test_intervals_in_their_largest_unit(every: timedelta, value: int,
                                         unit: str) -> None:
    """every= of whole minutes, hours or days is an interval."""
    assert sentry_schedule(Schedule(every=every)) == {
        'type': 'interval', 'value': value, 'unit': unit}


@pytest.mark.parametrize('schedule', [
    Schedule('*/10 * * * * *'),            # seconds
    Schedule('0 0 8 * * *'),               # seconds, even when 0
    Schedule(every=timedelta(seconds=90)),  # not whole minutes
    Schedule('0 9 L * *'),
    Schedule('0 9 LW * *'),
    Schedule('0 9 15W * *'),
    Schedule('0 9 * * 1#1'),
    Schedule('0 9 * * 5L'),
    None,                                  # manual-only
])
def test_what_sentry_cannot_express_has_no_config(
        schedule: Schedule | None) -> None:
    """Seconds, L/W/#, odd intervals and no schedule: no monitor_config
    (the check-ins go without one)."""
    assert sentry_schedule(schedule) is None
    assert monitor_config(job(schedule), schedule, slow_after=30) is None


def test_checkin_margin_from_the_jitter_window_and_grace() -> None:
    """ceil((jitter window + grace) / 60), at least 1; the default grace
    is the shorter of an hour and the shortest gap."""
    hourly = Schedule('0 * * * *')
    assert checkin_margin(job(hourly, max_offset=30, grace=60), hourly) == 2
    assert checkin_margin(job(hourly, max_offset=30), hourly) == 61
    assert checkin_margin(job(hourly, jitter=False, grace=1), hourly) == 1
    minutely = Schedule('* * * * *')
    # the window is half the gap at most: 30 s, and the grace 60 s
    assert checkin_margin(job(minutely, max_offset=300), minutely) == 2


def test_max_runtime_from_timeout_else_slow_after() -> None:
    """ceil(timeout / 60) with a timeout, else ceil(slow_after / 60),
    at least 1."""
    assert max_runtime(job(None, timeout=600), slow_after=30) == 10
    assert max_runtime(job(None, timeout=601), slow_after=30) == 11
    assert max_runtime(job(None), slow_after=30) == 1
    assert max_runtime(job(None), slow_after=150) == 3


def test_monitor_config_names_the_zone() -> None:
    """The timezone is the schedule's."""
    schedule = Schedule(hour=2, minute=30, timezone='America/New_York')
    config = monitor_config(job(schedule, jitter=False, grace=300),
                            schedule, slow_after=30)
    assert config == {'schedule': {'type': 'crontab', 'value': '30 2 * * *'},
                      'timezone': 'America/New_York', 'checkin_margin': 5,
                      'max_runtime': 1}


# -- slugs --------------------------------------------------------------------

SLUG = re.compile(r'(?![0-9]+$)[a-z0-9_-]{1,50}')


@pytest.mark.parametrize('name, application_id', [
    ('nightly_billing', 'default'),
    ('app.jobs.Purge', 'default'),
    ('Purge', 'default'),
    ('x' * 80, 'default'),
    ('12345', 'default'),
    ('日本語', 'default'),
    ('---', 'default'),
    ('backup', 'acme'),
    ('backup', 'Tenant One'),
    ('a' * 49, 'b' * 49),
])
def test_slugs_are_valid_for_sentry(name: str, application_id: str) -> None:
    """Lower case, [a-z0-9_-], 1 to 50 characters, not all digits."""
    assert SLUG.fullmatch(monitor_slug(name, application_id))


def test_a_valid_name_is_its_own_slug() -> None:
    """A name that is a valid slug already is kept as it is."""
    assert monitor_slug('nightly_billing') == 'nightly_billing'
    assert monitor_slug('purge-2') == 'purge-2'


def test_changed_or_cut_slugs_end_with_a_hash() -> None:
    """Names that slugify alike, or share 41 characters, get different
    slugs; the application id joins the slug when not 'default'."""
    names = ['app.jobs.Purge', 'app.jobs.purge', 'app-jobs-purge',
             'app jobs purge', 'x' * 60, 'x' * 61]
    slugs = [monitor_slug(name) for name in names]
    assert len(set(slugs)) == len(slugs)
    assert re.fullmatch(r'app-jobs-purge-[0-9a-f]{8}', slugs[0])
    assert len(slugs[4]) == 50
    assert monitor_slug('backup', 'acme') != monitor_slug('acme/backup')
    assert monitor_slug('backup', 'default') == 'backup'

