"""What the run store costs one job run, over real HTTP.

    python benchmarks/bench_store.py

Two CronApps, each on its own waitress server on 127.0.0.1, with the same
no-op job: one without a store, one writing every run to SQLite (the run
written when it starts, completed when it ends). A pycurl client runs the
job through its URL over a kept-alive connection, switching between the
two every few calls, so both see the same machine; the table gives each
call's median, mean and 90th percentile time and the ratios of the
medians and of the means. Target: at most 1.5x.
"""

from __future__ import annotations

import platform
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

import pycurl

from common import request_times, serve
from onecron import CronApp

#: calls in a row to one server before switching to the other
BLOCK = 20
ROUNDS = 150
WARM_UP = 10


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
    added = (median['SQLite store'] - median[base]) * 1e3
    print(f'\nthe store adds {added:.0f} us per run (medians); '
          f'{written} of the newest 10 runs read back')


if __name__ == '__main__':
    main()
