"""Pyramid: ``config.include('onecron.pyramid')``, settings, the directive
and the scanned decorator; jobs run as views, through the real router."""

from __future__ import annotations

import secrets
import sys
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import (
    ConfigurationConflictError,
    ConfigurationError,
    ConfigurationExecutionError,
)
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response
from pyramid.router import Router
from pyramid.threadlocal import get_current_request
from webob import Request

from onecron import CronApp, OnecronError, Outcome
from onecron.cli import run_command
from onecron.pyramid import cronapp, cronjob

from .conftest import Failures, LiveServer, wait_for

SECRET = secrets.token_urlsafe(32)
BASE = 'http://example.org'


class Resource:
    """A transaction data manager: what a job wrote is kept on commit
    and dropped on abort."""

    transaction_manager = None

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.committed: list[str] = []
        self.aborts = 0

    def abort(self, transaction: Any) -> None:
        self.pending.clear()
        self.aborts += 1

    def tpc_begin(self, transaction: Any) -> None:
        pass

    def commit(self, transaction: Any) -> None:
        pass

    def tpc_vote(self, transaction: Any) -> None:
        pass

    def tpc_finish(self, transaction: Any) -> None:
        self.committed += self.pending
        self.pending.clear()

    def tpc_abort(self, transaction: Any) -> None:
        self.abort(transaction)

    def sortKey(self) -> str:
        return 'tests.test_pyramid.Resource'


def marking_tween_factory(handler: Callable[[PyramidRequest], Response],
                          registry: Any) -> Callable[[PyramidRequest],
                                                     Response]:
    """A tween of the application's own: marks the request on its way
    in, and notes the answer on its way out."""

    def tween(request: PyramidRequest) -> Response:
        request.environ['test.tween'] = 'in'
        response = handler(request)
        registry.settings['test.after'].append(response.status_int)
        return response

    return tween


@cronjob(every=timedelta(seconds=1), jitter=False, name='scanned')
def scanned(request: PyramidRequest) -> str:
    """A job config.scan() finds: notes what it was given."""
    request.registry.settings['test.seen'].append(
        (request, get_current_request(), request.environ.get('test.tween')))
    return 'scanned ran'


def record(request: PyramidRequest) -> str:
    """Notes the request and the current one; writes to the resource."""
    settings = request.registry.settings
    settings['test.seen'].append(
        (request, get_current_request(), request.environ.get('test.tween')))
    request.tm.get().join(settings['test.resource'])
    settings['test.resource'].pending.append('recorded')
    return f'greeting {settings["greeting"]}'


def explode(request: PyramidRequest) -> None:
    """Writes to the resource, then raises."""
    resource = request.registry.settings['test.resource']
    request.tm.get().join(resource)
    resource.pending.append('exploded')
    raise RuntimeError('the job broke')


def home(request: PyramidRequest) -> Response:
    return Response('home\n', content_type='text/plain')


@pytest.fixture
def make(apps: list[CronApp], tmp_path: Path
         ) -> Callable[..., tuple[Router, CronApp]]:
    """Build a Pyramid app with onecron included: its router and CronApp
    (stopped after the test)."""

    def build(settings: dict[str, Any] | None = None,
              setup: Callable[[Configurator], None] | None = None,
              scan: bool = False) -> tuple[Router, CronApp]:
        given = {'onecron.secret': SECRET, 'onecron.enabled': 'false',
                 'onecron.base_url': BASE, 'onecron.lock_dir': str(tmp_path),
                 'onecron.store': str(tmp_path / 'runs.sqlite'),
                 'onecron.reporter': Failures(),
                 'greeting': 'hello', 'test.seen': [], 'test.after': [],
                 'test.resource': Resource(), **(settings or {})}
        with Configurator(settings=given) as config:
            config.include('pyramid_tm')
            config.include('onecron.pyramid')
            config.add_tween('tests.test_pyramid.marking_tween_factory')
            config.add_route('home', '/')
            config.add_view(home, route_name='home')
            config.add_cronjob(record, name='record')
            config.add_cronjob(explode, name='explode')
            if scan:
                config.scan(sys.modules[__name__])
            if setup is not None:
                setup(config)
        router = config.make_wsgi_app()
        cron = cronapp(router)
        apps.append(cron)
        return router, cron

    return build


def call(router: Router, cron: CronApp, name: str) -> Any:
    """POST the job's URL through the router (as a WSGI server would)."""
    url = cron.url_for(name).removeprefix(BASE)
    return Request.blank(url, method='POST', base_url=BASE).get_response(
        router)


def settings_of(router: Router) -> dict[str, Any]:
    settings: dict[str, Any] = router.registry.settings
    return settings


def test_job_gets_the_real_pyramid_request_inside_the_tweens(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """A job gets the Pyramid request: its registry and settings, the
    current request threadlocal, and the app's tween around it."""
    router, cron = make()
    response = call(router, cron, 'record')
    assert (response.status_int, response.text) == (200, 'greeting hello\n')
    assert response.cache_control.no_store
    settings = settings_of(router)
    [(request, current, tween)] = settings['test.seen']
    assert isinstance(request, PyramidRequest)
    assert request.registry is router.registry
    assert current is request
    assert tween == 'in'
    assert settings['test.after'] == [200]  # the tween saw it answered


def test_pyramid_tm_commits_a_job_that_returns(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """pyramid_tm commits the job's transaction when it returns."""
    router, cron = make()
    call(router, cron, 'record')
    resource = settings_of(router)['test.resource']
    assert (resource.committed, resource.aborts) == (['recorded'], 0)


def test_a_failing_job_aborts_and_is_reported_once(
        make: Callable[..., tuple[Router, CronApp]],
        sentry_events: list[dict[str, Any]]) -> None:
    """A job that raises: pyramid_tm aborts, the run is recorded failed
    and reported (one Sentry event), the answer is onecron's 500."""
    router, cron = make()
    response = call(router, cron, 'explode')
    assert (response.status_int, response.text) == (
        500, 'Internal Server Error\n')
    assert response.cache_control.no_store
    assert response.headers['X-Onecron-Reported'] == 'failure'
    resource = settings_of(router)['test.resource']
    assert resource.committed == [] and resource.aborts == 1
    assert isinstance(cron.reporter, Failures)
    assert cron.reporter.messages == ['RuntimeError raised']
    assert cron.store is not None
    [run] = cron.store.runs(cron.application_id, 'explode')
    assert run.outcome is Outcome.FAILED
    assert 'the job broke' in (run.error or '')
    assert len(sentry_events) == 1


def test_a_failure_is_reported_once_whatever_the_exception_views(
        make: Callable[..., tuple[Router, CronApp]],
        sentry_events: list[dict[str, Any]]) -> None:
    """The app's catch-all 500 exception view neither replaces onecron's
    answer to a failed job nor reports it again (one Sentry event, with
    Sentry's Pyramid integration on); the transaction is aborted."""
    pages: list[Exception] = []

    def error_page(exc: Exception, request: PyramidRequest) -> Response:
        pages.append(exc)
        return Response('our error page', status=500)

    router, cron = make(setup=lambda config: config.add_exception_view(
        error_page, context=Exception))
    response = call(router, cron, 'explode')
    assert (response.status_int, response.text) == (
        500, 'Internal Server Error\n')
    assert pages == []
    assert len(sentry_events) == 1
    resource = settings_of(router)['test.resource']
    assert resource.committed == [] and resource.aborts == 1
    assert response.status_int in settings_of(router)['test.after']


def test_jobs_need_no_csrf_token_nor_permission(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """An app requiring CSRF tokens and a permission by default still
    lets the job URL run its job (the URL is the credential)."""

    def strict(config: Configurator) -> None:
        config.set_default_csrf_options(require_csrf=True)
        config.set_default_permission('edit')

    router, cron = make(setup=strict)
    assert call(router, cron, 'record').status_int == 200


def test_bad_token_is_a_plain_404_and_status_page_is_at_the_prefix(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """Under the prefix the CronApp answers: the status page to
    loopback, a plain 404 to a forged token."""
    router, _ = make()
    page = Request.blank('/cronjobs/', remote_addr='127.0.0.1').get_response(
        router)
    assert page.status_int == 200 and 'record' in page.text
    assert page.content_type == 'text/html'
    bare = Request.blank('/cronjobs', remote_addr='127.0.0.1').get_response(
        router)
    assert bare.status_int in (301, 302, 303, 307, 308)
    forged = Request.blank('/cronjobs/forged', method='POST').get_response(
        router)
    assert (forged.status_int, forged.text) == (404, 'Not Found\n')
    assert settings_of(router)['test.seen'] == []


def test_ini_strings_are_converted_to_the_keywords_types(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """Settings from an ini file (strings) reach the CronApp typed."""
    other = secrets.token_urlsafe(32)
    _, cron = make({
        'onecron.secret': f'\n{SECRET}\n{other}\n',
        'onecron.application_id': 'ini-app',
        'onecron.allowed_hosts': 'example.org\n.example.net',
        'onecron.max_offset': '7.5', 'onecron.max_application_ids': '12',
        'onecron.pool_size': 'none', 'onecron.keep_runs': '5',
        'onecron.occurrence_tokens': 'yes', 'onecron.static_urls': 'off',
        'onecron.autostart': 'auto', 'onecron.grace': '90',
        'onecron.prefix': '/jobs/'})
    assert cron.secrets == [SECRET, other]
    assert cron.application_id == 'ini-app'
    assert [rule.host for rule in cron.allowed_hosts] == [
        'example.org', 'example.net']
    assert cron.max_offset == 7.5 and cron.max_application_ids == 12
    assert cron.pool_size is None and cron.keep_runs == 5
    assert cron.occurrence_tokens is True and cron.static_urls is False
    assert cron.enabled is False and cron.autostart == 'auto'
    assert cron.grace == 90.0 and cron.prefix == '/jobs'


def test_a_bad_ini_value_names_its_key(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """A value the keyword cannot take fails the include, naming it."""
    with pytest.raises(ConfigurationError,
                       match='onecron.keep_runs must be an integer'):
        make({'onecron.keep_runs': 'many'})
    with pytest.raises(ConfigurationError,
                       match='onecron.enabled must be true or false'):
        make({'onecron.enabled': 'ture'})


@pytest.mark.parametrize('settings', [{}, {'onecron.secret': ' \n '}],
                         ids=['missing', 'blank'])
def test_missing_secret_is_an_error_naming_it(
        settings: dict[str, str]) -> None:
    """Without onecron.secret the include fails and says what to set."""
    config = Configurator(settings={'onecron.base_url': BASE, **settings})
    with pytest.raises(ConfigurationError,
                       match=r'^onecron\.secret is not set'):
        config.include('onecron.pyramid')


def test_a_typo_key_is_an_error_naming_the_nearest(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """An unknown onecron.* key fails, naming it and the key meant."""
    with pytest.raises(ConfigurationError) as error:
        make({'onecron.base_ur': BASE})
    assert str(error.value) == (
        'unknown setting onecron.base_ur; did you mean onecron.base_url?')


def test_a_route_prefix_is_refused_for_the_prefix_setting() -> None:
    """Included with a route_prefix, which would move the routes and
    not the CronApp's prefix, the include fails naming onecron.prefix."""
    config = Configurator(settings={'onecron.secret': SECRET})
    with pytest.raises(ConfigurationError, match=r'onecron\.prefix'):
        config.include('onecron.pyramid', route_prefix='/app')


def test_a_job_name_registered_twice_is_a_conflict(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """Two jobs of one name conflict when the configuration commits."""
    with pytest.raises(ConfigurationConflictError, match='record'):
        make(setup=lambda config: config.add_cronjob(explode, name='record'))


def test_bad_job_keywords_fail_early(
        make: Callable[..., tuple[Router, CronApp]]) -> None:
    """An unknown keyword fails where it is written; a bad schedule
    fails the commit."""
    with pytest.raises(TypeError):
        cronjob(hours=3)
    with pytest.raises(TypeError):
        make(setup=lambda config: config.add_cronjob(record, hours=3))
    with pytest.raises(ConfigurationExecutionError, match='hour'):
        make(setup=lambda config: config.add_cronjob(
            record, name='bad', hour=25))


def test_cronapp_before_commit_says_what_to_do() -> None:
    """cronapp() of a registry without one names the include."""
    config = Configurator(settings={'onecron.secret': SECRET})
    with pytest.raises(OnecronError, match='onecron.pyramid'):
        cronapp(config.registry)


def test_onecron_run_goes_through_pyramid(
        make: Callable[..., tuple[Router, CronApp]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """``onecron run`` on the CronApp itself runs the job through the
    router: the Pyramid request, the tweens, pyramid_tm's commit."""
    router, cron = make()
    assert run_command(cron, ['run', 'record']) == 0
    assert capsys.readouterr().out == 'greeting hello\n'
    settings = settings_of(router)
    [(request, current, tween)] = settings['test.seen']
    assert isinstance(request, PyramidRequest) and current is request
    assert tween == 'in'
    assert settings['test.resource'].committed == ['recorded']
    assert run_command(cron, ['run', 'explode']) == 1
    assert settings['test.resource'].committed == ['recorded']


@pytest.fixture
def served(live_server: Callable[..., LiveServer]
           ) -> Iterator[tuple[LiveServer, list[Any]]]:
    """A live server whose application is set later (its URL first)."""
    app: list[Any] = []
    server = live_server(lambda environ, start_response: app[0](
        environ, start_response))
    yield server, app


def test_scheduler_fires_a_scanned_job_on_a_real_server(
        make: Callable[..., tuple[Router, CronApp]],
        served: tuple[LiveServer, list[Any]]) -> None:
    """Served by waitress, the first request for an allowed host starts
    the scheduler, which fires the job config.scan() found."""
    server, app = served
    router, cron = make({'onecron.enabled': 'true', 'onecron.base_url': '',
                         'onecron.allowed_hosts': f'127.0.0.1:{server.port}'},
                        scan=True)
    app.append(router)
    assert cron.schedulers == {}
    with urllib.request.urlopen(f'{server.url}/', timeout=10) as response:
        assert response.read() == b'home\n'
    assert cron.base_url_of('default') == server.url
    settings = settings_of(router)
    wait_for(lambda: settings['test.seen'], timeout=15)
    request, current, tween = settings['test.seen'][0]
    assert isinstance(request, PyramidRequest) and current is request
    assert tween == 'in'
    assert request.host == f'127.0.0.1:{server.port}'
    store = cron.store
    assert store is not None
    runs = wait_for(lambda: [run for run in store.runs('default', 'scanned')
                             if run.outcome is Outcome.OK])
    assert runs[0].output == 'scanned ran'
