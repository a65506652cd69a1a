"""How late onecron's jobs start, over real HTTP, against a floor.

    python benchmarks/bench_lateness.py

One process, as in production: waitress on 127.0.0.1 (16 threads) serves a
CronApp wrapping a bare WebOb app, and onecron's scheduler runs beside it.

* floor, single: plain requests to the bare app with pycurl, one at a time;
  latency = handler start - request start.
* floor, burst: 100 plain requests sent at once over at most 16 connections
  (pycurl multi); latency = handler start - burst start.
* onecron, single: one job due every second; lateness = job start - due time.
* onecron, burst: 100 jobs due in the same second (every 2 s);
  lateness = job start - due time.
* APScheduler 3 (BackgroundScheduler, 16 worker threads), the same burst,
  in process without HTTP, for comparison.

Targets: single median <= 3x the floor's single median; burst median and
p99 <= 1.5x the floor's burst median and p99.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime

import pycurl
from waitress.server import create_server
from webob import Request, Response
from webob.dec import wsgify

from onecron import CronApp

BURST = 100
BURSTS = 5
SINGLES = 10
CONNECTIONS = 16


class Bare:
    """The floor: a plain app that notes when each request reached it."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}

    @wsgify
    def __call__(self, request: Request) -> Response:
        self.arrivals[request.GET.get('id', '')] = time.time()
        return Response('ok', content_type='text/plain')


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def floor_single(url: str, bare: Bare) -> list[float]:
    latencies = []
    for number in range(SINGLES * 3):
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, f'{url}/plain?id=s{number}')
        curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
        started = time.time()
        curl.perform()
        curl.close()
        latencies.append(bare.arrivals[f's{number}'] - started)
    return latencies


def floor_burst(url: str, bare: Bare, round_: int) -> list[float]:
    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, CONNECTIONS)
    handles = []
    started = time.time()
    for number in range(BURST):
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, f'{url}/plain?id=b{round_}-{number}')
        curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
        multi.add_handle(curl)
        handles.append(curl)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, active = multi.perform()
        if not active:
            break
        multi.select(0.1)
    for curl in handles:
        multi.remove_handle(curl)
        curl.close()
    return [bare.arrivals[f'b{round_}-{number}'] - started
            for number in range(BURST)]


def onecron_runs(app: CronApp, base_url: str, count: int,
                 names: list[str]) -> list[float]:
    """Lateness of each run of the named jobs until ``count`` runs."""
    lateness: list[float] = []
    mutex = threading.Lock()
    done = threading.Event()

    def job(request: Request) -> None:
        started = time.time()
        due = datetime.fromisoformat(request.headers['X-Onecron-Occurrence'])
        with mutex:
            if len(lateness) < count:
                lateness.append(started - due.timestamp())
            if len(lateness) >= count:
                done.set()

    for name in names:
        app.cronjob(every=None, expr=EXPRESSIONS[len(names) > 1], name=name,
                    jitter=False)(job)
    app.start(base_url=base_url)
    done.wait(120)
    app.stop()
    return lateness


EXPRESSIONS = {False: '* * * * * *', True: '*/2 * * * * *'}


def apscheduler_burst() -> list[float]:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    lateness: list[float] = []
    mutex = threading.Lock()
    done = threading.Event()

    def job() -> None:
        started = time.time()
        with mutex:
            if len(lateness) < BURST * BURSTS:
                lateness.append(started - (started // 2) * 2)
            if len(lateness) >= BURST * BURSTS:
                done.set()

    scheduler = BackgroundScheduler(
        executors={'default': ThreadPoolExecutor(CONNECTIONS)},
        job_defaults={'misfire_grace_time': 30, 'coalesce': False,
                      'max_instances': 1})
    for number in range(BURST):
        scheduler.add_job(job, 'cron', second='*/2', id=f'job{number}')
    scheduler.start()
    done.wait(120)
    scheduler.shutdown(wait=True)
    return lateness


def row(label: str, values: list[float], floor: float | None = None,
        floor_p99: float | None = None) -> str:
    median, p99 = statistics.median(values), percentile(values, 0.99)
    text = f'{label:<34} {median * 1e3:>9.2f} {p99 * 1e3:>9.2f}'
    if floor is not None:
        text += f' {median / floor:>8.2f}x'
        if floor_p99 is not None:
            text += f' {p99 / floor_p99:>8.2f}x'
    return text


def main() -> None:
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'pycurl {pycurl.version.split()[0]}; lateness in ms\n')
    bare = Bare()
    with tempfile.TemporaryDirectory() as lock_dir:
        app = CronApp(bare, secret='bench', lock_dir=lock_dir,
                      max_concurrent=CONNECTIONS, enabled=True)
        server = create_server(app, host='127.0.0.1', port=0,
                               threads=CONNECTIONS)
        threading.Thread(target=server.run, daemon=True).start()
        url = f'http://127.0.0.1:{server.effective_port}'

        single_floor = floor_single(url, bare)
        burst_floor = [latency for round_ in range(BURSTS)
                       for latency in floor_burst(url, bare, round_)]
        single = onecron_runs(app, url, SINGLES, ['single'])
        burst_app = CronApp(bare, secret='bench', lock_dir=lock_dir,
                            application_id='burst',
                            max_concurrent=CONNECTIONS)
        burst_server = create_server(burst_app, host='127.0.0.1', port=0,
                                     threads=CONNECTIONS)
        threading.Thread(target=burst_server.run, daemon=True).start()
        burst_url = f'http://127.0.0.1:{burst_server.effective_port}'
        burst = onecron_runs(burst_app, burst_url, BURST * BURSTS,
                             [f'job{n}' for n in range(BURST)])
        server.close()
        burst_server.close()
    aps = apscheduler_burst()

    single_median = statistics.median(single_floor)
    burst_median = statistics.median(burst_floor)
    burst_p99 = percentile(burst_floor, 0.99)
    print(f'{"":<34} {"median":>9} {"p99":>9} {"median/":>9} {"p99/":>9}')
    print(f'{"":<34} {"":>9} {"":>9} {"floor":>9} {"floor":>9}')
    print(row('floor: one plain request', single_floor, single_median))
    print(row('onecron: one job due alone', single, single_median))
    print(row(f'floor: {BURST} plain requests at once', burst_floor,
              burst_median, burst_p99))
    print(row(f'onecron: {BURST} jobs due at once', burst, burst_median,
              burst_p99))
    print(row(f'APScheduler 3: {BURST} jobs, no HTTP', aps, burst_median,
              burst_p99))


if __name__ == '__main__':
    main()
