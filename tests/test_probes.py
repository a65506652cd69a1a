"""Kubernetes probes: /livez follows the scheduler loop, /readyz the
store; both cheap, open to any address, and saying nothing else."""

from __future__ import annotations

import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from webob import Request

from onecron import CronApp
from onecron.stores.base import Store
from onecron.stores.sqlite import SqliteStore
from onecron.web import probes

from .conftest import Clock, LiveServer, wait_for

NOW = datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)
SECRET = 'probe secret, long enough for the check'
#: every body a probe may answer: one word, nothing of the jobs
BODIES = {b'ok\n', b'stopped\n', b'stuck\n', b'store unavailable\n'}


def make_app(store: Store | None, tmp_path: Path, **options: Any) -> CronApp:
    app = CronApp(secret=SECRET, store=store, lock_dir=str(tmp_path),
                  **options)

    @app.cronjob('0 3 * * *', name='secret-report-job')
    def job(request: Request) -> None:
        pass

    return app


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def local(app: CronApp, path: str, **environ: Any) -> Any:
    request = Request.blank(path, environ={'REMOTE_ADDR': '127.0.0.1',
                                           **environ})
    return request.get_response(app)


def test_livez_follows_the_scheduler_loop(
        tmp_path: Path, apps: list[CronApp],
        live_server: Callable[..., LiveServer]) -> None:
    """livez: 503 before the scheduler starts, 200 while its loop runs,
    503 after stop."""
    app = make_app(SqliteStore(tmp_path / 'runs.db'), tmp_path)
    apps.append(app)
    server = live_server(app)
    assert fetch(f'{server.url}/cronjobs/livez')[:2] == (503, b'stopped\n')
    app.start(base_url=server.url)
    wait_for(lambda: app.clockwork.ticked is not None)
    status, body, headers = fetch(f'{server.url}/cronjobs/livez')
    assert (status, body) == (200, b'ok\n')
    assert headers['Cache-Control'] == 'no-store'
    app.stop()
    assert fetch(f'{server.url}/cronjobs/livez')[:2] == (503, b'stopped\n')


def test_livez_says_stuck_when_the_loop_stops_ticking(
        tmp_path: Path, apps: list[CronApp],
        live_server: Callable[..., LiveServer]) -> None:
    """livez: a step that hangs stops the loop's ticks; 503 once the last
    tick is STUCK_AFTER seconds old by the app's clock (200 just before),
    200 again once the step returns."""
    clock = Clock(NOW)
    app = make_app(SqliteStore(tmp_path / 'runs.db'), tmp_path, clock=clock)
    apps.append(app)
    server = live_server(app)
    app.start(base_url=server.url)
    wait_for(lambda: app.clockwork.ticked is not None)
    entered, release = threading.Event(), threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(10)

    app.clockwork.enter(clock().timestamp(), 0, app.schedulers['default'],
                         hang)
    assert entered.wait(10)
    ticked = app.clockwork.ticked
    assert ticked is not None
    try:
        clock.now = datetime.fromtimestamp(
            ticked + probes.STUCK_AFTER - 1, timezone.utc)
        assert fetch(f'{server.url}/cronjobs/livez')[:2] == (200, b'ok\n')
        clock.now = datetime.fromtimestamp(
            ticked + probes.STUCK_AFTER + 1, timezone.utc)
        assert fetch(f'{server.url}/cronjobs/livez')[:2] == (503,
                                                             b'stuck\n')
    finally:
        release.set()
    wait_for(lambda: fetch(f'{server.url}/cronjobs/livez')[0] == 200)


def test_livez_of_a_disabled_app_is_always_ok(tmp_path: Path) -> None:
    """With enabled=False no scheduler runs here by design: live."""
    app = make_app(None, tmp_path, enabled=False)
    assert local(app, '/cronjobs/livez').status_int == 200


def test_readyz_follows_the_store(
        tmp_path: Path, live_server: Callable[..., LiveServer]) -> None:
    """readyz: 200 while the store answers, 503 when it fails; 200
    without a store."""
    store = SqliteStore(tmp_path / 'runs.db')
    app = make_app(store, tmp_path, enabled=False)
    server = live_server(app)
    assert fetch(f'{server.url}/cronjobs/readyz')[:2] == (200, b'ok\n')
    store.close()  # every call fails from now on
    status, body, _ = fetch(f'{server.url}/cronjobs/readyz')
    assert (status, body) == (503, b'store unavailable\n')
    bare = live_server(make_app(None, tmp_path, enabled=False))
    assert fetch(f'{bare.url}/cronjobs/readyz')[:2] == (200, b'ok\n')


def test_readyz_with_an_unreachable_database(tmp_path: Path) -> None:
    """readyz: 503 when the PostgreSQL server does not answer."""
    from onecron.stores.postgres import PostgresStore
    store = PostgresStore('postgresql://nobody@127.0.0.1:9/none',
                          timeout=1)
    app = make_app(store, tmp_path, enabled=False)
    response = local(app, '/cronjobs/readyz')
    assert (response.status_int, response.body) == (503,
                                                    b'store unavailable\n')
    store.close()


def test_probes_skip_the_access_rule_and_reveal_nothing(
        tmp_path: Path, apps: list[CronApp]) -> None:
    """From any address (the kubelet's), the probes answer one word and
    no header names a job, a URL or a token; /metrics and the status page
    stay refused there."""
    app = make_app(SqliteStore(tmp_path / 'runs.db'), tmp_path,
                   base_url='http://app.example')
    apps.append(app)
    app.start()
    wait_for(lambda: app.clockwork.ticked is not None)
    token_url = app.url_for('secret-report-job')
    for address in ('10.1.2.3', '203.0.113.7'):
        for path in ('/cronjobs/livez', '/cronjobs/readyz'):
            response = local(app, path, REMOTE_ADDR=address)
            assert response.status_int == 200
            assert response.body in BODIES
            everything = response.body + repr(response.headerlist).encode()
            for secret in ('secret-report-job', token_url, SECRET,
                           str(tmp_path), 'app.example'):
                assert secret.encode() not in everything
            head = local(app, path, REMOTE_ADDR=address,
                         REQUEST_METHOD='HEAD')
            assert head.status_int == 200 and head.body == b''
            post = local(app, path, REMOTE_ADDR=address,
                         REQUEST_METHOD='POST')
            assert post.status_int == 405
        for path in ('/cronjobs/metrics', '/cronjobs/'):
            assert local(app, path, REMOTE_ADDR=address).status_int == 403


def test_probes_cost_well_under_a_millisecond(
        tmp_path: Path, apps: list[CronApp]) -> None:
    """A probe's own work (the checks, not the WSGI round) takes well
    under a millisecond."""
    app = make_app(SqliteStore(tmp_path / 'runs.db'), tmp_path,
                   base_url='http://app.example')
    apps.append(app)
    app.start()
    wait_for(lambda: app.clockwork.ticked is not None)
    for check in (probes.live, probes.ready):
        assert check(app) is None
        times = []
        for _ in range(200):
            start = time.perf_counter()
            check(app)
            times.append(time.perf_counter() - start)
        assert statistics.median(times) < 0.0005, check


def test_stuck_after_is_documented_as_three_idle_sleeps() -> None:
    """The stuck bound leaves the idle loop's longest sleep three times
    over (two minutes for a slow step)."""
    from onecron.running.clockwork import MAX_SLEEP
    assert probes.STUCK_AFTER == 3 * MAX_SLEEP == 180


def test_the_first_probe_starts_the_scheduler_it_checks(
        tmp_path: Path, apps: list[CronApp],
        live_server: Callable[..., LiveServer]) -> None:
    """With a base URL configured, the kubelet's first request starts the
    scheduler, so livez answers 200 at once: no restart loop."""
    app = make_app(SqliteStore(tmp_path / 'runs.db'), tmp_path,
                   base_url='http://127.0.0.1:9')
    apps.append(app)
    server = live_server(app)
    assert fetch(f'{server.url}/cronjobs/livez')[:2] == (200, b'ok\n')
    assert app.clockwork.alive


def test_readyz_logs_an_outage_once(
        tmp_path: Path, caplog: Any) -> None:
    """The kubelet asks every few seconds: the outage is one log line, and
    its end one more."""
    store = SqliteStore(tmp_path / 'runs.db')
    app = make_app(store, tmp_path, enabled=False)
    store.close()
    with caplog.at_level('WARNING', logger='onecron.web.probes'):
        for _ in range(5):
            assert local(app, '/cronjobs/readyz').status_int == 503
    assert len(caplog.records) == 1
    assert 'does not answer' in caplog.records[0].getMessage()
