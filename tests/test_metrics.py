"""Prometheus metrics: values read from the store, the same from every
CronApp on it, served at {prefix}/metrics as the status page is."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from webob import Request

from onecron import CronApp
from onecron.stores.base import Outcome, Store, Trigger
from onecron.stores.sqlite import SqliteStore
from onecron.web.metrics import Collector

NOW = datetime(2024, 5, 1, 6, 20, tzinfo=timezone.utc)
T = datetime(2024, 5, 1, 5, 0, tzinfo=timezone.utc)

#: the metric names the brief promises users
NAMES = {
    'onecron_job_runs_total', 'onecron_job_run_duration_seconds',
    'onecron_job_lateness_seconds', 'onecron_job_next_run_timestamp_seconds',
    'onecron_job_last_success_timestamp_seconds', 'onecron_job_missed_total',
    'onecron_scheduler_up'}


def make_app(store: Store | None, **options: Any) -> CronApp:
    """A CronApp with a job every 15 minutes, a daily one and a manual
    one, no jitter: next runs are round."""
    options.setdefault('clock', lambda: NOW)
    options.setdefault('enabled', False)
    app = CronApp(secret='metrics secret, long enough for the check', store=store, **options)

    @app.cronjob('*/15 * * * *', name='feed', jitter=False)
    def feed(request: Request) -> None:
        pass

    @app.cronjob(hour=8, minute=30, name='morning', jitter=False)
    def morning(request: Request) -> None:
        pass

    @app.cronjob(name='manual')
    def manual(request: Request) -> None:
        pass

    return app


@pytest.fixture(params=['sqlite', 'postgresql'])
def store(request: pytest.FixtureRequest,
          tmp_path: Path) -> Iterator[Store]:
    """A SQLite store, and a store on a real PostgreSQL server."""
    if request.param == 'sqlite':
        made: Store = SqliteStore(tmp_path / 'runs.db')
    else:
        from onecron.stores.postgres import PostgresStore
        made = PostgresStore(request.getfixturevalue('postgresql_url'))
    with made:
        yield made


def run(store: Store, job: str, scheduled: datetime | None, late: float,
        seconds: float, outcome: Outcome, **options: Any) -> int:
    """Start a run ``late`` seconds after ``scheduled`` and end it
    ``seconds`` later with ``outcome``."""
    nominal = scheduled or T
    started = nominal + timedelta(seconds=late)
    run_id = store.start_run(
        options.pop('application_id', 'default'), job,
        trigger=Trigger.SCHEDULER if scheduled else Trigger.URL,
        started=started, scheduled=scheduled)
    store.finish_run(run_id, ended=started + timedelta(seconds=seconds),
                     outcome=outcome)
    return run_id


def known_runs(store: Store) -> None:
    """ok, failed, timed out, skipped, an external call, and missed
    records (down, and held then extended)."""
    run(store, 'feed', T, 0.3, 2.0, Outcome.OK)
    run(store, 'feed', T + timedelta(minutes=15), 0.02, 40.0, Outcome.FAILED)
    run(store, 'feed', T + timedelta(minutes=30), 7.0, 7200.0,
        Outcome.TIMED_OUT)
    run(store, 'feed', None, 0.0, 0.2, Outcome.OK)  # a URL call: no lateness
    store.record_run('default', 'feed', trigger=Trigger.SCHEDULER,
                     started=T + timedelta(minutes=45),
                     ended=T + timedelta(minutes=45), outcome=Outcome.SKIPPED,
                     scheduled=T + timedelta(minutes=45))
    store.record_run('default', 'morning', trigger=Trigger.SCHEDULER,
                     started=T - timedelta(days=5), ended=T - timedelta(days=1),
                     outcome=Outcome.MISSED, key='down',
                     output='missed 5 occurrences from … to … while no '
                            "scheduler ran; misfire='skip': none ran")
    store.record_run('default', 'feed', trigger=Trigger.SCHEDULER,
                     started=T + timedelta(hours=1),
                     ended=T + timedelta(hours=1), outcome=Outcome.MISSED,
                     scheduled=T + timedelta(hours=1), key='held',
                     output='missed 1 occurrence at … while jobs were held')
    store.finish_run_by_key('held', application_id='default', job='feed',
                            ended=T + timedelta(hours=1, minutes=15),
                            outcome=Outcome.MISSED,
                            output='missed 2 occurrences from … to … while '
                                   'jobs were held')


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]],
                                float]:
    """The parsed exposition: value by sample name and labels."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}


def get(app: CronApp, path: str = '/cronjobs/metrics',
        **environ: Any) -> Any:
    request = Request.blank(path, environ={'REMOTE_ADDR': '127.0.0.1',
                                           **environ})
    return request.get_response(app)


def labels(job: str, **more: str) -> frozenset[tuple[str, str]]:
    return frozenset({'application_id': 'default', 'job': job,
                      **more}.items())


def test_metrics_field_by_field(store: Store) -> None:
    """Every metric carries the known runs' figures, parsed back."""
    known_runs(store)
    store.take_lease('default', holder='web-1:42 x', node='web-1', ttl=60,
                     now=NOW)
    response = get(make_app(store))
    assert response.status_int == 200
    assert response.content_type == 'text/plain'
    assert 'version=0.0.4' in response.headers['Content-Type']
    values = samples(response.text)
    assert {name for name, _ in values} >= {
        'onecron_job_runs_total', 'onecron_job_missed_total',
        'onecron_scheduler_up'}
    feed = labels('feed')

    def value(name: str, **more: str) -> float:
        return values[(name, labels('feed', **more))]

    runs = {dict(key)['outcome']: number for (name, key), number
            in values.items() if name == 'onecron_job_runs_total'
            and dict(key)['job'] == 'feed'}
    assert runs == {'ok': 2, 'failed': 1, 'timed out': 1, 'skipped': 1}
    # durations 0.2, 2, 40, 7200 s: the skipped and missed ran nothing
    duration = 'onecron_job_run_duration_seconds'
    buckets = {le: value(f'{duration}_bucket', le=le) for le in (
        '0.05', '0.25', '1.0', '2.5', '30.0', '60.0', '3600.0', '+Inf')}
    assert buckets == {'0.05': 0, '0.25': 1, '1.0': 1, '2.5': 2, '30.0': 2,
                       '60.0': 3, '3600.0': 3, '+Inf': 4}
    assert values[(f'{duration}_count', feed)] == 4
    assert values[(f'{duration}_sum', feed)] == pytest.approx(7242.2,
                                                              abs=1e-4)
    # lateness 0.3, 0.02, 7 s: the URL call has no nominal time
    lateness = 'onecron_job_lateness_seconds'
    buckets = {le: value(f'{lateness}_bucket', le=le) for le in (
        '0.01', '0.05', '0.25', '0.5', '5.0', '10.0', '+Inf')}
    assert buckets == {'0.01': 0, '0.05': 1, '0.25': 1, '0.5': 2, '5.0': 2,
                       '10.0': 3, '+Inf': 3}
    assert values[(f'{lateness}_count', feed)] == 3
    assert values[(f'{lateness}_sum', feed)] == pytest.approx(7.32,
                                                              abs=1e-4)
    # the newest end of an ok run (the URL call ended at T + 0.2 s)
    assert values[('onecron_job_last_success_timestamp_seconds', feed)] == \
        pytest.approx(T.timestamp() + 2.3, abs=1e-4)
    assert ('onecron_job_last_success_timestamp_seconds',
            labels('morning')) not in values
    assert values[('onecron_job_missed_total',
                   labels('feed', reason='held'))] == 2
    assert values[('onecron_job_missed_total',
                   labels('morning', reason='down'))] == 5
    # due after the newest record: the held range ended at 06:15
    assert values[('onecron_job_next_run_timestamp_seconds', feed)] == \
        (T + timedelta(hours=1, minutes=30)).timestamp()
    # nothing ran since the missed range that ended a day ago: overdue
    assert values[('onecron_job_next_run_timestamp_seconds',
                   labels('morning'))] == datetime(
        2024, 4, 30, 8, 30, tzinfo=timezone.utc).timestamp() < NOW.timestamp()
    assert ('onecron_job_next_run_timestamp_seconds',
            labels('manual')) not in values  # never fires by itself
    assert values[('onecron_scheduler_up',
                   frozenset({('application_id', 'default')}))] == 1


def test_counters_survive_pruning(store: Store) -> None:
    """Pruning runs lowers no counter: they count every run since the
    store was made."""
    known_runs(store)
    app = make_app(store)
    before = samples(get(app).text)
    assert store.prune(now=NOW, keep_runs=0, keep_days=0) > 0
    assert store.last_runs('default') == {}
    after = samples(get(app).text)
    counters = {key: number for key, number in before.items()
                if key[0].endswith(('_total', '_count', '_sum', '_bucket'))}
    assert counters and all(after[key] == number
                            for key, number in counters.items())


def test_a_store_upgraded_to_the_stats_counts_its_old_runs(
        tmp_path: Path) -> None:
    """Upgrading a store counts the runs it holds already, as the
    triggers would have."""
    path = tmp_path / 'runs.db'
    with SqliteStore(path) as store:
        known_runs(store)
        fresh = store.stats_rows('default')
    import sqlite3
    db = sqlite3.connect(path)
    for name in ('run_stats_recorded', 'run_stats_ended',
                 'run_stats_more_missed'):
        db.execute(f'DROP TRIGGER {name}')
    db.execute('DROP TABLE run_stats')
    db.execute('PRAGMA user_version = 4')
    db.commit()
    db.close()
    with SqliteStore(path) as store:
        upgraded = store.stats_rows('default')
    fresh_rows = {row[:4]: row[4] for row in fresh}
    upgraded_rows = {row[:4]: row[4] for row in upgraded}
    assert fresh_rows.keys() == upgraded_rows.keys()
    for key, total in fresh_rows.items():
        # the held record counted its final range once, not 1 then 2
        assert upgraded_rows[key] == pytest.approx(total, abs=1e-6)


def test_promtool_checks_the_metrics(tmp_path: Path) -> None:
    """promtool check metrics finds no problem in the exposition."""
    promtool = shutil.which('promtool')
    if promtool is None:
        pytest.skip('promtool is not installed (Debian: apt-get install '
                    'prometheus)')
    with SqliteStore(tmp_path / 'runs.db') as store:
        known_runs(store)
        body = get(make_app(store)).body
    checked = subprocess.run([promtool, 'check', 'metrics'], input=body,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not checked.stdout.strip() and not checked.stderr.strip()


def test_two_apps_on_one_store_answer_the_same(store: Store) -> None:
    """Two CronApps (workers, hosts) on one store serve the same numbers,
    and see a run the other recorded."""
    first, second = make_app(store), make_app(store)
    known_runs(store)
    assert get(first).body == get(second).body
    run(store, 'morning', T, 1.0, 3.0, Outcome.OK)
    text = get(second).text
    assert text == get(first).text
    assert samples(text)[('onecron_job_runs_total',
                          labels('morning', outcome='ok'))] == 1


def test_metrics_follow_the_status_page_access_rule(tmp_path: Path) -> None:
    """/metrics answers whom the status page answers: loopback yes, any
    other address 403; with basic auth, 401 without credentials."""
    app = make_app(SqliteStore(tmp_path / 'runs.db'))
    assert get(app).status_int == 200
    for path in ('/cronjobs/metrics', '/cronjobs/'):
        assert get(app, path, REMOTE_ADDR='203.0.113.7').status_int == 403
    behind = make_app(SqliteStore(tmp_path / 'runs.db'),
                      trusted_proxies=['127.0.0.1'])
    assert get(behind, HTTP_X_FORWARDED_FOR='203.0.113.7').status_int == 403
    assert get(behind, HTTP_X_FORWARDED_FOR='127.0.0.1').status_int == 200
    from onecron.web.access import hash_password
    guarded = make_app(SqliteStore(tmp_path / 'runs.db'), status_access='any',
                       status_user='ops',
                       status_password_hash=hash_password('pw'))
    denied = get(guarded, REMOTE_ADDR='203.0.113.7')
    assert denied.status_int == 401
    assert 'Basic' in denied.headers['WWW-Authenticate']
    allowed = get(guarded, REMOTE_ADDR='203.0.113.7',
                  HTTP_AUTHORIZATION='Basic b3BzOnB3')  # ops:pw
    assert allowed.status_int == 200
    assert get(app, REQUEST_METHOD='POST').status_int == 405


def test_a_failing_store_is_a_503(tmp_path: Path) -> None:
    """A store that fails makes the scrape fail (503), saying nothing of
    the store's location."""
    store = SqliteStore(tmp_path / 'runs.db')
    app = make_app(store)
    store.close()
    response = get(app)
    assert response.status_int == 503
    assert str(tmp_path) not in response.text


def test_without_prometheus_client_the_path_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus_client, /metrics answers 501 naming the
    extra."""
    for name in list(sys.modules):
        if name == 'prometheus_client' or name.startswith(
                'prometheus_client.'):
            monkeypatch.setitem(sys.modules, name, None)  # type: ignore
    response = get(make_app(SqliteStore(tmp_path / 'runs.db')))
    assert response.status_int == 501
    assert 'onecron-wsgi[prometheus]' in response.text


def test_the_collector_on_a_registry_of_ones_own(tmp_path: Path) -> None:
    """A Collector registers on the user's registry without reading the
    store, and is read at each scrape."""
    store = SqliteStore(tmp_path / 'runs.db')
    app = make_app(store)
    registry = CollectorRegistry()
    store.close()  # registering must not need it
    registry.register(Collector(app, ['default']))
    store = SqliteStore(tmp_path / 'runs.db')
    app = make_app(store)
    registry = CollectorRegistry()
    registry.register(Collector(app, ['default']))
    known_runs(store)
    values = samples(generate_latest(registry).decode())
    assert {name.removesuffix('_bucket').removesuffix('_count')
            .removesuffix('_sum') for name, _ in values} == NAMES
    assert values[('onecron_job_runs_total',
                   labels('feed', outcome='ok'))] == 2


def test_the_status_page_shows_the_same_figures(store: Store) -> None:
    """status.json and the page show the last run's lateness and the last
    success that /metrics has."""
    run(store, 'feed', T, 0.3, 2.0, Outcome.OK)
    run(store, 'feed', T + timedelta(minutes=15), 4.5, 1.0, Outcome.FAILED)
    app = make_app(store)
    values = samples(get(app).text)
    data = get(app, '/cronjobs/status.json').json
    jobs = {job['name']: job for job in data['applications'][0]['jobs']}
    assert jobs['feed']['lateness'] == pytest.approx(4.5, abs=1e-6)
    success = datetime.fromisoformat(jobs['feed']['last_success'])
    assert success.timestamp() == pytest.approx(values[(
        'onecron_job_last_success_timestamp_seconds', labels('feed'))],
        abs=1e-5)
    assert success == T + timedelta(seconds=2.3)
    assert jobs['morning']['lateness'] is None
    assert jobs['morning']['last_success'] is None
    page = get(app, '/cronjobs/').text
    assert 'late 4.50 s' in page
    assert ('last ok <time datetime="2024-05-01T05:00:02.300000+00:00"'
            in page)
    assert not math.isnan(values[('onecron_job_lateness_seconds_sum',
                                  labels('feed'))])


def test_a_postgresql_store_upgraded_to_the_stats_counts_its_old_runs(
        postgresql_url: str) -> None:
    """Upgrading a PostgreSQL store from version 4 counts the runs it
    holds already, as the triggers would have."""
    import psycopg

    from onecron.stores.postgres import PostgresStore
    with PostgresStore(postgresql_url) as store:
        known_runs(store)
        fresh = {row[:4]: row[4] for row in store.stats_rows('default')}
    with psycopg.connect(postgresql_url, autocommit=True) as db:
        db.execute('DROP TABLE onecron_run_stats')
        for name in ('recorded', 'ended', 'more_missed'):
            db.execute(f'DROP TRIGGER onecron_run_stats_{name} '
                       'ON onecron_runs')
        for name in ('ended', 'more_missed'):
            db.execute(f'DROP FUNCTION onecron_run_stats_{name}()')
        db.execute('UPDATE onecron_schema SET version = 4')
    with PostgresStore(postgresql_url) as store:
        assert store.version() == 5
        upgraded = {row[:4]: row[4] for row in store.stats_rows('default')}
    assert fresh.keys() == upgraded.keys()
    for key, total in fresh.items():
        assert upgraded[key] == pytest.approx(total, abs=1e-6)
