"""CronApp as a composition root: settings objects, the Operations
component, and the promises the old keywords and attributes keep."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from webob import Request

import onecron.web.status.model
import onecron.web.status.page
from onecron import CronApp
from onecron.job import DEFAULTS, SCHEDULE_KEYWORDS, Job, JobOptions, claim
from onecron.morepath import CronjobAction
from onecron.operations import Operations
from onecron.running.caller import Caller
from onecron.schedule.rules import Schedule
from onecron.settings import (
    CallSettings,
    JobUrls,
    MisfireSettings,
    Retention,
    SchedulerSettings,
    StatusPageSettings,
)
from onecron.stores.base import JobSettings, Store, StoreError
from onecron.web.status.model import collect
from onecron.web.status.page import StatusPage

from .test_status import Client

SECRET = 'a-test-secret-long-enough-to-pass-the-check'

#: CronApp's keywords and defaults as of 5b16683, before the settings
#: objects: each must stay, with its default
KEYWORDS = {
    'secret': inspect.Parameter.empty, 'application_id': 'default',
    'base_url': None, 'allowed_hosts': (), 'max_application_ids': 10_000,
    'prefix': '/cronjobs', 'lock_dir': None, 'enabled': True,
    'autostart': 'auto', 'slow_after': 30.0, 'max_offset': 30.0,
    'trigger_timeout': 3600.0, 'connect_timeout': 10.0,
    'max_concurrent': 16, 'pool_size': None, 'store': None,
    'keep_runs': 1000, 'keep_days': 90, 'status_access': 'loopback',
    'status_user': None, 'status_password_hash': None,
    'trusted_proxies': (), 'job_access': 'any', 'occurrence_tokens': False,
    'occurrence_window': 300.0, 'static_urls': True, 'smtp': None,
    'misfire': 'once', 'grace': None, 'lease_time': 30.0, 'clock': None,
    'caller': None, 'reporter': None}

#: CronApp's public attributes and methods as of 5b16683 and its Controls
PUBLIC = [
    'add_job', 'allowed_hosts', 'application_id', 'application_id_of',
    'autostart', 'base_url', 'base_url_of', 'caller', 'check', 'clock',
    'cronjob', 'enabled', 'grace', 'history', 'job_access', 'jobs',
    'keep_days', 'keep_runs', 'lease_time', 'lock_dir', 'mailer',
    'max_application_ids', 'max_offset', 'misfire', 'occurrence_tokens',
    'occurrence_window', 'pool_size', 'prefix', 'reporter', 'schedulers',
    'secrets', 'slow_after', 'start', 'static_urls', 'status_access',
    'status_password_hash', 'status_user', 'stop', 'store',
    'trigger_timeout', 'trusted_proxies', 'url_for', 'wrapped',
    'pool_for', 'run_soon', 'application_ids', 'schedule_of', 'next_run',
    'scheduler_info', 'set_enabled', 'override_schedule', 'hold',
    'release']


def make(**options: Any) -> CronApp:
    return CronApp(secret=SECRET, enabled=False, **options)


def test_every_earlier_keyword_is_still_taken_with_its_default() -> None:
    """Every CronApp keyword of the earlier signature is still there,
    keyword-only, with the same default."""
    parameters = inspect.signature(CronApp).parameters
    assert list(parameters)[0] == 'wrapped'
    for name, default in KEYWORDS.items():
        assert name in parameters, name
        parameter = parameters[name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        if name == 'clock':
            assert callable(parameter.default)
        else:
            assert parameter.default == default, name


def test_every_earlier_attribute_and_method_is_still_there() -> None:
    """Every public attribute and method of the earlier CronApp (and its
    Controls mixin) is there, on the class or on an instance."""
    app = make()
    missing = [name for name in PUBLIC if not hasattr(app, name)]
    assert missing == []
    assert app.run_soon.__doc__ and 'delay' in inspect.signature(
        app.run_soon).parameters


@pytest.mark.parametrize('settings', [
    JobUrls(), StatusPageSettings(), CallSettings(), Retention(),
    MisfireSettings(), SchedulerSettings()])
def test_settings_objects_are_frozen(settings: object) -> None:
    """A settings object cannot change once made: a part that took it
    keeps the value every other part has."""
    field = dataclasses.fields(settings)[0]  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, field.name, getattr(settings, field.name))


@pytest.mark.parametrize(('make_settings', 'keyword'), [
    (lambda: JobUrls(prefix='cron'), 'prefix'),
    (lambda: JobUrls(prefix='/'), 'prefix'),
    (lambda: JobUrls(occurrence_window=0), 'occurrence_window'),
    (lambda: JobUrls(occurrence_window=True), 'occurrence_window'),
    (lambda: JobUrls(static_urls=False), 'static_urls'),
    (lambda: JobUrls(occurrence_tokens=1), 'occurrence_tokens'),
    (lambda: JobUrls(job_access='everyone'), 'job_access'),
    (lambda: JobUrls(trusted_proxies='10.0.0.1'), 'trusted_proxies'),
    (lambda: StatusPageSettings(access='anyone'), 'status_access'),
    (lambda: StatusPageSettings(user=b'x'), 'status_user'),
    (lambda: CallSettings(trigger_timeout=0), 'trigger_timeout'),
    (lambda: CallSettings(connect_timeout=-1), 'connect_timeout'),
    (lambda: CallSettings(slow_after=float('nan')), 'slow_after'),
    (lambda: CallSettings(max_concurrent=0), 'max_concurrent'),
    (lambda: CallSettings(pool_size=0), 'pool_size'),
    (lambda: CallSettings(caller=Caller(), max_concurrent=4),
     'max_concurrent'),
    (lambda: Retention(keep_runs=0), 'keep_runs'),
    (lambda: Retention(keep_days=-1), 'keep_days'),
    (lambda: MisfireSettings(misfire='twice'), 'misfire'),
    (lambda: MisfireSettings(grace=0), 'grace'),
    (lambda: SchedulerSettings(lease_time=0), 'lease_time'),
    (lambda: SchedulerSettings(autostart='yes'), 'autostart'),
])
def test_settings_check_themselves_naming_the_keyword(
        make_settings: Callable[[], object], keyword: str) -> None:
    """A settings object checks its values when made; the error names the
    CronApp keyword that was wrong."""
    with pytest.raises((ValueError, TypeError), match=keyword):
        make_settings()


@pytest.mark.parametrize(('keyword', 'value'), [
    ('prefix', 'cron'), ('occurrence_window', -1), ('job_access', 'all'),
    ('status_access', 'all'), ('trigger_timeout', 0), ('pool_size', 0),
    ('keep_runs', 0), ('misfire', 'twice'), ('lease_time', 0),
    ('autostart', 'yes'), ('max_offset', -1), ('max_application_ids', 0),
    ('slow_after', 0), ('trusted_proxies', '10.0.0.1'),
    ('allowed_hosts', 'example.com')])
def test_cronapp_refuses_a_bad_keyword_naming_it(keyword: str,
                                                  value: object) -> None:
    """CronApp(...) refuses a bad value of each keyword, naming it."""
    with pytest.raises((ValueError, TypeError), match=keyword):
        make(**{keyword: value})


def test_caller_with_max_concurrent_is_refused() -> None:
    """A given Caller with max_concurrent: ValueError, not ignored."""
    caller = Caller()
    try:
        with pytest.raises(ValueError, match='max_concurrent'):
            make(caller=caller, max_concurrent=2)
    finally:
        caller.close()


@pytest.mark.parametrize(('name', 'bad'), [
    ('base_url', 'ftp://example.com'), ('allowed_hosts', ['no such host']),
    ('max_application_ids', 0), ('max_offset', -1), ('misfire', 'twice'),
    ('grace', -5)])
def test_live_settings_are_checked_on_every_change(name: str,
                                                   bad: object) -> None:
    """A setting that may change after construction is checked when it
    changes, as the keyword is, and keeps its value when refused."""
    app = make(base_url='http://127.0.0.1:9')
    before = getattr(app, name)
    with pytest.raises((ValueError, TypeError)):
        setattr(app, name, bad)
    assert getattr(app, name) == before


def test_allowed_hosts_set_later_are_used_as_given(apps: list[CronApp],
                                                   tmp_path: Path) -> None:
    """allowed_hosts set after construction is parsed as the keyword is,
    and a request for such a host then starts its scheduler."""
    app = CronApp(secret=SECRET, lock_dir=str(tmp_path), autostart=False)
    apps.append(app)
    app.allowed_hosts = ['example.com']
    Request.blank('http://other.example/').get_response(app)
    assert 'default' not in app.schedulers
    Request.blank('http://example.com/').get_response(app)
    assert app.base_url_of('default') == 'http://example.com'
    assert 'default' in app.schedulers


def test_jobs_take_the_defaults_in_force_when_registered() -> None:
    """misfire, grace and max_offset set after construction are the
    defaults of the jobs registered afterwards."""
    app = make()
    app.misfire, app.grace, app.max_offset = 'all', 60, 5.0
    app.cronjob('* * * * *', name='job')(lambda request: None)
    job = app.jobs['job']
    assert (job.misfire, job.grace, job.max_offset) == (
        'all', timedelta(seconds=60), 5.0)


def test_static_urls_off_is_refused_everywhere() -> None:
    """static_urls=False: url_for refuses, the endpoint refuses a static
    URL (404) and the setting cannot be turned back on behind them."""
    ran = []
    app = make(base_url='http://127.0.0.1:9', occurrence_tokens=True,
               static_urls=False)
    app.cronjob(name='job')(lambda request: ran.append(1))
    with pytest.raises(Exception, match='static URLs are off'):
        app.url_for('job')
    token = app.operations.signer.token_for('job', 'default')
    response = Request.blank(f'/cronjobs/{token}').get_response(app)
    assert response.status_int == 404
    with pytest.raises(AttributeError, match='static_urls'):
        app.static_urls = True  # type: ignore[misc]
    assert ran == []


def test_slow_after_is_read_only_and_what_the_endpoint_uses() -> None:
    """slow_after cannot change behind the endpoint: setting it raises,
    and the app shows the value its settings carry."""
    app = make(slow_after=12.5)
    with pytest.raises(AttributeError, match=r'CronApp\(slow_after=\.\.\.'):
        app.slow_after = 1.0  # type: ignore[misc]
    assert app.slow_after == 12.5 == app._endpoint._slow_after


def test_job_options_are_declared_once() -> None:
    """cronjob(), the Morepath directive and Job take the same options,
    with the defaults of JobOptions (a Job made by hand defaults to
    misfire='once', cronjob() to the app's)."""
    options = {field.name: getattr(DEFAULTS, field.name)
               for field in dataclasses.fields(JobOptions)}

    def keywords(func: Callable[..., Any], skip: tuple[str, ...]
                 ) -> dict[str, Any]:
        return {name: parameter.default for name, parameter
                in inspect.signature(func).parameters.items()
                if name not in skip}

    cronjob = keywords(CronApp.cronjob, ('self',))
    directive = keywords(CronjobAction.__init__, ('self',))
    job = keywords(Job.__init__, ('self', 'name', 'func', 'schedule',
                                  'max_offset', 'check_signature'))
    assert cronjob == directive
    assert list(cronjob) == [*SCHEDULE_KEYWORDS, 'name', *options]
    assert {name: cronjob[name] for name in options} == options
    assert job == {**options, 'misfire': 'once'}
    # the hints too: the integrations read them
    assert inspect.signature(CronApp.cronjob).parameters['then'] \
        .annotation == inspect.signature(Job.__init__).parameters[
            'then'].annotation


class _History:
    """A run history whose store's claim answers ``won``."""

    def __init__(self, won: bool | Exception, coordinates: bool) -> None:
        self.won = won
        self.store: Any = type('S', (), {'coordinates': coordinates})()

    def read(self, query: Callable[[Store], Any], default: Any) -> Any:
        if isinstance(self.won, Exception):
            return default  # as History does on a StoreError
        return self.won


@pytest.mark.parametrize(('won', 'coordinates', 'verdict'), [
    (True, True, True), (False, True, False), (False, False, False),
    (StoreError('down'), True, None), (StoreError('down'), False, True)])
def test_one_claim_policy(won: bool | Exception, coordinates: bool,
                          verdict: bool | None) -> None:
    """claim(): won runs, lost does not; a shared store that fails
    allows no run (None), the host's own store that fails does."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    history = _History(won, coordinates)
    assert claim(history, 'default', 'job', now, 'k', now) is verdict


def test_no_store_no_claim() -> None:
    """Without a store every occurrence may run."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    history = _History(False, True)
    history.store = None
    assert claim(history, 'default', 'job', now, 'k', now) is True


def test_a_bad_override_falls_back_to_the_code_schedule() -> None:
    """Job.schedule_in_force: a bad override gives the code's schedule
    and is handed to the reporter; a good one is in force."""
    job = Job('job', lambda request: None, Schedule('0 8 * * *'))
    told: list[ValueError] = []
    assert job.schedule_in_force(JobSettings(schedule='not cron'),
                                 told.append) is job.schedule
    assert len(told) == 1
    good = job.schedule_in_force(JobSettings(schedule='0 9 * * *'),
                                 told.append)
    assert str(good) == '0 9 * * *' and len(told) == 1


def test_the_status_page_works_from_operations(tmp_path: Path) -> None:
    """The status page and collect() take the Operations component: the
    page lists the jobs, and its controls switch them through it."""
    app = make(store=str(tmp_path / 'runs.db'), base_url='http://x.test')
    app.cronjob('0 8 * * *', name='morning')(lambda request: None)
    operations = app.operations
    assert isinstance(operations, Operations)
    status = collect(operations, 'default')
    assert [job.name for job in status.jobs] == ['morning']
    client = Client(StatusPage(operations))  # type: ignore[arg-type]
    page = client.get('/cronjobs/')
    assert page.status_int == 200 and 'morning' in page.text
    response = client.post('disable', job='morning',
                           application_id='default')
    assert response.status_int == 303
    assert app.store is not None
    assert not app.store.job_settings('default')['morning'].enabled


@pytest.mark.parametrize('module', [onecron.web.status.page,
                                    onecron.web.status.model])
def test_the_status_page_imports_no_cronapp(module: Any) -> None:
    """The status page depends on Operations, not on CronApp, even for
    type checking."""
    tree = ast.parse(inspect.getsource(module))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)}
    assert 'onecron.app' not in imported
    assert 'onecron.operations' in imported


@pytest.mark.parametrize('name', ['urls', 'calls', 'status', 'signer',
                                  'secrets'])
def test_operations_settings_cannot_be_swapped(name: str) -> None:
    """The Operations component shows its settings read-only: the
    endpoint and the status page took the same objects, and must not be
    left with others."""
    operations = make().operations
    with pytest.raises(AttributeError):
        setattr(operations, name, getattr(operations, name))
