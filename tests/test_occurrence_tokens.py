"""Occurrence URLs, in process with a real SQLite store: they run their
occurrence once, near its time, for their application id only; static URLs
can be turned off."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from webob import Request, Response

from onecron import CronApp, OnecronError
from onecron.protocol.headers import RUN_HEADER
from onecron.stores.base import Outcome, Trigger

from .conftest import Clock

SECRET = 'test-secret'
BASE = 'http://example.org'
OCCURRENCE = datetime(2024, 5, 6, 8, 30, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock(OCCURRENCE + timedelta(seconds=12))


@pytest.fixture
def runs() -> list[str]:
    """The hosts of the requests the job ran in."""
    return []


@pytest.fixture
def make_app(tmp_path: Path, clock: Clock,
             runs: list[str]) -> Callable[..., CronApp]:
    """CronApps with occurrence tokens, sharing one SQLite store."""
    def job(request: Request) -> str:
        runs.append(request.domain)
        return 'done'

    def make(**options: Any) -> CronApp:
        settings: dict[str, Any] = {
            'secret': SECRET, 'enabled': False, 'base_url': BASE,
            'occurrence_tokens': True, 'clock': clock,
            'lock_dir': str(tmp_path),
            'store': str(tmp_path / 'runs.sqlite')}
        app = CronApp(**(settings | options))
        app.cronjob(minute=30, name='job')(job)
        return app

    return make


def fire_path(app: CronApp, application_id: str = 'default',
              occurrence: datetime = OCCURRENCE, name: str = 'job') -> str:
    return app._fire_url(name, BASE, application_id,
                         occurrence).removeprefix(BASE)


def call(app: CronApp, path: str, key: str | None = None,
         **options: Any) -> Response:
    headers = {RUN_HEADER: key} if key else {}
    options.setdefault('base_url', BASE)
    response: Response = Request.blank(
        path, method='POST', headers=headers, **options).get_response(app)
    return response


def test_an_occurrence_url_runs_its_occurrence_once(
        runs: list[str], make_app: Callable[..., CronApp]) -> None:
    """The first call runs the job as a scheduled run of the occurrence;
    calls after it, with or without a key of their own, get 409."""
    app = make_app()
    path = fire_path(app)
    assert path.startswith('/cronjobs/o/')
    first = call(app, path, key='k1')
    assert first.status_int == 200 and first.text == 'done\n'
    for key in (None, 'k2'):
        again = call(app, path, key=key)
        assert again.status_int == 409
    assert runs == ['example.org']
    assert app.store is not None
    [run] = app.store.runs('default', 'job')
    assert run.trigger is Trigger.SCHEDULER and run.outcome is Outcome.OK
    assert run.scheduled == OCCURRENCE and run.key == 'k1'


def test_the_schedulers_own_claim_lets_its_call_run(
        runs: list[str], make_app: Callable[..., CronApp],
        clock: Clock) -> None:
    """The scheduler claims before it calls (in the job's zone): its
    call, carrying the key of the claim, runs; a call with a leaked URL
    and another key gets 409 and runs nothing."""
    app = make_app()
    assert app.store is not None
    zoned = OCCURRENCE.astimezone(ZoneInfo('Europe/Zurich'))
    assert app.store.claim('default', 'job', zoned, key='scheduler',
                           now=clock())
    path = fire_path(app, occurrence=zoned)
    assert call(app, path).status_int == 409
    assert call(app, path, key='thief').status_int == 409
    assert runs == []
    assert call(app, path, key='scheduler').status_int == 200
    assert runs == ['example.org']


@pytest.mark.parametrize('seconds', [-301, 301, 86400],
                         ids=['too-early', 'too-late', 'next-day'])
def test_outside_its_window_it_is_403(runs: list[str],
                                      make_app: Callable[..., CronApp],
                                      clock: Clock, seconds: int) -> None:
    """Out of the window around its occurrence (and its making) an
    occurrence URL gets 403: nothing runs, nothing is claimed or kept."""
    app = make_app(occurrence_window=300)
    clock.now = OCCURRENCE
    path = fire_path(app)
    clock.now = OCCURRENCE + timedelta(seconds=seconds)
    response = call(app, path, key='k')
    assert response.status_int == 403
    assert runs == []
    assert app.store is not None
    assert app.store.runs('default') == []
    assert app.store.claimed('default', 'job', OCCURRENCE,
                             OCCURRENCE) == set()


def test_a_missed_occurrence_caught_up_late_runs(
        runs: list[str], make_app: Callable[..., CronApp],
        clock: Clock) -> None:
    """An occurrence caught up an hour late runs: the window counts from
    the moment its URL was made."""
    app = make_app(occurrence_window=60)
    clock.now = OCCURRENCE + timedelta(hours=1)
    path = fire_path(app)
    clock.now += timedelta(seconds=30)
    assert call(app, path).status_int == 200
    assert runs == ['example.org']


def test_another_application_ids_url_runs_nothing(
        runs: list[str], make_app: Callable[..., CronApp]) -> None:
    """A URL made for tenant a, called on tenant b's host, is a plain 404;
    on tenant a's host it runs."""
    app = make_app(application_id=lambda request: request.domain.split('.')[0])
    path = fire_path(app, application_id='a')
    response = call(app, path, base_url='http://b.example.org')
    assert response.status_int == 404 and response.text == 'Not Found\n'
    assert runs == []
    assert call(app, path, base_url='http://a.example.org').status_int == 200
    assert runs == ['a.example.org']


def test_the_two_kinds_of_token_do_not_mix(
        runs: list[str], make_app: Callable[..., CronApp]) -> None:
    """A static token under /o/ and an occurrence token where a static one
    goes are both plain 404s."""
    app = make_app()
    static = app.url_for('job').removeprefix(BASE)
    occurrence = fire_path(app)
    token = occurrence.rsplit('/', 1)[1]
    for path in ('/cronjobs/o/' + static.rsplit('/', 1)[1],
                 '/cronjobs/' + token, '/cronjobs/o/', '/cronjobs/o',
                 '/cronjobs/x/' + token, occurrence + '/more'):
        assert call(app, path).status_int == 404, path
    assert runs == []


def test_other_methods_on_an_occurrence_url_run_nothing(
        make_app: Callable[..., CronApp]) -> None:
    """HEAD, PUT and the like get 405 and do not use up the occurrence."""
    app = make_app()
    path = fire_path(app)
    for method in ('HEAD', 'PUT', 'DELETE'):
        response = Request.blank(path, method=method).get_response(app)
        assert response.status_int == 405
    assert call(app, path).status_int == 200


def test_without_occurrence_tokens_the_scheduler_gets_the_static_url(
        tmp_path: Path) -> None:
    """occurrence_tokens=False (the default): _fire_url is the static URL."""
    app = CronApp(secret=SECRET, enabled=False, base_url=BASE)
    app.cronjob(minute=0, name='job')(lambda request: None)
    assert app._fire_url('job', BASE, 'default', OCCURRENCE) == app.url_for(
        'job')


def test_static_urls_off(runs: list[str],
                         make_app: Callable[..., CronApp]) -> None:
    """static_urls=False: static URLs (nearest too) get 404 and url_for
    refuses to make one; occurrence URLs still run."""
    app = make_app(static_urls=False)
    static = '/cronjobs/' + app._signer.token_for('job')
    assert call(app, static).status_int == 404
    assert call(app, static + '?occurrence=nearest').status_int == 404
    with pytest.raises(OnecronError, match='static_urls=False'):
        app.url_for('job')
    assert runs == []
    assert call(app, fire_path(app)).status_int == 200


def test_without_a_store_the_window_still_applies(
        runs: list[str], make_app: Callable[..., CronApp],
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """No store: a warning at construction; within the window the URL
    runs (each time: nothing can be claimed), outside it gets 403."""
    with caplog.at_level(logging.WARNING, logger='onecron'):
        app = make_app(store=None)
    assert any('without a store' in record.getMessage()
               for record in caplog.records)
    path = fire_path(app)
    assert call(app, path).status_int == 200
    assert call(app, path).status_int == 200
    clock.now += timedelta(seconds=600)
    assert call(app, path).status_int == 403
    assert len(runs) == 2


def test_a_retired_secrets_urls_are_refused(
        runs: list[str], make_app: Callable[..., CronApp],
        clock: Clock) -> None:
    """After rotation the old secret's occurrence URLs still run while it
    is listed, and get 404 once it is removed."""
    old = make_app(secret='old')
    path = fire_path(old)
    later = fire_path(old, occurrence=OCCURRENCE + timedelta(minutes=1))
    rotated = make_app(secret=['new', 'old'])
    assert call(rotated, path).status_int == 200
    retired = make_app(secret=['new'])
    clock.now += timedelta(minutes=1)
    assert call(retired, later).status_int == 404
    assert len(runs) == 1


@pytest.mark.parametrize('options, error, words', [
    ({'occurrence_tokens': 'yes'}, TypeError, "occurrence_tokens .* 'yes'"),
    ({'static_urls': 0}, TypeError, 'static_urls .* 0'),
    ({'occurrence_window': 0}, ValueError, 'occurrence_window .* 0'),
    ({'occurrence_window': -5}, ValueError, 'occurrence_window .* -5'),
    ({'occurrence_window': float('nan')}, ValueError, 'nan'),
    ({'occurrence_window': '300'}, ValueError, "'300'"),
    ({'occurrence_window': True}, ValueError, 'True'),
    ({'static_urls': False}, ValueError, 'needs occurrence_tokens=True'),
    ({'job_access': 'everyone'}, ValueError, "job_access .* 'everyone'"),
], ids=['tokens-str', 'static-int', 'window-0', 'window-negative',
        'window-nan', 'window-str', 'window-bool', 'sealed-without-tokens',
        'unknown-access'])
def test_bad_options_fail_at_construction(options: dict[str, Any],
                                          error: type[Exception],
                                          words: str) -> None:
    """Each bad option raises at construction, naming it and its value."""
    with pytest.raises(error, match=words):
        CronApp(secret=SECRET, enabled=False, **options)


def test_the_url_leaks_nothing_in_the_log(
        make_app: Callable[..., CronApp], clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    """Refused occurrence URLs are logged without their token."""
    app = make_app()
    path = fire_path(app)
    clock.now += timedelta(hours=1)
    with caplog.at_level(logging.DEBUG, logger='onecron'):
        assert call(app, path).status_int == 403
        assert call(app, path, key='x').status_int == 403
    token = path.rsplit('/', 1)[1]
    assert caplog.records
    assert not any(token in record.getMessage() for record in caplog.records)


def test_the_scheduler_fires_occurrence_urls_only(
        tmp_path: Path, live_server: Any) -> None:
    """With occurrence tokens and static URLs off, the scheduler's calls
    still run each occurrence once: it calls the occurrence URLs."""
    from .conftest import wait_for
    seen: list[tuple[str, str]] = []
    app = CronApp(secret=SECRET, lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs.sqlite'),
                  occurrence_tokens=True, static_urls=False)

    @app.cronjob('* * * * * *', name='tick', jitter=False)
    def tick(request: Request) -> None:
        seen.append((request.path_info,
                     request.headers['X-Onecron-Occurrence']))

    try:
        app.start(base_url=live_server(app).url)
        wait_for(lambda: len(seen) >= 3)
    finally:
        app.stop()
    paths = [path for path, _ in seen]
    assert all(path.startswith('/cronjobs/o/') for path in paths)
    assert len(set(paths)) == len(paths), 'one URL per occurrence'
    occurrences = [occurrence for _, occurrence in seen]
    assert len(set(occurrences)) == len(occurrences)
    assert app.store is not None
    stored = app.store.runs('default', 'tick')
    assert {run.outcome for run in stored if not run.running} == {
        Outcome.OK}
    assert all(run.trigger is Trigger.SCHEDULER for run in stored)
