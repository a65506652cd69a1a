"""What the run store costs one job run, over real HTTP.

    python benchmarks/bench_store.py

Two CronApps, each on its own waitress server on 127.0.0.1, with the same
no-op job: one without a store, one writing every run to SQLite (the run
written when it starts, completed when it ends). A pycurl client runs the
job through its URL over a kept-alive connection, switching between the
three every few calls, so all see the same machine; the table gives
each call's median, mean and 90th percentile time and the ratios of the
medians and of the means. Target: at most 1.5x.

The third row is a floor, not a store: the same two commits per run (one
as the job starts, one as it ends) into a table of one column with no
index, and nothing else. No schema gets a run under what it costs.
"""

from __future__ import annotations

import platform
import sqlite3
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pycurl
from common import request_times, serve

from onecron import CronApp
from onecron.stores.base import Outcome, Trigger
from onecron.stores.sqlite import SqliteStore

#: calls in a row to one server before switching to the other
BLOCK = 20
ROUNDS = 150
WARM_UP = 10


class TwoCommits(SqliteStore):
    """The floor: a run's two commits, each a one-column row, no index."""

    def _start_run(self, application_id: str, job: str,
                   scheduled: datetime | None, trigger: Trigger,
                   started: datetime, key: str | None) -> int:
        with self._write() as db:
            cursor = db.execute('INSERT INTO bare (job) VALUES (?)', (job,))
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def _finish(self, run_id: int | None, key: str | None, ended: datetime,
                outcome: Outcome, http_status: int | None, output: str,
                error: str | None) -> bool:
        with self._write() as db:
            return db.execute('UPDATE bare SET job = job WHERE id = ?',
                              (run_id,)).rowcount > 0


def main() -> None:
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'SQLite {sqlite3.sqlite_version}; {ROUNDS} rounds x {BLOCK} '
          f'runs on each, interleaved\n')
    with tempfile.TemporaryDirectory() as directory:
        apps = {
            'no store': CronApp(secret='bench', enabled=False),
            'SQLite store': CronApp(secret='bench', enabled=False,
                                    store=str(Path(directory) / 'runs.db')),
            'two commits': CronApp(secret='bench', enabled=False,
                                   store=_floor(Path(directory) / 'bare.db')),
        }
        urls = {}
        for label, app in apps.items():
            app.cronjob(name='noop')(lambda request: None)
            urls[label] = app.url_for('noop', serve(app))
        curl = pycurl.Curl()
        curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
        curl.setopt(pycurl.POST, 1)
        curl.setopt(pycurl.POSTFIELDS, b'')
        times: dict[str, list[float]] = {label: [] for label in apps}
        for round_ in range(WARM_UP + ROUNDS):
            for label, url in urls.items():
                block = request_times(curl, url, BLOCK)
                if round_ >= WARM_UP:
                    times[label].extend(block)
        store = apps['SQLite store'].store
        assert store is not None
        written = len(store.runs('default', 'noop', limit=10))
    median = {label: statistics.median(v) for label, v in times.items()}
    mean = {label: statistics.mean(v) for label, v in times.items()}
    base = 'no store'
    print(f'{"ms per run":<14} {"median":>7} {"mean":>7} {"p90":>7} '
          f'{"ratio (median)":>15} {"ratio (mean)":>13}')
    for label, values in times.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f'{label:<14} {median[label]:>7.3f} {mean[label]:>7.3f} '
              f'{p90:>7.3f} {median[label] / median[base]:>14.2f}x '
              f'{mean[label] / mean[base]:>12.2f}x')
    added = {label: (median[label] - median[base]) * 1e3
             for label in ('SQLite store', 'two commits')}
    print(f'\nthe store adds {added["SQLite store"]:.0f} us per run, two '
          f'bare commits {added["two commits"]:.0f} us (medians); '
          f'{written} of the newest 10 runs read back')


def _floor(path: Path) -> TwoCommits:
    store = TwoCommits(path)
    with store._write() as db:
        db.execute('CREATE TABLE bare (id INTEGER PRIMARY KEY, job TEXT)')
    return store


if __name__ == '__main__':
    main()
