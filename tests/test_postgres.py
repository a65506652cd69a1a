"""The PostgreSQL store on a real server, with real processes and threads.

What every store does is in ``test_store.py``; here is what is
PostgreSQL's own: the versioned schema, hosts racing for claims and
leases, the server going away and coming back, timeouts, secrets, and the
query plans that keep the status page fast.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from webob import Request

from onecron import CronApp
from onecron.stores.base import Outcome, RunKeyTaken, StoreError, Trigger
from onecron.stores.postgres import (
    _LAST_RUNS,
    _SCHEMA_1,
    _SCHEMA_2,
    _SCHEMA_3,
    SCHEMA_VERSION,
    PostgresStore,
    _runs_query,
)

from .conftest import Failures, LiveServer, wait_for
from .postgresql import Cluster, free_port

T0 = datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)
OCCURRENCES = 200
LEASES = 50

RACER = textwrap.dedent('''
    import sys
    from datetime import datetime, timedelta, timezone
    from onecron.stores.postgres import PostgresStore
    url, name = sys.argv[1:]
    sys.stdin.readline()  # start together, on a database none has opened
    store = PostgresStore(url)
    t0 = datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)
    claimed = [i for i in range(%d)
               if store.claim('app', 'job', t0 + timedelta(minutes=i),
                              key=f'{name}/{i}', now=t0)]
    print(*claimed, flush=True)
    sys.stdin.readline()  # and race for the leases together
    now = datetime.now(timezone.utc)
    leases = [i for i in range(%d)
              if store.take_lease(f'app{i}', holder=name, node=name,
                                  ttl=60, now=now)[0]]
    print(*leases, flush=True)
''' % (OCCURRENCES, LEASES))  # noqa: UP031 (its f-strings have braces)


@pytest.fixture
def database(postgresql_url: str) -> str:
    """The name of the test's own, empty database."""
    return postgresql_url.rsplit('/', 1)[1]


@pytest.fixture
def store(postgresql_url: str) -> Iterator[PostgresStore]:
    """A PostgreSQL store on the test's own database, its schema made by a
    first call (opening connects to nothing)."""
    with PostgresStore(postgresql_url) as store:
        store.version()
        yield store


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(url, autocommit=True)


def add(store: PostgresStore, job: str = 'job') -> int:
    return store.record_run('app', job, trigger=Trigger.URL, started=T0,
                            ended=T0, outcome=Outcome.OK)


def recovered(call: Callable[[], object], timeout: float = 5.0) -> float:
    """Seconds until ``call`` stops raising StoreError."""
    started = time.monotonic()
    while True:
        try:
            call()
        except StoreError:
            assert time.monotonic() - started < timeout, 'never recovered'
            time.sleep(0.05)
        else:
            return time.monotonic() - started


def race(url: str, count: int) -> list[tuple[set[int], set[int]]]:
    """Run RACER in ``count`` processes, released together twice; what
    each won: the occurrences it claimed and the leases it took."""
    children = [subprocess.Popen([sys.executable, '-c', RACER, url,
                                  f'p{number}'],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
                for number in range(count)]

    def release() -> None:
        for child in children:
            assert child.stdin is not None
            child.stdin.write('go\n')
            child.stdin.flush()

    release()
    claimed = [numbers(child.stdout.readline())  # type: ignore[union-attr]
               for child in children]
    release()
    leases = [numbers(child.communicate(timeout=60)[0])
              for child in children]
    assert [child.returncode for child in children] == [0] * count
    return list(zip(claimed, leases))


def numbers(line: str) -> set[int]:
    return {int(number) for number in line.split()}


# --- the schema ------------------------------------------------------------

def test_a_new_database_gets_the_current_schema(
        store: PostgresStore, postgresql_url: str) -> None:
    """Opening an empty database creates every table at SCHEMA_VERSION."""
    with connect(postgresql_url) as db:
        tables = {row[0] for row in db.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'onecron%'")}
        versions = db.execute('SELECT version FROM onecron_schema').fetchall()
    assert tables == {'onecron_schema', 'onecron_runs', 'onecron_job_settings',
                      'onecron_holds', 'onecron_schedulers', 'onecron_claims',
                      'onecron_leases', 'onecron_run_stats'}
    assert versions == [(SCHEMA_VERSION,)] == [(store.version(),)]
    assert store.coordinates  # hosts share it: claims are needed to fire


def test_a_version_1_schema_is_upgraded_keeping_its_runs(
        postgresql_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A database written before claims existed is upgraded on open."""
    with connect(postgresql_url) as db:
        for statement in _SCHEMA_1:
            db.execute(statement)
        db.execute('UPDATE onecron_schema SET version = 1')
        db.execute("""INSERT INTO onecron_runs (application_id, job,
            triggered_by, started) VALUES ('app', 'old', 'url', %s)""", (T0,))
    store = PostgresStore(postgresql_url)
    try:
        with caplog.at_level(logging.INFO, logger='onecron'):
            assert store.version() == SCHEMA_VERSION
        assert f'from version 1 to {SCHEMA_VERSION}' in caplog.text
        assert [run.job for run in store.runs('app')] == ['old']
        assert store.claim('app', 'old', T0, key='k', now=T0)
        assert store.take_lease('app', holder='h', node='n', ttl=5,
                                now=T0)[0]
    finally:
        store.close()


def test_a_version_3_schema_scopes_its_keys_to_their_jobs(
        postgresql_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Upgrading to version 4 keeps the runs and their keys, which now
    belong to their application id and job: another job or tenant starts
    a run with the same key; the key's own job may not start it again."""
    with connect(postgresql_url) as db:
        for statement in (*_SCHEMA_1, *_SCHEMA_2, *_SCHEMA_3):
            db.execute(statement)
        db.execute('UPDATE onecron_schema SET version = 3')
        first = db.execute("""INSERT INTO onecron_runs (application_id, job,
            triggered_by, started, ended, outcome, output, run_key) VALUES
            ('app', 'job', 'scheduler', %s, %s, 'ok', 'first', 'k')
            RETURNING id""", (T0, T0)).fetchone()[0]  # type: ignore[index]
    store = PostgresStore(postgresql_url)
    try:
        with caplog.at_level(logging.INFO, logger='onecron'):
            assert store.version() == SCHEMA_VERSION == 5
        assert f'from version 3 to {SCHEMA_VERSION}' in caplog.text
        other = store.start_run('app', 'other', trigger=Trigger.URL,
                                started=T0, key='k')
        tenant = store.start_run('tenant', 'job', trigger=Trigger.URL,
                                 started=T0, key='k')
        assert len({first, other, tenant}) == 3
        with pytest.raises(RunKeyTaken):
            store.start_run('app', 'job', trigger=Trigger.URL, started=T0,
                            key='k')
        assert store.record_run('app', 'job', trigger=Trigger.URL,
                                started=T0, ended=T0, outcome=Outcome.FAILED,
                                key='k') == first
        run = store.get_run(first)
        assert run is not None and (run.outcome, run.output, run.key) == (
            Outcome.OK, 'first', 'k')
    finally:
        store.close()


def test_a_newer_schema_is_refused(store: PostgresStore,
                                   postgresql_url: str) -> None:
    """A database written by a newer onecron fails the first call, naming
    both versions."""
    with connect(postgresql_url) as db:
        db.execute('UPDATE onecron_schema SET version = %s',
                   (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=(
            f'PostgreSQL store .* has schema version {SCHEMA_VERSION + 1}, '
            f'newer than version {SCHEMA_VERSION} that this onecron knows: '
            'upgrade onecron')):
        PostgresStore(postgresql_url).version()


def test_a_search_path_in_the_url_puts_the_tables_in_that_schema(
        postgresql_url: str) -> None:
    """``options=-csearch_path=...`` in the URL puts onecron's tables in
    that schema, apart from those in ``public``."""
    with connect(postgresql_url) as db:
        db.execute('CREATE SCHEMA cron')
    with PostgresStore(f'{postgresql_url}?options=-csearch_path%3Dcron'
                       ) as store:
        add(store)
    with connect(postgresql_url) as db:
        schemas = {row[0] for row in db.execute(
            "SELECT schemaname FROM pg_tables WHERE tablename LIKE 'onecron%'")}
    assert schemas == {'cron'}
    with PostgresStore(postgresql_url) as store:
        assert store.runs('app') == []  # a store of its own in public


# --- hosts racing ----------------------------------------------------------

def test_racing_processes_win_each_occurrence_and_lease_once(
        postgresql_url: str) -> None:
    """Four processes opening a new database at once, then claiming the
    same 200 occurrences and taking the leases of the same 50 ids: each
    has exactly one winner, and the stored lease names it."""
    won = race(postgresql_url, 4)
    claimed = sorted(number for numbers, _ in won for number in numbers)
    assert claimed == list(range(OCCURRENCES))
    leases = sorted(number for _, numbers in won for number in numbers)
    assert leases == list(range(LEASES))
    with PostgresStore(postgresql_url) as store:
        assert len(store.claimed('app', 'job', T0, T0 + timedelta(
            minutes=OCCURRENCES))) == OCCURRENCES
        for name, (_, numbers) in enumerate(won):
            for number in numbers:
                lease = store.lease(f'app{number}')
                assert lease is not None and lease.holder == f'p{name}'


def test_lease_expiry_follows_the_server_clock(store: PostgresStore) -> None:
    """A caller whose clock runs an hour ahead cannot take a live lease;
    one whose clock lags takes an expired one."""
    now = datetime.now(timezone.utc)
    store.take_lease('live', holder='h1', node='n1', ttl=30, now=now)
    assert store.take_lease('live', holder='h2', node='n2', ttl=30,
                            now=now + timedelta(hours=1)) == (
        False, store.lease('live'))
    store.take_lease('gone', holder='h1', node='n1', ttl=0.1, now=now)
    time.sleep(0.2)
    assert store.take_lease('gone', holder='h2', node='n2', ttl=30,
                            now=now - timedelta(hours=1))[0]


# --- connections -----------------------------------------------------------

def test_a_killed_session_fails_once_then_reconnects_after_a_pause(
        postgresql_server: Cluster, database: str) -> None:
    """pg_terminate_backend of the store's session: the next call raises
    StoreError, calls fail fast during the backoff, then it reconnects."""
    store = PostgresStore(postgresql_server.url(database))
    first = add(store)
    assert postgresql_server.terminate(database) == 1
    with pytest.raises(StoreError, match='PostgreSQL store') as error:
        store.runs('app')
    assert isinstance(error.value.__cause__, psycopg.OperationalError)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r'reconnecting in 0\.\d s'):
        store.runs('app')
    # at once: neither a connection attempt nor a connect timeout
    assert time.monotonic() - started < 0.2
    assert recovered(lambda: store.runs('app')) < 2
    assert [run.id for run in store.runs('app')] == [first]
    store.close()


def test_a_stopped_server_fails_fast_and_the_backoff_grows(
        postgresql_server: Cluster, database: str) -> None:
    """While the server is down every call fails at once, attempts to
    reconnect space out, and once it is back the store works again."""
    store = PostgresStore(postgresql_server.url(database))
    first = add(store)
    postgresql_server.stop()
    try:
        with pytest.raises(StoreError):
            store.runs('app')  # the connection is found broken
        time.sleep(0.6)
        with pytest.raises(StoreError, match='refused'):
            store.runs('app')  # a real attempt, refused at once
        started = time.monotonic()
        with pytest.raises(StoreError, match=r'reconnecting in') as error:
            store.runs('app')
        assert time.monotonic() - started < 0.2
        delay = float(re.findall(r'in ([\d.]+) s', str(error.value))[0])
        assert 0.5 < delay <= 1.0  # doubled after the failed attempt
    finally:
        postgresql_server.start()
    recovered(lambda: store.runs('app'))
    assert [run.id for run in store.runs('app')] == [first]
    store.close()


def test_a_loss_found_by_one_thread_reconnects_the_others(
        postgresql_server: Cluster, database: str) -> None:
    """After one thread finds the server gone, another thread's call waits
    out the same backoff instead of failing on its own dead session."""
    store = PostgresStore(postgresql_server.url(database))
    results: list[object] = []
    go, done = threading.Event(), threading.Event()

    def other_thread() -> None:
        add(store, 'thread')  # a session of its own
        go.wait()
        try:
            store.runs('app')
        except StoreError as error:
            results.append(str(error))
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    add(store)
    postgresql_server.terminate(database)
    with pytest.raises(StoreError):
        store.runs('app')
    go.set()
    done.wait(5)
    thread.join()
    assert len(results) == 1 and 'reconnecting in' in str(results[0])
    recovered(lambda: store.runs('app'))
    store.close()


def test_connecting_to_a_silent_server_times_out(
        postgresql_server: Cluster) -> None:
    """A server that accepts but never answers: opening returns at once,
    and the first call fails after the connect timeout, not later."""
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen()
        url = f'postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x'
        started = time.monotonic()
        store = PostgresStore(url, timeout=1)
        assert time.monotonic() - started < 0.1
        with pytest.raises(StoreError, match='PostgreSQL store'):
            store.runs('app')
        assert time.monotonic() - started < 4.5  # libpq waits 2 s at least


def site(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The application's own pages."""
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'the site']


def test_an_app_whose_database_is_down_at_deploy_serves_and_catches_up(
        postgresql_server: Cluster, postgresql_url: str, tmp_path: Any,
        live_server: Callable[..., LiveServer],
        sentry_events: list[dict[str, Any]]) -> None:
    """With the server down, CronApp(store=url) builds at once, the site
    answers, nothing fires and the outage is reported once; once the
    server is up the schema is made and every occurrence runs once."""
    ticks: list[str] = []

    def tick(request: Request) -> None:
        ticks.append(request.headers['X-Onecron-Occurrence'])

    reporter = Failures()
    postgresql_server.stop()
    app = None
    try:
        started = time.monotonic()
        app = CronApp(site, secret='s', store=postgresql_url,
                      lock_dir=str(tmp_path), reporter=reporter)
        assert time.monotonic() - started < 0.5
        app.cronjob('* * * * * *', name='tick', jitter=False)(tick)
        server = live_server(app)
        app.start(base_url=server.url)
        for _ in range(5):
            started = time.monotonic()
            with urllib.request.urlopen(f'{server.url}/page') as answer:
                assert (answer.status, answer.read()) == (200, b'the site')
            assert time.monotonic() - started < 0.5
        wait_for(lambda: reporter.messages, timeout=5)
        time.sleep(1.5)  # the scheduler's calls go on failing meanwhile
        assert ticks == [], 'fired without a claim'
        assert len(reporter.messages) == 1
        assert 'the run store failed' in reporter.messages[0]
        assert len(sentry_events) == 1
    finally:
        postgresql_server.start()
    try:
        assert app is not None and app.store is not None
        wait_for(lambda: len(ticks) >= 3, timeout=30)
        with connect(postgresql_url) as db:
            assert db.execute('SELECT version FROM onecron_schema'
                              ).fetchall() == [(SCHEMA_VERSION,)]
        assert max(Counter(ticks).values()) == 1, 'an occurrence ran twice'
        wait_for(lambda: len(app.store.runs('default', 'tick')) >= 3)
        stored = Counter(run.scheduled for run in app.store.runs(
            'default', 'tick', limit=1000))
        assert max(stored.values()) == 1, 'two runs of one occurrence'
        assert len(reporter.messages) == 1
    finally:
        app.stop()


def test_a_lock_held_elsewhere_fails_within_the_timeout(
        postgresql_url: str) -> None:
    """A table locked by another session fails a call after ``timeout``;
    the connection is kept, so the next call works at once."""
    store = PostgresStore(postgresql_url, timeout=0.3)
    first = add(store)
    with connect(postgresql_url) as blocker, blocker.transaction():
        blocker.execute('LOCK TABLE onecron_runs IN ACCESS EXCLUSIVE MODE')
        started = time.monotonic()
        with pytest.raises(StoreError, match='timeout'):
            store.runs('app')
        assert time.monotonic() - started < 2
    assert [run.id for run in store.runs('app')] == [first]
    store.close()


def test_the_password_is_never_shown(
        postgresql_server: Cluster, database: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Neither repr, errors, their location nor the log show a password,
    given in the URL, as a URL parameter or as key=value."""
    store = PostgresStore(postgresql_server.url(database, password='s3cret'))
    assert repr(store) == (f"<PostgresStore 'postgresql://postgres:***@"
                           f"127.0.0.1:{postgresql_server.port}/{database}'>")
    add(store)
    postgresql_server.terminate(database)
    with caplog.at_level(logging.DEBUG, logger='onecron'), \
            pytest.raises(StoreError) as error:
        store.runs('app')
    texts = [str(error.value), str(error.value.location), caplog.text]
    store.close()
    port = free_port()
    for url in (f'postgresql://u:s3cret@127.0.0.1:{port}/x',
                f'postgresql://u@127.0.0.1:{port}/x?password=s3cret',
                f"host=127.0.0.1 port={port} password='s3cret' dbname=x"):
        with pytest.raises(StoreError) as error:
            PostgresStore(url).runs('app')
        texts += [str(error.value), str(error.value.location)]
    assert not [text for text in texts if 's3cret' in text]


def test_a_bad_url_is_a_value_error() -> None:
    """A string libpq cannot parse is refused, without its password."""
    with pytest.raises(ValueError, match='not a PostgreSQL URL') as error:
        PostgresStore('postgresql://u:s3cret@host:port:x/db?nonsense=1')
    assert 's3cret' not in str(error.value)


def test_a_forked_child_leaves_the_parents_session_alone(
        store: PostgresStore) -> None:
    """A forked child writes through its own session and, closing the
    store, does not end its parent's."""
    add(store, 'parent')
    session = store._connection().info.backend_pid
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 1
        try:
            add(store, 'child')
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    add(store, 'parent again')
    assert store._connection().info.backend_pid == session
    assert set(store.last_runs('app')) == {'parent', 'child', 'parent again'}


def test_ended_threads_do_not_keep_sessions(
        postgresql_server: Cluster, store: PostgresStore,
        database: str) -> None:
    """Sessions of threads that ended are closed; close() ends the rest
    and the store refuses work after."""
    for _ in range(20):
        thread = threading.Thread(target=add, args=(store,))
        thread.start()
        thread.join()
    assert len(postgresql_server.sessions(database)) <= 2
    store.close()
    assert postgresql_server.sessions(database) == []
    with pytest.raises(StoreError, match='closed'):
        add(store)


# --- data ------------------------------------------------------------------

def test_nul_characters_are_stored_escaped(store: PostgresStore) -> None:
    """Output and error with NUL (which PostgreSQL text refuses) are
    stored with the NUL escaped."""
    run_id = store.start_run('app', 'job', trigger=Trigger.URL, started=T0)
    store.finish_run(run_id, ended=T0, outcome=Outcome.FAILED,
                     output='a\x00b', error='e\x00')
    run = store.get_run(run_id)
    assert run is not None
    assert (run.output, run.error) == ('a\\x00b', 'e\\x00')


def test_times_come_back_in_utc_whatever_the_server_zone(
        postgresql_server: Cluster, database: str) -> None:
    """A server and database set to another time zone still give UTC."""
    with connect(postgresql_server.url()) as db:
        db.execute(f"ALTER DATABASE {database} SET TimeZone = 'Asia/Tokyo'")
    with PostgresStore(postgresql_server.url(database)) as store:
        run = store.get_run(add(store))
    assert run is not None and run.started == T0
    assert run.started.tzinfo == timezone.utc


def test_status_queries_use_indexes_with_20000_runs(
        store: PostgresStore, postgresql_url: str) -> None:
    """last_runs and runs search indexes over 200 jobs × 100 runs
    (no sequential scan of the runs), and last_runs finds each job's
    newest run."""
    with connect(postgresql_url) as db:
        db.execute("""INSERT INTO onecron_runs (application_id, job,
            triggered_by, started, ended, outcome)
            SELECT 'app', 'job' || lpad((i %% 200)::text, 3, '0'), 'scheduler',
                %(t)s, CASE WHEN i %% 1000 <> 7 THEN %(t)s END,
                CASE WHEN i %% 1000 <> 7 THEN 'ok' END
            FROM generate_series(0, 19999) AS i""", {'t': T0})
        db.execute('ANALYZE onecron_runs')
        last = store.last_runs('app')
        assert len(last) == 200
        assert last['job000'].id == 19_801 and last['job199'].id == 20_000
        for sql, arguments in (
                (_LAST_RUNS, {'app': 'app'}),
                _runs_query('app', None, 20, None),
                _runs_query('app', 'job007', 50, 5000)):
            plan = '\n'.join(row[0] for row in db.execute(
                'EXPLAIN ' + sql, arguments))
            assert 'Seq Scan on onecron_runs' not in plan, plan
            assert re.search(r'Index (Only )?Scan (Backward )?(using|on) '
                             r'onecron_runs_', plan), plan
