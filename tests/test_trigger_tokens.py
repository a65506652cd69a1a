"""Runs outside the schedule with static URLs off: run now, ``run_soon``,
``then=`` chains and ``onecron run`` call a URL made for that one run,
which runs only near its time, for its application id, and for a caller
that sends the run's key."""

from __future__ import annotations

import http.cookiejar
import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer
from webob import Request, Response

from onecron import CronApp
from onecron.cli import main
from onecron.protocol.headers import RUN_HEADER
from onecron.stores.base import Outcome, Trigger

from .conftest import Clock, wait_for

SECRET = 'test-secret'
BASE = 'http://example.org'
NOW = datetime(2024, 5, 6, 8, 30, 12, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sealed(tmp_path: Path, clock: Clock) -> Iterator[CronApp]:
    """An app with static URLs off, a store and a clock the test moves."""
    app = CronApp(secret=SECRET, enabled=False, base_url=BASE, clock=clock,
                  occurrence_tokens=True, static_urls=False,
                  lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs.sqlite'))
    app.cronjob(name='job')(lambda request: 'done')
    yield app
    app.stop()


def trigger_path(app: CronApp, key: str, *, due: datetime = NOW,
                 trigger: Trigger = Trigger.SOON,
                 application_id: str = 'default') -> str:
    return app._trigger_url('job', BASE, application_id, trigger, key,
                            due).removeprefix(BASE)


def call(app: CronApp, path: str, key: str | None = None) -> Response:
    headers = {RUN_HEADER: key} if key else {}
    response: Response = Request.blank(path, method='POST', base_url=BASE,
                                       headers=headers).get_response(app)
    return response


def test_a_trigger_url_runs_with_its_key(sealed: CronApp) -> None:
    """Called with its key, the URL runs the job as the run it was made
    for: its trigger, its key, no nominal time."""
    path = trigger_path(sealed, 'k1', trigger=Trigger.CHAIN)
    assert path.startswith('/cronjobs/t/')
    response = call(sealed, path, key='k1')
    assert (response.status_int, response.text) == (200, 'done\n')
    assert sealed.store is not None
    [run] = sealed.store.runs('default', 'job')
    assert (run.trigger, run.key, run.scheduled, run.outcome) == (
        Trigger.CHAIN, 'k1', None, Outcome.OK)


def test_without_its_key_a_trigger_url_runs_nothing(sealed: CronApp) -> None:
    """The key is not in the URL (a token is signed, not encrypted): a URL
    copied from an access log, called without the header or with another
    key, gets 403 and nothing runs."""
    path = trigger_path(sealed, 'the-secret-key')
    # what anyone can read of the token, without the secret
    _, payload = URLSafeSerializer('not the secret').loads_unsafe(
        path.rsplit('/', 1)[1])
    assert payload[0] == 'job' and 'the-secret-key' not in json.dumps(payload)
    assert call(sealed, path).status_int == 403
    assert call(sealed, path, key='another').status_int == 403
    assert sealed.store is not None
    assert sealed.store.runs('default', 'job') == []


def test_a_trigger_url_runs_only_near_its_time(sealed: CronApp,
                                               clock: Clock) -> None:
    """Within occurrence_window of when its call was due, not after or
    long before."""
    window = timedelta(seconds=sealed.occurrence_window)
    path = trigger_path(sealed, 'k')
    clock.now = NOW + window + timedelta(seconds=2)
    assert call(sealed, path, key='k').status_int == 403
    clock.now = NOW - window - timedelta(seconds=2)
    assert call(sealed, path, key='k').status_int == 403
    clock.now = NOW + window - timedelta(seconds=2)
    assert call(sealed, path, key='k').status_int == 200


@pytest.mark.parametrize('mangle', [
    lambda app, path: path[:-3],  # truncated
    lambda app, path: path[:-1] + ('A' if path[-1] != 'A' else 'B'),
    lambda app, path: path.replace('/t/', '/o/'),  # not an occurrence
    lambda app, path: '/cronjobs/t/' + app._signer.token_for('job'),
    lambda app, path: '/cronjobs/t/' + app._fire_url(
        'job', BASE, 'default', NOW).rsplit('/', 1)[1],
    lambda app, path: trigger_path(app, 'k', application_id='other'),
], ids=['truncated', 'tampered', 'at the occurrence path', 'static token',
        'occurrence token', 'another application id'])
def test_other_tokens_get_404(sealed: CronApp,
                              mangle: Callable[[CronApp, str], str]) -> None:
    assert call(sealed, mangle(sealed, trigger_path(sealed, 'k')),
                key='k').status_int == 404


def test_with_static_urls_a_trigger_is_the_static_url(tmp_path: Path) -> None:
    app = CronApp(secret=SECRET, enabled=False, lock_dir=str(tmp_path))
    app.cronjob(name='job')(lambda request: None)
    assert app._trigger_url('job', BASE, 'default', Trigger.SOON, 'k',
                            NOW) == app.url_for('job', BASE)


@pytest.fixture
def served(tmp_path: Path, live_server: Any) -> Iterator[CronApp]:
    """An app with static URLs off on a real server, without a clock."""
    app = CronApp(secret=SECRET, enabled=False, occurrence_tokens=True,
                  static_urls=False, lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs.sqlite'))
    app.base_url = live_server(app).url
    yield app
    app.stop()


def finished(app: CronApp, job: str) -> list[tuple[Trigger, Outcome | None]]:
    assert app.store is not None
    return [(run.trigger, run.outcome) for run in app.store.runs(
        'default', job) if not run.running]


def test_run_soon_and_chains_run_with_static_urls_off(
        served: CronApp) -> None:
    """Over HTTP: run_soon runs its job, whose then= runs the next."""
    seen: list[str] = []
    served.cronjob(name='first', then=['second'])(
        lambda request: seen.append(request.path_info))
    served.cronjob(name='second')(
        lambda request: seen.append(request.path_info))
    served.run_soon('first', delay=0.2)
    wait_for(lambda: finished(served, 'second'))
    assert len(seen) == 2
    assert all(path.startswith('/cronjobs/t/') for path in seen)
    assert finished(served, 'first') == [(Trigger.SOON, Outcome.OK)]
    assert finished(served, 'second') == [(Trigger.CHAIN, Outcome.OK)]


def test_run_now_on_the_status_page_with_static_urls_off(
        served: CronApp) -> None:
    """The page's "run now" form, posted over HTTP with its CSRF token."""
    served.cronjob(name='job')(lambda request: 'ran')
    cookies = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(cookies))
    assert served.base_url is not None
    with browser.open(served.base_url + '/cronjobs/') as page:
        html = page.read().decode()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert csrf is not None
    form = urllib.parse.urlencode({'csrf': csrf[1], 'job': 'job',
                                   'application_id': 'default'})
    with browser.open(served.base_url + '/cronjobs/control/run-now',
                      data=form.encode()) as answer:
        assert answer.status == 200
    wait_for(lambda: finished(served, 'job'))
    assert finished(served, 'job') == [(Trigger.MANUAL, Outcome.OK)]


def test_onecron_run_with_static_urls_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``onecron run`` runs the job in-process through a trigger URL and
    records it as a manual run."""
    store = tmp_path / 'runs.sqlite'
    (tmp_path / 'sealed_app.py').write_text(
        'from onecron import CronApp\n'
        "app = CronApp(secret='s', occurrence_tokens=True, static_urls=False,"
        f' store={str(store)!r}, lock_dir={str(tmp_path)!r})\n'
        "@app.cronjob(minute=0, name='job')\n"
        'def job(request):\n'
        "    return 'ran: ' + request.path_info.split('/')[2]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(['run', 'sealed_app:app', 'job']) == 0
        app = sys.modules['sealed_app'].app
    finally:
        sys.modules.pop('sealed_app', None)
    assert capsys.readouterr().out == 'ran: t\n'
    [run] = app.store.runs('default', 'job')
    assert (run.trigger, run.outcome) == (Trigger.MANUAL, Outcome.OK)
    assert run.key
