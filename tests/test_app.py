"""CronApp: registration, validation, URLs and its WSGI contract."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import (
    CronApp,
    DuplicateJob,
    InvalidSchedule,
    OnecronError,
    Schedule,
    UnknownJob,
)

from .conftest import wait_for


def make(**options: object) -> CronApp:
    return CronApp(secret='s', enabled=False, **options)  # type: ignore


def test_decorator_returns_the_function_and_registers_a_job() -> None:
    """@app.cronjob registers under module.qualname and returns func."""
    app = make()

    def cleanup(request: Request) -> None:
        pass

    assert app.cronjob(hour=8, minute=30,
                       timezone='Europe/Zurich')(cleanup) is cleanup
    name = f'{__name__}.test_decorator_returns_the_function_and_registers_a_job.<locals>.cleanup'
    job = app.jobs[name]
    assert job.func is cleanup
    assert isinstance(job.schedule, Schedule)
    assert job.schedule == Schedule(hour=8, minute=30,
                                    timezone='Europe/Zurich')


def test_expression_and_interval_forms() -> None:
    """Jobs can use a cron expression or a fixed interval."""
    app = make()
    app.cronjob('*/15 * * * *', name='feed')(lambda r: None)
    app.cronjob(every=timedelta(minutes=10), name='poll')(lambda r: None)
    assert app.jobs['feed'].schedule.expr is not None
    assert app.jobs['poll'].schedule.every == timedelta(minutes=10)


def test_jobs_mapping_is_read_only() -> None:
    """app.jobs cannot be changed behind the registry's back."""
    app = make()
    with pytest.raises(TypeError):
        app.jobs['x'] = None  # type: ignore[index]


def test_duplicate_name_raises() -> None:
    """Registering a second job with the same name is an error."""
    app = make()
    app.cronjob(minute=0, name='job')(lambda r: None)
    with pytest.raises(DuplicateJob, match="'job'"):
        app.cronjob(minute=5, name='job')(lambda r: None)


@pytest.mark.parametrize('kwargs, fragment', [
    ({'hour': 25}, '25'),
    ({'minute': '*/0'}, '*/0'),
    ({'minute': '*/5x'}, '*/5x'),
    ({'hour': 8.5}, '8.5'),
    ({'expr': '* * * *'}, '4'),
    ({'expr': '* * 30 2 *'}, ''),
], ids=['hour-25', 'step-0', 'step-junk', 'float', 'four-fields',
        'never-fires'])
def test_invalid_schedule_raises_at_decoration(kwargs: dict[str, object],
                                               fragment: str) -> None:
    """A bad schedule fails at registration, before any function is seen."""
    app = make()
    with pytest.raises(InvalidSchedule) as info:
        app.cronjob(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert app.jobs == {}


def test_unknown_timezone_is_a_value_error() -> None:
    """An unknown zone raises ValueError at registration."""
    with pytest.raises(ValueError, match='Mars/Olympus'):
        make().cronjob(hour=1, timezone='Mars/Olympus')


def test_bare_decorator_is_explained() -> None:
    """@app.cronjob without parentheses gets a clear error."""
    with pytest.raises(TypeError, match='with a schedule'):
        make().cronjob(lambda r: None)  # type: ignore[arg-type]


def test_url_for() -> None:
    """url_for gives the absolute signed URL on the configured base."""
    app = make(base_url='https://example.org/')
    app.cronjob(minute=0, name='job')(lambda r: None)
    url = app.url_for('job')
    assert url.startswith('https://example.org/cronjobs/')
    assert app.url_for('job', 'http://other:8080').startswith(
        'http://other:8080/cronjobs/')
    assert url.rsplit('/', 1)[1] == app.url_for('job', 'http://o').rsplit(
        '/', 1)[1]
    with pytest.raises(UnknownJob):
        app.url_for('nope')
    bare = make()
    bare.cronjob(minute=0, name='j')(lambda r: None)
    with pytest.raises(OnecronError, match='base_url'):
        bare.url_for('j')


def test_urls_agree_across_instances_with_the_same_secret(
        tmp_path: Path) -> None:
    """Two processes (two CronApps) with one secret make the same URL."""
    first, second = (make(base_url='http://h', lock_dir=str(tmp_path))
                     for _ in range(2))
    for app in (first, second):
        app.cronjob(minute=0, name='job')(lambda r: None)
    assert first.url_for('job') == second.url_for('job')
    path = first.url_for('job').removeprefix('http://h')
    assert Request.blank(path).get_response(second).status_int == 200


@pytest.mark.parametrize('options, fragment', [
    ({'prefix': 'cronjobs'}, 'prefix'),
    ({'prefix': '/'}, 'prefix'),
    ({'base_url': 'example.org'}, 'base_url'),
    ({'slow_after': 0}, 'slow_after'),
    ({'max_offset': -1}, 'max_offset'),
    ({'application_id': ''}, 'application_id'),
    ({'wrapped': 'not an app'}, 'wrapped'),
    ({'secret': []}, 'secret'),
], ids=['prefix-relative', 'prefix-root', 'base-url', 'slow-after',
        'max-offset', 'application-id', 'wrapped', 'secret'])
def test_bad_options_are_refused(options: dict[str, object],
                                 fragment: str) -> None:
    """Bad constructor arguments fail at once, naming the argument."""
    options.setdefault('secret', 's')
    with pytest.raises((ValueError, TypeError), match=fragment):
        CronApp(**options)  # type: ignore[arg-type]


def test_next_runtime_includes_the_offset() -> None:
    """job.next_runtime is the schedule's next fire plus the jitter."""
    app = make()
    app.cronjob(hour=0, minute=0, name='nightly')(lambda r: None)
    job = app.jobs['nightly']
    after = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)
    offset = job.offset_for('tenant')
    assert 0 <= offset <= 30
    runtime = job.next_runtime(after, 'tenant')
    assert runtime == datetime(2024, 3, 2, tzinfo=timezone.utc) + timedelta(
        seconds=offset)
    assert runtime.tzinfo is not None
    assert job.occurrence_of(runtime, 'tenant') == datetime(
        2024, 3, 2, tzinfo=timezone.utc)


def test_next_run_of_a_disabled_job_is_none_while_scheduling(
        tmp_path: Path, live_server: Any) -> None:
    """app.next_run says None for a disabled job also in the process whose
    scheduler keeps it queued (its occurrences are still claimed)."""
    app = CronApp(secret='a test secret of at least 32 chars',
                  lock_dir=str(tmp_path), store=str(tmp_path / 'runs.db'))
    app.cronjob('0 3 * * *', name='nightly')(lambda request: None)
    try:
        app.start(base_url=live_server(app).url)
        scheduler = app.schedulers['default']
        wait_for(lambda: scheduler.active)
        assert app.next_run('nightly') is not None
        app.set_enabled('nightly', False)
        wait_for(lambda: 'nightly' in scheduler.settings)
        assert scheduler.next_run('nightly') is not None
        assert app.next_run('nightly') is None
    finally:
        app.stop()


FIXED = ['application_id', 'prefix', 'lock_dir', 'enabled', 'autostart',
         'slow_after', 'trigger_timeout', 'lease_time', 'clock', 'caller',
         'reporter', 'pool_size', 'mailer', 'store', 'history', 'keep_runs',
         'keep_days', 'status_access', 'status_user', 'status_password_hash',
         'trusted_proxies', 'job_access', 'occurrence_tokens',
         'occurrence_window', 'static_urls', 'secrets', 'jobs']


@pytest.mark.parametrize('name', FIXED)
def test_settings_copied_at_construction_are_read_only(name: str) -> None:
    """A setting the app's parts copied when it was made cannot be set
    later (they would go on with the old value): AttributeError naming
    the keyword to pass instead, and the value stays."""
    app = make()
    before = getattr(app, name)
    with pytest.raises(AttributeError, match=rf'CronApp\.{name} cannot be '
                       rf'changed .* CronApp\({name}=\.\.\.\)'):
        setattr(app, name, before)
    assert getattr(app, name) == before


def test_static_urls_cannot_be_switched_off_behind_the_endpoint() -> None:
    """Setting static_urls=False after construction raises instead of
    leaving the endpoint answering the static URL while url_for
    refuses: the URL still runs, and url_for still gives it."""
    ran = []
    app = make(base_url='http://127.0.0.1:9')
    app.cronjob(name='job')(lambda request: ran.append(1))
    url = app.url_for('job')
    with pytest.raises(AttributeError, match='static_urls'):
        app.static_urls = False  # type: ignore[misc]
    assert app.url_for('job') == url
    assert Request.blank(url).get_response(app).status_int == 200
    assert ran == [1]


def test_slow_after_cannot_be_changed_behind_the_endpoint(
        caplog: pytest.LogCaptureFixture) -> None:
    """app.slow_after = x raises: the endpoint reports slow runs by the
    value the app was made with, which app.slow_after keeps showing."""
    app = make(slow_after=60.0, base_url='http://127.0.0.1:9')
    app.cronjob(name='job')(lambda request: None)
    with pytest.raises(AttributeError, match='slow_after'):
        app.slow_after = 0.000001  # type: ignore[misc]
    assert app.slow_after == 60.0


def test_live_settings_may_be_set() -> None:
    """base_url, allowed_hosts and the jobs' defaults are read where they
    are used, so they may be set after construction."""
    app = make()
    app.cronjob(name='job')(lambda request: None)
    app.base_url = 'http://127.0.0.1:9'
    assert app.url_for('job').startswith('http://127.0.0.1:9/cronjobs/')
    app.allowed_hosts = ()
    app.misfire = 'skip'
    app.cronjob('* * * * *', name='other')(lambda request: None)
    assert app.jobs['other'].misfire == 'skip'


@pytest.mark.parametrize('options', [
    {'max_concurrent': 4}, {'connect_timeout': 2.0},
    {'max_concurrent': 4, 'connect_timeout': 2.0}])
def test_caller_with_caller_options_is_refused(
        options: dict[str, Any]) -> None:
    """CronApp(caller=..., max_concurrent=/connect_timeout=...) raises a
    ValueError instead of silently ignoring the options."""
    from onecron.running.caller import Caller
    caller = Caller()
    try:
        with pytest.raises(ValueError, match='max_concurrent or '
                           'connect_timeout.*pass them to your Caller'):
            make(caller=caller, **options)
        assert make(caller=caller).caller is caller  # the defaults: fine
    finally:
        caller.close()
