"""What CronApp costs a request outside its prefix.

    python benchmarks/bench_overhead.py

Times the same plain request through a bare WebOb app and through
``CronApp(app)`` (enabled, scheduler running, and disabled), in-process,
interleaved in many short rounds; reports medians and the ratio to the bare
app. Timed with the thread's CPU clock, so time the shared machine gives to
other processes does not count against whichever app happened to run then.
Target: at most 1.05x.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from webob import Request, Response
from webob.dec import wsgify

from onecron import CronApp

ROUNDS = 60
CALLS = 5_000


@wsgify
def bare(request: Request) -> Response:
    return Response('hello', content_type='text/plain')


def per_call(app: Callable[..., Any], environ: dict[str, Any]) -> float:
    """Microseconds per call of ``app`` on a copy of ``environ``."""
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    started = time.thread_time()
    for _ in range(CALLS):
        for _chunk in app(dict(environ), start_response):
            pass
    return (time.thread_time() - started) / CALLS * 1e6


def main() -> None:
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'{ROUNDS} rounds x {CALLS} calls, thread CPU time, medians\n')
    environ = Request.blank('/some/page?x=1').environ
    with tempfile.TemporaryDirectory() as lock_dir:
        enabled = CronApp(bare, secret='s', lock_dir=lock_dir,
                          base_url='http://127.0.0.1:9')
        enabled.cronjob(hour=3, minute=0, name='nightly')(lambda r: None)
        enabled.start()
        disabled = CronApp(bare, secret='s', enabled=False)
        apps = {'bare WebOb app': bare, 'CronApp (scheduler running)': enabled,
                'CronApp (enabled=False)': disabled}
        timings: dict[str, list[float]] = {name: [] for name in apps}
        for app in apps.values():  # warm up
            per_call(app, environ)
        for _ in range(ROUNDS):
            for name, app in apps.items():
                timings[name].append(per_call(app, environ))
        enabled.stop()
    base = statistics.median(timings['bare WebOb app'])
    print(f'{"app":<30} {"us/request":>11} {"ratio":>7}')
    for name, values in timings.items():
        median = statistics.median(values)
        print(f'{name:<30} {median:>11.2f} {median / base:>6.3f}x')


if __name__ == '__main__':
    main()
