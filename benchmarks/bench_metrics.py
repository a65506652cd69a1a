"""How ``{prefix}/metrics`` scales with stored runs.

    python benchmarks/bench_metrics.py [--postgresql URL]

Two CronApps with the same 200 jobs, each with its own store: one
holding 1,000 runs (5 per job), one holding 100,000 (500 per job), of
every outcome, with durations and lateness spread over the buckets.
``/metrics`` is requested in-process (no server, no socket) from both, in
interleaved rounds; the table gives medians and the ratio. Target: at
most 1.5x (the store keeps the sums as runs end: a scrape reads one
index range per application id, never the runs). SQLite; with
``--postgresql URL`` (an empty database: its tables are dropped and made
anew) PostgreSQL too.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from webob import Request

from onecron import CronApp
from onecron.stores.base import Store

JOBS = 200
ROUNDS = 9
LOADS = 10
OUTCOMES = ('ok', 'ok', 'ok', 'failed', 'timed out', 'skipped')
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def rows(count: int) -> list[tuple[Any, ...]]:
    """``count`` runs of the 200 jobs: (job, scheduled, started, ended,
    outcome), as datetimes."""
    made = []
    for number in range(count):
        scheduled = T0 + timedelta(minutes=number)
        started = scheduled + timedelta(seconds=(number % 97) / 10)
        ended = started + timedelta(seconds=(number % 1013) / 3)
        made.append((f'job{number % JOBS:03}', scheduled, started, ended,
                     OUTCOMES[number % len(OUTCOMES)]))
    return made


def fill_sqlite(path: Path, count: int) -> None:
    """Fill in bulk, straight into the store's schema (the triggers count
    each run as the store would)."""
    with sqlite3.connect(path) as db:
        db.executemany(
            'INSERT INTO runs (id, application_id, job, scheduled, '
            'triggered_by, started, ended, outcome, http_status, output) '
            "VALUES (?, 'default', ?, ?, 'scheduler', ?, ?, ?, 200, 'done')",
            ((number + 1, job, *(moment.isoformat(timespec='microseconds')
                                 for moment in (scheduled, started, ended)),
              outcome) for number, (job, scheduled, started, ended, outcome)
             in enumerate(rows(count))))


def fill_postgresql(url: str, count: int) -> None:
    import psycopg
    with psycopg.connect(url, autocommit=True) as db, db.cursor() as cursor:
        cursor.executemany(
            'INSERT INTO onecron_runs (application_id, job, scheduled, '
            'triggered_by, started, ended, outcome, http_status, output) '
            "VALUES ('default', %s, %s, 'scheduler', %s, %s, %s, 200, "
            "'done')", rows(count))
    # where autovacuum would be in a while: the bulk load left the stats
    # rows' old versions behind, a steady trickle of runs does not
    with psycopg.connect(url, autocommit=True) as db:
        db.execute('VACUUM ANALYZE onecron_run_stats')


def app_on(store: Store | str) -> CronApp:
    app = CronApp(secret='bench secret, long enough for the check',
                  enabled=False, store=store, base_url='http://127.0.0.1:9')
    for number in range(JOBS):
        app.cronjob(f'{number % 60} * * * *', name=f'job{number:03}')(
            lambda request: None)
    return app


def ms_per_scrape(app: CronApp, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        response = Request.blank(
            '/cronjobs/metrics',
            environ={'REMOTE_ADDR': '127.0.0.1'}).get_response(app)
        assert response.status_int == 200, response.text
    return (time.perf_counter() - started) * 1e3 / count


def compare(label: str, apps: dict[int, CronApp]) -> None:
    for app in apps.values():  # warm up
        ms_per_scrape(app, 2)
    timings: dict[int, list[float]] = {runs: [] for runs in apps}
    for _ in range(ROUNDS):
        for runs, app in apps.items():
            timings[runs].append(ms_per_scrape(app, LOADS))
    base = statistics.median(timings[1_000])
    for runs, values in timings.items():
        median = statistics.median(values)
        print(f'{label:<12} {runs:>12,} {median:>9.2f} {median / base:>6.2f}x')


def sqlite_apps(directory: Path) -> dict[int, CronApp]:
    apps = {}
    for runs in (1_000, 100_000):
        path = directory / f'runs-{runs}.sqlite'
        app = app_on(str(path))  # makes the schema
        fill_sqlite(path, runs)
        apps[runs] = app
    return apps


def postgresql_apps(url: str) -> Callable[[], dict[int, CronApp]]:
    """Apps on two schemas of the database at ``url``."""
    import psycopg

    def make() -> dict[int, CronApp]:
        apps = {}
        for runs in (1_000, 100_000):
            schema = f'bench_metrics_{runs}'
            with psycopg.connect(url, autocommit=True) as db:
                db.execute(f'DROP SCHEMA IF EXISTS {schema} CASCADE')
                db.execute(f'CREATE SCHEMA {schema}')
            scoped = (f'{url}{"&" if "?" in url else "?"}'
                      f'options=-csearch_path%3D{schema}')
            app = app_on(scoped)
            assert app.store is not None
            app.store.version()  # makes the schema
            fill_postgresql(scoped, runs)
            apps[runs] = app
        return apps
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--postgresql', metavar='URL')
    options = parser.parse_args()
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'SQLite {sqlite3.sqlite_version}; {JOBS} jobs; {ROUNDS} '
          f'interleaved rounds x {LOADS} scrapes in-process, medians\n')
    print(f'{"":<12} {"runs stored":>12} {"ms/scrape":>9} {"ratio":>7}')
    with tempfile.TemporaryDirectory() as directory:
        compare('SQLite', sqlite_apps(Path(directory)))
    if options.postgresql:
        compare('PostgreSQL', postgresql_apps(options.postgresql)())


if __name__ == '__main__':
    main()
