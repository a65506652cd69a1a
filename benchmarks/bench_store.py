"""What the run store costs one job run, over real HTTP.

    python benchmarks/bench_store.py

Two CronApps, each on its own waitress server on 127.0.0.1, with the same
no-op job: one without a store, one writing every run to SQLite (the run
written when it starts, completed when it ends). A pycurl client runs the
job through its URL, one call at a time over a kept-alive connection, in
interleaved rounds; the table gives the median time per run and the ratio.
Target: at most 1.5x.
"""

from __future__ import annotations

import platform
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

import pycurl

from common import ms_per_request, serve
from onecron import CronApp

ROUNDS = 15
CALLS = 200


def main() -> None:
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'SQLite {sqlite3.sqlite_version}; {ROUNDS} interleaved rounds x '
          f'{CALLS} runs, medians\n')
    with tempfile.TemporaryDirectory() as directory:
        apps = {
            'no store': CronApp(secret='bench', enabled=False),
            'SQLite store': CronApp(secret='bench', enabled=False,
                                    store=str(Path(directory) / 'runs.db')),
        }
        urls = {}
        for label, app in apps.items():
            app.cronjob(name='noop')(lambda request: None)
            urls[label] = app.url_for('noop', serve(app))
        curl = pycurl.Curl()
        curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
        curl.setopt(pycurl.POST, 1)
        curl.setopt(pycurl.POSTFIELDS, b'')
        timings: dict[str, list[float]] = {label: [] for label in apps}
        for url in urls.values():  # warm up
            ms_per_request(curl, url, CALLS)
        for _ in range(ROUNDS):
            for label, url in urls.items():
                timings[label].append(ms_per_request(curl, url, CALLS))
        store = apps['SQLite store'].store
        assert store is not None
        written = len(store.runs('default', 'noop', limit=10))
    base = statistics.median(timings['no store'])
    print(f'{"":<14} {"ms/run":>8} {"ratio":>7}')
    for label, values in timings.items():
        median = statistics.median(values)
        print(f'{label:<14} {median:>8.3f} {median / base:>6.2f}x')
    print(f'\n(the store holds the runs: {written} of the newest 10 read '
          f'back)')


if __name__ == '__main__':
    main()
