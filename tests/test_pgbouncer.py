"""The PostgreSQL store behind PgBouncer in transaction pooling mode.

The contract of every store runs through PgBouncer too (the ``pgbouncer``
backend of ``test_store.py``); here is what a pooler in transaction mode
breaks when a client counts on its session: settings made by ``SET``,
statements prepared on the server. The pooler of the tests hands its
server sessions out in turn, so each transaction of the store runs on
another one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from webob import Request

from onecron import CronApp
from onecron.stores.base import Outcome, StoreError, Trigger
from onecron.stores.postgres import PostgresStore

from .conftest import Failures, LiveServer, wait_for

T0 = datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)


def add(store: PostgresStore, job: str = 'job') -> int:
    return store.record_run('app', job, trigger=Trigger.URL, started=T0,
                            ended=T0, outcome=Outcome.OK)


def test_the_same_call_again_and_again_works(pgbouncer_url: str) -> None:
    """A call made many times on one connection is never prepared on the
    server, where the next transaction would not find it."""
    with PostgresStore(pgbouncer_url) as store:
        ids = [add(store) for _ in range(20)]
        for _ in range(20):
            assert store.last_runs('app')['job'].id == ids[-1]


def test_the_store_leaves_no_setting_in_the_pooled_sessions(
        pgbouncer_url: str) -> None:
    """The store's time limits last one transaction: other clients of the
    pool never get them in their sessions."""
    with PostgresStore(pgbouncer_url, timeout=3) as store:
        for _ in range(10):
            add(store)
        with psycopg.connect(pgbouncer_url, autocommit=True,
                             prepare_threshold=None) as other:
            seen = {other.execute('SHOW statement_timeout').fetchone()
                    for _ in range(12)}
    assert seen == {('0',)}


def test_a_lock_held_elsewhere_fails_within_the_timeout(
        pgbouncer_url: str, postgresql_url: str) -> None:
    """A table locked by another session fails a call after ``timeout``
    whichever server session the pooler runs it on."""
    store = PostgresStore(pgbouncer_url, timeout=0.3)
    first = add(store)

    def end(pid: int) -> None:
        with psycopg.connect(postgresql_url, autocommit=True) as admin:
            admin.execute('SELECT pg_terminate_backend(%s)', (pid,))

    with psycopg.connect(postgresql_url, autocommit=True) as blocker:
        with blocker.transaction():
            blocker.execute('LOCK TABLE onecron_runs IN ACCESS EXCLUSIVE '
                            'MODE')
            # the lock goes after 3 s at the latest, should no call time
            # out: a failing test, not a hanging one
            timer = threading.Timer(3, end, (blocker.info.backend_pid,))
            timer.start()
            try:
                for _ in range(3):  # on three server sessions in turn
                    started = time.monotonic()
                    with pytest.raises(StoreError, match='timeout'):
                        store.runs('app')
                    assert time.monotonic() - started < 2
            finally:
                timer.cancel()
    assert [run.id for run in store.runs('app')] == [first]
    store.close()


def test_a_scheduler_runs_each_occurrence_once_through_pgbouncer(
        pgbouncer_url: str, tmp_path: Path,
        live_server: Callable[..., LiveServer]) -> None:
    """A per-second job of a CronApp whose store is behind PgBouncer: it
    runs, each occurrence once, with one run stored for each, and the
    store never fails."""
    ticks: list[str] = []

    def tick(request: Request) -> None:
        ticks.append(request.headers['X-Onecron-Occurrence'])

    reporter = Failures()
    app = CronApp(secret='s', store=pgbouncer_url, lock_dir=str(tmp_path),
                  reporter=reporter)
    app.cronjob('* * * * * *', name='tick', jitter=False)(tick)
    app.start(base_url=live_server(app).url)
    try:
        wait_for(lambda: len(ticks) >= 4, timeout=20)
        assert app.store is not None
        wait_for(lambda: len([run for run in app.store.runs(
            'default', 'tick') if run.outcome is Outcome.OK]) >= 4)
    finally:
        app.stop()
    assert max(Counter(ticks).values()) == 1, 'an occurrence ran twice'
    runs = app.store.runs('default', 'tick', limit=1000)
    assert max(Counter(run.scheduled for run in runs).values()) == 1
    assert reporter.messages == []
