"""Where job URLs go: only to hosts the operator configured.

The attacks are played for real: the victim app on one waitress server,
a second listener on loopback standing for the attacker's host, and
requests whose ``Host`` header the attacker chose.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.protocol.hosts import (
    check_base_url,
    host_allowed,
    origin,
    parse_allowed_hosts,
    split_host,
)

from .conftest import wait_for

EVERY_SECOND = '* * * * * *'


class Listener:
    """A WSGI app that writes down every request it gets (the attacker's
    host, or the victim's own wrapped app)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self._mutex = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._mutex:
            self.requests.append((environ['REQUEST_METHOD'],
                                  environ.get('HTTP_HOST', ''),
                                  environ.get('PATH_INFO', '')))
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'fine']

    def job_calls(self) -> list[tuple[str, str, str]]:
        with self._mutex:
            return [r for r in self.requests if r[2].startswith('/cronjobs')]


def get(url: str, host: str | None = None,
        method: str = 'GET') -> tuple[int, str]:
    """A request over loopback, with the ``Host`` header an attacker
    chose."""
    request = urllib.request.Request(url, method=method)
    if host is not None:
        request.add_unredirected_header('Host', host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def attacker(live_server: Any) -> Iterator[tuple[Listener, str]]:
    listener = Listener()
    server = live_server(listener)
    yield listener, f'127.0.0.1:{server.port}'


def ticking_app(apps: list[CronApp], tmp_path: Path, runs: list[str],
                **options: Any) -> CronApp:
    app = CronApp(Listener(), secret='s' * 32, lock_dir=str(tmp_path),
                  **options)
    apps.append(app)

    @app.cronjob(EVERY_SECOND, name='tick', jitter=False)
    def tick(request: Request) -> None:
        runs.append(request.host)

    return app


# -- the pure rules -------------------------------------------------------

@pytest.mark.parametrize('entry, host, scheme, allowed', [
    ('example.org', 'example.org', 'https', True),
    ('example.org', 'EXAMPLE.org', 'https', True),
    ('example.org', 'example.org:443', 'https', True),
    ('example.org', 'example.org:8443', 'https', False),
    ('example.org', 'example.org:80', 'https', False),
    ('example.org', 'example.org', 'http', True),
    ('example.org:8080', 'example.org:8080', 'http', True),
    ('example.org:8080', 'example.org', 'http', False),
    ('example.org', 'www.example.org', 'https', False),
    ('.example.org', 'www.example.org', 'https', True),
    ('.example.org', 'example.org', 'https', True),
    ('.example.org', 'evilexample.org', 'https', False),
    ('.example.org', 'example.org.evil.com', 'https', False),
    ('127.0.0.1:8080', '127.0.0.1:8080', 'http', True),
    ('[::1]:8080', '[::1]:8080', 'http', True),
    ('127.0.0.1:6379', '127.0.0.1:6379/admin?x=', 'http', False),
    ('example.org', 'example.org@evil.com', 'https', False),
    ('example.org', 'example.org evil', 'https', False),
    ('example.org', '', 'https', False),
    ('example.org', 'example.org:0', 'https', False),
    ('example.org', 'example.org:99999', 'https', False),
], ids=lambda value: str(value))
def test_host_rules(entry: str, host: str, scheme: str,
                    allowed: bool) -> None:
    """A Host header matches an allowed_hosts entry exactly: no port in
    the entry means the scheme's default port; a leading dot takes
    subdomains; anything that is not a plain host and port never
    matches."""
    assert host_allowed(host, scheme, parse_allowed_hosts([entry])) is allowed


@pytest.mark.parametrize('entry', [
    'http://example.org', 'example.org/', 'example.org:port', '*',
    'exa mple.org', 'example.org:', '.[::1]', '-bad.org', 'a..b', ' x.org',
    'user@example.org', '127.0.0.1:6379/admin',
])
def test_bad_allowed_hosts_entries_fail_at_construction(entry: str) -> None:
    """An allowed_hosts entry that is not a host with an optional port is
    refused when the CronApp is made, naming it."""
    with pytest.raises(ValueError, match='allowed_hosts entry'):
        CronApp(secret='s', allowed_hosts=[entry])


def test_allowed_hosts_must_be_a_list() -> None:
    """One str is not a list of hosts (it would be taken letter by
    letter)."""
    with pytest.raises(TypeError, match='allowed_hosts'):
        CronApp(secret='s', allowed_hosts='example.org')  # type: ignore


@pytest.mark.parametrize('url', [
    'example.org', 'ftp://example.org', 'https://', 'https://a b.org',
    'https://user:pw@example.org', 'https://example.org/?x=1',
    'https://example.org/#f', 'https://example.org:99999',
])
def test_bad_base_url_fails_at_construction(url: str) -> None:
    """base_url must be an http(s) URL with a host and nothing that could
    smuggle the call elsewhere."""
    with pytest.raises(ValueError, match='base_url'):
        CronApp(secret='s', base_url=url)


def test_base_url_keeps_its_path() -> None:
    """An application mounted under a path keeps it (no trailing slash)."""
    assert check_base_url('https://example.org/app/') == \
        'https://example.org/app'


def test_origin_hides_path_and_query() -> None:
    """What a log line may say of a URL: scheme, host and port."""
    assert origin('https://h:8443/cronjobs/TOKEN?x=1') == 'https://h:8443'
    assert origin('http://[::1]/x') == 'http://[::1]'
    assert origin('http://h:bad/x') == '(a malformed URL)'
    assert split_host('H.example.ORG.') == ('h.example.org', None)


# -- the attacks ------------------------------------------------------------

def test_forged_host_does_not_receive_job_urls(
        tmp_path: Path, live_server: Any, apps: list[CronApp],
        attacker: tuple[Listener, str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Without base_url or allowed_hosts, a request with the attacker's
    Host starts no scheduler: nothing is sent to the attacker, and a
    WARNING naming base_url says why, once."""
    listener, attacker_host = attacker
    runs: list[str] = []
    app = ticking_app(apps, tmp_path, runs)
    server = live_server(app)
    caplog.set_level(logging.WARNING, 'onecron')
    for _ in range(3):
        assert get(server.url + '/', host=attacker_host)[0] == 200
    assert not app.schedulers
    time.sleep(2.5)  # jobs due every second would have been sent by now
    assert listener.job_calls() == [] and runs == []
    warnings = [r for r in caplog.records if 'base_url' in r.getMessage()]
    assert len(warnings) == 1


def test_ssrf_host_starts_nothing(tmp_path: Path, live_server: Any,
                                  apps: list[CronApp]) -> None:
    """A Host with a path in it (``127.0.0.1:6379/admin?x=``) matches no
    allowed host, even one naming that address and port."""
    runs: list[str] = []
    app = ticking_app(apps, tmp_path, runs,
                      allowed_hosts=['127.0.0.1:6379'])
    server = live_server(app)
    get(server.url + '/', host='127.0.0.1:6379/admin?x=')
    get(server.url + '/', host='127.0.0.1:6379@evil')
    assert not app.schedulers


def test_allowed_host_is_learned_and_others_are_not(
        tmp_path: Path, live_server: Any, apps: list[CronApp],
        attacker: tuple[Listener, str]) -> None:
    """A request for an allowed host gives the scheduler its base URL;
    the attacker's Host, sent first, does not."""
    listener, attacker_host = attacker
    runs: list[str] = []
    app = ticking_app(apps, tmp_path, runs,
                      allowed_hosts=['localhost', 'localhost:1'])
    server = live_server(app)
    app.allowed_hosts = parse_allowed_hosts([f'127.0.0.1:{server.port}'])
    get(server.url + '/', host=attacker_host)
    assert not app.schedulers
    get(server.url + '/')
    wait_for(lambda: len(runs) >= 2)
    assert set(runs) == {f'127.0.0.1:{server.port}'}
    assert listener.job_calls() == []
    assert app.schedulers['default'].base_url == server.url


def test_configured_base_url_wins_over_any_host(
        tmp_path: Path, live_server: Any, apps: list[CronApp],
        attacker: tuple[Listener, str]) -> None:
    """With base_url set, the first request's Host changes nothing."""
    listener, attacker_host = attacker
    runs: list[str] = []
    app = ticking_app(apps, tmp_path, runs, base_url='http://placeholder')
    server = live_server(app)
    app.base_url = server.url
    get(server.url + '/', host=attacker_host)
    wait_for(lambda: len(runs) >= 2)
    assert listener.job_calls() == []


def test_chains_call_the_base_url_not_the_requests_host(
        tmp_path: Path, live_server: Any, apps: list[CronApp],
        attacker: tuple[Listener, str]) -> None:
    """Whoever holds one job URL and sends it with their own Host does not
    receive the chained jobs' URLs: the chain calls the base URL."""
    listener, attacker_host = attacker
    ran: list[str] = []
    app = CronApp(Listener(), secret='s' * 32, lock_dir=str(tmp_path),
                  base_url='http://placeholder', enabled=False)
    apps.append(app)

    @app.cronjob(name='first', then=['second'])
    def first(request: Request) -> None:
        ran.append('first')

    @app.cronjob(name='second')
    def second(request: Request) -> None:
        ran.append('second')

    server = live_server(app)
    app.base_url = server.url
    path = app.url_for('first').removeprefix(server.url)
    assert get(server.url + path, host=attacker_host, method='POST')[0] == 200
    wait_for(lambda: ran == ['first', 'second'])
    assert listener.job_calls() == []


def test_chain_without_a_base_url_is_reported_not_sent(
        tmp_path: Path, live_server: Any, apps: list[CronApp],
        attacker: tuple[Listener, str],
        sentry_events: list[dict[str, Any]]) -> None:
    """No base URL known: the chain does not run, and says why."""
    listener, attacker_host = attacker
    app = CronApp(Listener(), secret='s' * 32, lock_dir=str(tmp_path),
                  enabled=False)
    apps.append(app)
    app.cronjob(name='first', then=['second'])(lambda request: None)
    app.cronjob(name='second')(lambda request: None)
    server = live_server(app)
    path = app.url_for('first', base_url='http://x').removeprefix('http://x')
    assert get(server.url + path, host=attacker_host, method='POST')[0] == 200
    time.sleep(0.5)
    assert listener.job_calls() == []
    assert any('no base URL' in str(event) for event in sentry_events)


# -- tenants -----------------------------------------------------------------

TENANTS = {'a.test': 'tenant-a', 'b.test': 'tenant-b'}


def tenant_of(request: Request) -> str | None:
    return TENANTS.get(request.host.split(':')[0])


def test_a_tenants_url_runs_nothing_for_another(tmp_path: Path) -> None:
    """A static URL made for tenant A is 404 when sent with tenant B's
    host, and 404 for a host that is no tenant's."""
    ran: list[str] = []
    app = CronApp(secret='s' * 32, application_id=tenant_of,
                  lock_dir=str(tmp_path), enabled=False,
                  base_url=lambda app_id: f'http://{app_id}.example')
    app.cronjob(name='job')(lambda request: ran.append(tenant_of(request)))
    url = app.url_for('job', application_id='tenant-a')
    assert url.startswith('http://tenant-a.example/cronjobs/')
    path = url.removeprefix('http://tenant-a.example')
    for host, status in (('b.test', 404), ('nobody.test', 404),
                         ('a.test', 200)):
        response = Request.blank(path, method='POST',
                                 headers={'Host': host}).get_response(app)
        assert response.status_code == status, host
    assert ran == ['tenant-a']


def test_url_for_needs_the_id_of_a_computed_application_id() -> None:
    """With application_id a callable, url_for asks which id."""
    app = CronApp(secret='s', application_id=tenant_of,
                  base_url='http://x', enabled=False)
    app.cronjob(name='job')(lambda request: None)
    with pytest.raises(Exception, match='application_id'):
        app.url_for('job')


def test_static_tokens_of_fixed_ids_are_bound_too() -> None:
    """Two apps that share a secret but not an application id do not run
    each other's jobs by URL."""
    one = CronApp(secret='shared', application_id='one', base_url='http://x',
                  enabled=False)
    two = CronApp(secret='shared', application_id='two', base_url='http://x',
                  enabled=False)
    for app in (one, two):
        app.cronjob(name='job')(lambda request: None)
    path = one.url_for('job').removeprefix('http://x')
    assert Request.blank(path, method='POST').get_response(one).status_code \
        == 200
    assert Request.blank(path, method='POST').get_response(two).status_code \
        == 404


def test_no_tenants_requests_go_to_the_app_untouched(
        tmp_path: Path, live_server: Any, apps: list[CronApp]) -> None:
    """1,500 random hosts that are no tenant's: served by the wrapped app,
    no scheduler, no warning per host."""
    wrapped = Listener()
    app = CronApp(wrapped, secret='s' * 32, application_id=tenant_of,
                  lock_dir=str(tmp_path),
                  base_url=lambda app_id: 'http://127.0.0.1:9')
    apps.append(app)
    app.cronjob(EVERY_SECOND, name='tick')(lambda request: None)
    for number in range(1500):
        environ = Request.blank('/', headers={
            'Host': f'h{number}.attacker.example'}).environ
        assert b''.join(app(environ, lambda *a: None)) == b'fine'
    assert not app.schedulers
    assert len(wrapped.requests) == 1500


def test_application_ids_are_capped(
        tmp_path: Path, apps: list[CronApp],
        caplog: pytest.LogCaptureFixture) -> None:
    """A callable that takes any host as a tenant starts at most
    max_application_ids schedulers, and says so loudly, once."""
    app = CronApp(Listener(), secret='s' * 32,
                  application_id=lambda request: request.host,
                  lock_dir=str(tmp_path), max_application_ids=3,
                  base_url=lambda app_id: 'http://127.0.0.1:9')
    apps.append(app)
    app.cronjob('0 0 1 1 *', name='yearly')(lambda request: None)
    caplog.set_level(logging.WARNING, 'onecron')
    for number in range(50):
        Request.blank('/', headers={'Host': f'h{number}.test'}).get_response(
            app)
    assert len(app.schedulers) == 3
    capped = [r for r in caplog.records if 'max_application_ids' in r.message]
    assert 1 <= len(capped) <= 4
    with pytest.raises(ValueError, match='max_application_ids'):
        CronApp(secret='s', max_application_ids=0)


def test_a_failing_application_id_callable_runs_nothing(
        tmp_path: Path) -> None:
    """An application_id callable that raises refuses the call (404) and
    never runs the job as a made-up tenant."""
    ran: list[str] = []

    def broken(request: Request) -> str:
        raise RuntimeError('tenant lookup failed')

    app = CronApp(secret='s' * 32, application_id=broken,
                  lock_dir=str(tmp_path), enabled=False,
                  base_url='http://x')
    app.cronjob(name='job')(lambda request: ran.append('ran'))
    path = app.url_for('job', application_id='t').removeprefix('http://x')
    response = Request.blank(path, method='POST').get_response(app)
    assert response.status_code == 404 and ran == []


def test_base_url_callable_gives_each_tenant_its_url(
        tmp_path: Path, live_server: Any, apps: list[CronApp]) -> None:
    """A base_url callable is asked per id: each tenant's scheduler calls
    its own URL, starting with the tenant's first request."""
    seen: list[str | None] = []
    wrapped = Listener()
    app = CronApp(wrapped, secret='s' * 32, application_id=tenant_of,
                  lock_dir=str(tmp_path),
                  base_url=lambda app_id: 'http://placeholder')
    apps.append(app)
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(
        lambda request: seen.append(tenant_of(request)))
    server = live_server(app)
    hosts = {'tenant-a': f'a.test:{server.port}',
             'tenant-b': f'b.test:{server.port}'}
    # the test resolves the tenants' names to the server on loopback
    app.base_url = lambda app_id: server.url
    get(server.url + '/', host=hosts['tenant-a'])
    assert set(app.schedulers) == {'tenant-a'}
    assert app.schedulers['tenant-a'].base_url == server.url


def test_the_status_page_says_when_no_base_url_is_known(
        tmp_path: Path) -> None:
    """Without base_url the status page and status.json say that this
    process schedules nothing, and why; with it, they do not."""
    app = CronApp(secret='s' * 32, lock_dir=str(tmp_path))
    app.cronjob('0 3 * * *', name='nightly')(lambda request: None)
    local = {'REMOTE_ADDR': '127.0.0.1'}
    page = Request.blank('/cronjobs/', local).get_response(app)
    assert page.status_code == 200 and 'no base URL' in page.text
    data = Request.blank('/cronjobs/status.json', local).get_response(
        app).json
    [warning] = data['applications'][0]['warnings']
    assert 'base_url' in warning
    app.base_url = 'https://example.org'
    data = Request.blank('/cronjobs/status.json', local).get_response(
        app).json
    assert data['applications'][0]['warnings'] == []


@pytest.mark.parametrize('bad', ['a\r\nBcc: x@evil', 'tab\there',
                                 'sur\udcffrogate'])
def test_names_and_ids_that_break_mail_or_stores_are_refused(
        bad: str) -> None:
    """A job name or application id with control characters or lone
    surrogates is refused when given, not when a mail or a store trips
    over it at 03:00; a callable returning one refuses the request."""
    with pytest.raises(ValueError, match='printable'):
        CronApp(secret='s', application_id=bad)
    app = CronApp(secret='s', application_id=lambda request: bad,
                  base_url='http://x', enabled=False)
    with pytest.raises(ValueError, match='printable'):
        app.cronjob(name=bad)(lambda request: None)
    app.cronjob(name='job')(lambda request: None)
    path = app.url_for('job', application_id='t').removeprefix('http://x')
    assert Request.blank(path, method='POST').get_response(
        app).status_code == 404
