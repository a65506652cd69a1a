"""onecron.django: a Django project's jobs, run through Django itself.

Django is configured once in this process (``settings.configure``, no
logging configuration, the process's time zone untouched) with the test
site of ``tests.django_site``; what needs other settings runs in a
process of its own.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

from onecron import CronApp, Outcome, Trigger
from onecron.stores.sqlite import SqliteStore

from .conftest import LiveServer, wait_for

ROOT = Path(__file__).parent.parent
SECRET = 'the django test site secret, long enough'
JOBS = 'tests.django_site.cronjobs'


@dataclass
class Site:
    """The configured test site."""

    cron: CronApp
    jobs: ModuleType
    store: Path
    #: whether the cronjobs module was imported by Django's start alone
    discovered: bool
    #: a real server of the site (requests to it start the scheduler)
    live: LiveServer

    def path(self, job: str) -> str:
        """The path of ``job``'s signed URL."""
        return urlsplit(self.cron.url_for(f'{JOBS}.{job}',
                                          'http://testserver')).path

    def runs(self, job: str) -> list[Any]:
        with SqliteStore(self.store) as store:
            return sorted(store.runs('django-test', f'{JOBS}.{job}'),
                          key=lambda run: run.id)


@pytest.fixture(scope='module')
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import django
    from django.conf import settings

    if settings.configured:
        pytest.fail('Django was configured before test_django: its tests '
                    'need their own settings', pytrace=False)
    assert JOBS not in sys.modules
    directory = tmp_path_factory.mktemp('django')
    # the server first: the scheduler may learn its address as base URL
    served: list[Any] = []
    server = LiveServer(lambda environ, start_response: served[0](
        environ, start_response))
    try:
        settings.configure(
            DEBUG=False, SECRET_KEY='the django secret key, not onecron\'s',
            ALLOWED_HOSTS=['127.0.0.1'],
            INSTALLED_APPS=['onecron.django', 'tests.django_site'],
            MIDDLEWARE=['tests.django_site.middleware.mark'],
            ROOT_URLCONF='tests.django_site.urls',
            DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3',
                                   'NAME': str(directory / 'db.sqlite')}},
            USE_TZ=True, TIME_ZONE='UTC', LOGGING_CONFIG=None,
            ONECRON={'SECRET': SECRET, 'APPLICATION_ID': 'django-test',
                     'STORE': str(directory / 'runs.sqlite'),
                     'LOCK_DIR': str(directory),
                     'ALLOWED_HOSTS': [f'127.0.0.1:{server.port}']})
        django.setup()
        from django.core.wsgi import get_wsgi_application

        from onecron.django import get_cronapp

        discovered = JOBS in sys.modules
        served.append(get_wsgi_application())
        cron = get_cronapp()
        try:
            yield Site(cron, sys.modules[JOBS], directory / 'runs.sqlite',
                       discovered, server)
        finally:
            cron.stop()
    finally:
        server.close()


@pytest.fixture
def client(site: Site) -> Any:
    from django.test import Client
    return Client()


def test_cronjobs_modules_are_discovered(site: Site) -> None:
    """Django's start imports the apps' cronjobs.py; its jobs register."""
    assert site.discovered
    assert sorted(site.cron.jobs) == [f'{JOBS}.{name}'
                                      for name in ('fail', 'nightly', 'record',
                                                   'tick')]
    assert site.cron.jobs[f'{JOBS}.tick'].schedule is not None


def test_job_gets_the_django_request_through_the_middleware(
        site: Site, client: Any) -> None:
    """The job URL runs the job with Django's HttpRequest, inside the
    middleware; the answer keeps onecron's headers."""
    from django.http import HttpRequest

    path = site.path('record')
    response = client.post(path)
    assert response.status_code == 200
    assert response.content == b'recorded\n'
    assert response['Cache-Control'] == 'no-store'
    assert response['X-Marked'] == 'yes'  # the middleware's way out
    call = site.jobs.CALLS[-1]
    assert isinstance(call['request'], HttpRequest)
    assert call['request'].path == path
    assert call['marked']  # and its way in
    [run] = site.runs('record')
    assert (run.outcome, run.trigger, run.output) == (
        Outcome.OK, Trigger.URL, 'recorded')


def test_request_signals_fire_around_the_job(site: Site,
                                             client: Any) -> None:
    """request_started before the job, request_finished after it."""
    site.jobs.EVENTS.clear()
    assert client.get(site.path('record')).status_code == 200
    assert site.jobs.EVENTS == ['request_started', 'job', 'request_finished']


def test_failing_job_is_reported_without_its_token(
        site: Site, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A job that raises: a 500, a failed run, and no log line (Django's
    own included) that shows its URL."""
    path = site.path('fail')
    token = path.rsplit('/', 1)[1]
    with caplog.at_level(logging.INFO):
        response = client.post(path)
    assert response.status_code == 500
    assert response.content == b'Internal Server Error\n'
    [run] = site.runs('fail')
    assert run.outcome is Outcome.FAILED
    assert 'RuntimeError: the job broke' in (run.error or '')
    assert any('RuntimeError raised' in record.getMessage()
               for record in caplog.records)
    assert not [record for record in caplog.records
                if token in record.getMessage()]


def test_bad_token_is_404_and_never_logged(
        site: Site, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A forged token: 404, the job does not run, Django logs no path."""
    forged = site.path('record')[:-4] + 'AAAA'
    before = len(site.jobs.CALLS)
    with caplog.at_level(logging.INFO):
        assert client.post(forged).status_code == 404
    assert len(site.jobs.CALLS) == before
    assert not [record for record in caplog.records
                if forged in record.getMessage()]


def test_status_page_at_the_include(site: Site, client: Any) -> None:
    """The status page answers at the include's path."""
    response = client.get('/cronjobs/')
    assert response.status_code == 200
    assert f'{JOBS}.record' in response.content.decode()
    response = client.get('/cronjobs/status.json')
    assert response.status_code == 200
    assert response['Content-Type'].startswith('application/json')


def test_include_elsewhere_than_the_prefix_is_an_error(
        site: Site, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The URLs included where the prefix is not: a system check error,
    and the view answers 500 with a log line that says why."""
    from django.core import checks
    from django.test import override_settings

    with override_settings(ROOT_URLCONF='tests.django_site.urls_elsewhere'):
        errors = [message.id for message in checks.run_checks(
            tags=[checks.Tags.urls])]
        assert 'onecron.E002' in errors
        token = site.path('record').rsplit('/', 1)[1]
        before = len(site.jobs.CALLS)
        with caplog.at_level(logging.INFO):
            response = client.post(f'/jobs/{token}')
        assert response.status_code == 500
        assert len(site.jobs.CALLS) == before
        assert any("ONECRON['PREFIX']" in record.getMessage()
                   for record in caplog.records)
        assert not [record for record in caplog.records
                    if token in record.getMessage()]
    with override_settings(ROOT_URLCONF='tests.django_site.urls_without'):
        assert 'onecron.E001' in [message.id for message in
                                  checks.run_checks(tags=[checks.Tags.urls])]
    assert not checks.run_checks(tags=[checks.Tags.urls])


def test_base_url_host_not_allowed_is_a_warning(site: Site) -> None:
    """A BASE_URL whose host Django refuses: a system check warning."""
    from django.core import checks
    from django.test import override_settings

    try:
        with override_settings(ALLOWED_HOSTS=['.example.org', '[::1]']):
            for base_url, warned in [('http://127.0.0.1:8000', True),
                                     ('https://www.example.org', False),
                                     ('http://[::1]:8000/', False)]:
                site.cron.base_url = base_url
                found = [message.id for message in checks.run_checks()]
                assert ('onecron.W001' in found) is warned, base_url
    finally:
        site.cron.base_url = None


def test_asgi_request_is_a_clear_error(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """Served through ASGI: a 500 and a log line that says why, no run."""
    import asyncio

    from django.test import AsyncClient

    path = site.path('record')
    before = len(site.jobs.CALLS)
    with caplog.at_level(logging.INFO):
        response = asyncio.run(AsyncClient().post(path))
    assert response.status_code == 500
    assert b'needs a WSGI server' in response.content
    assert len(site.jobs.CALLS) == before
    assert any('WSGI requests only' in record.getMessage()
               for record in caplog.records)
    assert not [record for record in caplog.records
                if path in record.getMessage()]


# -- a real server ----------------------------------------------------------

def test_first_allowed_request_starts_the_scheduler(site: Site) -> None:
    """A request for an allowed host starts the scheduler (the test
    client's 'testserver' did not); it fires the job through Django, with
    an HttpRequest."""
    from django.http import HttpRequest

    assert site.cron.base_url_of('django-test') is None  # not yet
    assert with_status(f'{site.live.url}/') == 200
    assert site.cron.base_url_of('django-test') == site.live.url
    wait_for(lambda: site.jobs.TICKS, timeout=15)
    assert isinstance(site.jobs.TICKS[0], HttpRequest)
    runs = wait_for(lambda: [run for run in site.runs('tick')
                             if run.trigger is Trigger.SCHEDULER
                             and run.outcome is Outcome.OK])
    assert runs[0].output == 'ticked'
    site.cron.stop()


def test_database_connection_closed_after_the_job(site: Site) -> None:
    """Served for real, the job's database connection is closed after
    it, as a view's is (request_finished)."""
    request = urllib.request.Request(site.live.url + site.path('record'),
                                     data=b'', method='POST')
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b'recorded\n'
    call = site.jobs.CALLS[-1]
    assert call['connected']  # the job's query opened it
    wait_for(lambda: call['database'].connection is None)


def with_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        status: int = response.status
        return status


# -- manage.py onecron ------------------------------------------------------
# last: ``run`` stops the CronApp, as the onecron command does

def test_command_list_history_status(site: Site) -> None:
    """call_command('onecron', ...) runs the onecron commands."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command('onecron', 'list', stdout=out)
    assert f'{JOBS}.record' in out.getvalue()
    assert f'{JOBS}.tick' in out.getvalue()
    out = io.StringIO()
    call_command('onecron', 'history', f'{JOBS}.fail', stdout=out)
    assert 'failed' in out.getvalue().lower()
    out = io.StringIO()
    call_command('onecron', 'status', '--json', stdout=out)
    assert '"django-test"' in out.getvalue()
    out = io.StringIO()
    call_command('onecron', 'export', 'kubernetes', '--base-url',
                 'https://example.org', stdout=out)
    assert 'kind: CronJob' in out.getvalue()


def test_command_run_goes_through_django(site: Site) -> None:
    """manage.py onecron run: the job runs with an HttpRequest, through
    the middleware; a failing job raises CommandError with status 1."""
    from django.core.management import CommandError, call_command
    from django.http import HttpRequest

    out = io.StringIO()
    call_command('onecron', 'run', f'{JOBS}.record', stdout=out)
    assert out.getvalue() == 'recorded\n'
    call = site.jobs.CALLS[-1]
    assert isinstance(call['request'], HttpRequest) and call['marked']
    assert site.runs('record')[-1].trigger is Trigger.MANUAL
    with pytest.raises(CommandError) as failed:
        call_command('onecron', 'run', f'{JOBS}.fail', stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert failed.value.returncode == 1


# -- other settings: processes of their own ------------------------------

def clean_environ(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(('ONECRON_', 'DJANGO_', 'EXAMPLE_'))
           and name not in ('RUN_MAIN', 'WERKZEUG_RUN_MAIN')}
    return env | extra


def set_up(onecron: str, tmp_path: Path, then: str = '',
           allowed_hosts: str = '[]') -> subprocess.CompletedProcess[str]:
    """Configure Django with ``ONECRON = <onecron>`` in a process, then
    run the code ``then``."""
    script = textwrap.dedent(f'''
        import django
        from django.conf import settings
        settings.configure(SECRET_KEY='the django key', LOGGING_CONFIG=None,
                           INSTALLED_APPS=['onecron.django'],
                           ALLOWED_HOSTS={allowed_hosts},
                           ONECRON={onecron})
        django.setup()
        print('set up')
    ''') + then
    return subprocess.run([sys.executable, '-c', script], cwd=tmp_path,
                          env=clean_environ(PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize(('onecron', 'message'), [
    ("{'BASE_URL': 'https://example.org'}",
     ("ONECRON['SECRET'] is missing: set it to a long random string of its "
      "own, not SECRET_KEY")),
    ("{'SECRET': 'a secret of its own, long enough', 'BASEURL': 'x'}",
     ("ONECRON['BASEURL'] is no onecron setting: did you mean "
      "ONECRON['BASE_URL']?")),
    ("{'SECRET': 'the django key'}", "ONECRON['SECRET'] is SECRET_KEY"),
    ('None', 'settings.ONECRON must be a dict'),
    ("{'SECRET': 'a secret of its own, long enough'}",
     ("settings.ONECRON: allowed_hosts entry '*.example.org' is not a host "
      "name or IP address with an optional port (such as \"example.org\", "
      "\".example.org\" or \"127.0.0.1:8080\") (taken from Django's "
      "ALLOWED_HOSTS: set ONECRON['ALLOWED_HOSTS']")),
    (("{'SECRET': 'a secret of its own, long enough', 'PREFIX': 'jobs', "
      "'ALLOWED_HOSTS': []}"),
     'settings.ONECRON: prefix must start with "/"'),
], ids=['no-secret', 'typo', 'secret-key', 'no-dict', 'bad-host',
        'bad-value'])
def test_bad_settings_stop_django_start(onecron: str, message: str,
                                        tmp_path: Path) -> None:
    """Wrong ONECRON settings: ImproperlyConfigured naming the key."""
    done = set_up(onecron, tmp_path, allowed_hosts="['*.example.org']")
    assert done.returncode == 1, done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith('django.core.exceptions.ImproperlyConfigured: '
                           + message), done.stderr


def test_allowed_hosts_default_to_djangos(tmp_path: Path) -> None:
    """Without ONECRON['ALLOWED_HOSTS'] or a base URL, the scheduler learns
    from Django's ALLOWED_HOSTS on their default port, never from '*'."""
    done = set_up(
        "{'SECRET': 'a secret of its own, long enough'}", tmp_path,
        then=('from onecron.django import get_cronapp\n'
              'for rule in get_cronapp().allowed_hosts: print(*rule)\n'),
        allowed_hosts="['.example.org', '*', '127.0.0.1']")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'set up', 'example.org None True', '127.0.0.1 None False']


def test_import_needs_no_settings(tmp_path: Path) -> None:
    """``from onecron.django import cronjob`` works before settings exist."""
    script = ('from onecron.django import cronjob\n'
              'from django.conf import settings\n'
              'assert not settings.configured\n'
              "print('imported')\n")
    done = subprocess.run([sys.executable, '-c', script], cwd=tmp_path,
                          env=clean_environ(PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout) == (0, 'imported\n'), done.stderr


def test_manage_py_onecron(tmp_path: Path) -> None:
    """``python manage.py onecron ...`` from the command line: the
    example's jobs, onecron's errors and exit statuses."""
    manage = [sys.executable, '-m', 'example_app.django_app.manage']
    env = clean_environ(EXAMPLE_DJANGO_DB=str(tmp_path / 'db.sqlite'),
                        ONECRON_STORE=str(tmp_path / 'runs.sqlite'),
                        ONECRON_LOCK_DIR=str(tmp_path),
                        ONECRON_SECRET='a manage.py test secret, long enough')
    done = subprocess.run([*manage, 'onecron', 'list'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert 'example_app.django_app.cronjobs.forget_old_visits' in done.stdout
    done = subprocess.run([*manage, 'onecron', 'run', 'no.such.job'],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == ("onecron: error: no job named 'no.such.job'; "
                           'manage.py onecron has 1 job: example_app.'
                           'django_app.cronjobs.forget_old_visits\n')
