"""How the status page scales with stored runs.

    python benchmarks/bench_status.py

Two CronApps with the same 200 jobs, each on its own waitress server on
127.0.0.1, each with an SQLite store: one holding 1,000 runs (5 per job),
one holding 100,000 (500 per job). A pycurl client loads the page
(``{prefix}/``) and ``status.json`` from both, in interleaved rounds; the
table gives medians and the ratio. Target: at most 1.5x (queries use
indexes; nothing loads all runs).
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

JOBS = 200
ROUNDS = 9
LOADS = 10


def app_with_runs(directory: Path, runs: int) -> CronApp:
    path = directory / f'runs-{runs}.sqlite'
    app = CronApp(secret='bench', enabled=False, store=str(path),
                  base_url='http://127.0.0.1:9')
    for number in range(JOBS):
        app.cronjob(f'{number % 60} * * * *', name=f'job{number:03}')(
            lambda request: None)
    # filled in bulk, straight into the store's own schema
    with sqlite3.connect(path) as db:
        db.executemany(
            'INSERT INTO runs (application_id, job, triggered_by, started, '
            "ended, outcome, http_status, output) VALUES ('default', ?, "
            "'scheduler', ?, ?, 'ok', 200, 'done')",
            ((f'job{i % JOBS:03}', '2026-11-01T08:30:00.000000+00:00',
              '2026-11-01T08:30:01.000000+00:00') for i in range(runs)))
    return app


def main() -> None:
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'SQLite {sqlite3.sqlite_version}; {JOBS} jobs; {ROUNDS} '
          f'interleaved rounds x {LOADS} loads, medians\n')
    with tempfile.TemporaryDirectory() as directory:
        urls = {runs: serve(app_with_runs(Path(directory), runs))
                for runs in (1_000, 100_000)}
        curl = pycurl.Curl()
        curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
        print(f'{"":<12} {"runs stored":>12} {"ms/load":>9} {"ratio":>7}')
        for page in ('/cronjobs/', '/cronjobs/status.json'):
            timings: dict[int, list[float]] = {runs: [] for runs in urls}
            for url in urls.values():  # warm up
                ms_per_request(curl, url + page, LOADS)
            for _ in range(ROUNDS):
                for runs, url in urls.items():
                    timings[runs].append(
                        ms_per_request(curl, url + page, LOADS))
            base = statistics.median(timings[1_000])
            for runs, values in timings.items():
                median = statistics.median(values)
                label = 'page' if page.endswith('/') else 'status.json'
                print(f'{label:<12} {runs:>12,} {median:>9.2f} '
                      f'{median / base:>6.2f}x')


if __name__ == '__main__':
    main()
