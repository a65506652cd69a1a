"""The HTTP caller against a real server: outcomes, timeouts, concurrency."""

from __future__ import annotations

import os
import queue
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from webob import Request, Response
from webob.dec import wsgify

from onecron.running.caller import Caller, CallRequest, CallResult
from onecron.schedule.clock import ManualClock


class Backend:
    """A small app with the answers a job URL can give."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.methods: list[str] = []
        self._mutex = threading.Lock()

    @wsgify
    def __call__(self, request: Request) -> Response:
        self.methods.append(request.method)
        with self._mutex:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if request.path == '/sleep':
                time.sleep(float(request.GET['s']))
            if request.path == '/fail':
                return Response('boom', status=500)
            if request.path == '/redirect':
                return Response(status=302, location='http://elsewhere/')
            return Response('fine')
        finally:
            with self._mutex:
                self.running -= 1


@pytest.fixture
def backend(live_server: Any) -> tuple[Backend, str]:
    app = Backend()
    return app, live_server(app, threads=16).url


@pytest.fixture
def caller() -> Any:
    caller = Caller(max_concurrent=4, connect_timeout=2)
    yield caller
    caller.close()


def call(caller: Caller, url: str, timeout: float = 5) -> CallResult:
    results: queue.Queue[CallResult] = queue.Queue()
    caller.call(url, timeout=timeout, on_done=results.put)
    return results.get(timeout=timeout + 5)


def test_ok(caller: Caller, backend: tuple[Backend, str]) -> None:
    """A 200 is ok, with the body, and the call is a POST."""
    app, url = backend
    result = call(caller, url + '/ok')
    assert result.ok and result.status == 200 and result.body == b'fine'
    assert app.methods == ['POST']
    assert result.describe().startswith('HTTP 200')


def test_server_error_is_a_failure(caller: Caller, backend: Any) -> None:
    """A 500 is not ok (the model counted it as finished)."""
    result = call(caller, backend[1] + '/fail')
    assert not result.ok and result.status == 500
    assert 'HTTP 500' in result.describe()


def test_redirect_is_not_followed(caller: Caller, backend: Any) -> None:
    """A redirect is a failure that names where it pointed."""
    result = call(caller, backend[1] + '/redirect')
    assert not result.ok and result.status == 302
    assert result.redirect == 'http://elsewhere/'
    assert result.describe() == 'HTTP 302 redirect to http://elsewhere'


def test_redirect_is_described_without_its_path() -> None:
    """A redirect that echoes the job URL is told by scheme and host only:
    its path and query hold the token and the run key."""
    result = CallResult(url='http://app/cronjobs/SECRET', status=301,
                        duration=0.1,
                        redirect='https://app:8443/cronjobs/SECRET?k=KEY')
    assert result.describe() == 'HTTP 301 redirect to https://app:8443'


def test_timeout(caller: Caller, backend: Any) -> None:
    """A call past its total timeout ends as timed out."""
    result = call(caller, backend[1] + '/sleep?s=3', timeout=0.5)
    assert not result.ok and result.timed_out
    assert 'timed out' in result.describe()


def test_connection_refused(caller: Caller) -> None:
    """No server: an error result, not an exception."""
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    result = call(caller, f'http://127.0.0.1:{port}/')
    assert not result.ok and result.status == 0 and result.error


def test_slow_call_does_not_delay_a_fast_one(caller: Caller,
                                             backend: Any) -> None:
    """A hung call and a quick one run side by side."""
    done: queue.Queue[CallResult] = queue.Queue()
    caller.call(backend[1] + '/sleep?s=3', timeout=10, on_done=done.put)
    caller.call(backend[1] + '/ok', timeout=10, on_done=done.put)
    first = done.get(timeout=10)
    assert first.url.endswith('/ok')
    assert done.get(timeout=10).url.endswith('/sleep?s=3')


def test_concurrency_is_bounded(caller: Caller, backend: Any) -> None:
    """No more than max_concurrent calls are in flight at once."""
    app, url = backend
    done: queue.Queue[CallResult] = queue.Queue()
    for _ in range(12):
        caller.call(url + '/sleep?s=0.2', timeout=10, on_done=done.put)
    results = [done.get(timeout=20) for _ in range(12)]
    assert all(r.ok for r in results)
    assert app.most == 4


def test_a_failing_callback_does_not_stop_the_caller(caller: Caller,
                                                     backend: Any) -> None:
    """An exception in on_done is logged; later calls still complete."""
    def explode(result: CallResult) -> None:
        raise RuntimeError('callback bug')
    caller.call(backend[1] + '/ok', timeout=5, on_done=explode)
    assert call(caller, backend[1] + '/ok').ok


def test_close_and_reuse(caller: Caller, backend: Any) -> None:
    """After close() the next call starts a fresh thread."""
    assert call(caller, backend[1] + '/ok').ok
    caller.close()
    assert not caller.running
    assert call(caller, backend[1] + '/ok').ok


def test_idle_caller_uses_no_cpu(caller: Caller, backend: Any) -> None:
    """Between calls the thread sleeps (no polling)."""
    assert call(caller, backend[1] + '/ok').ok
    before = time.thread_time(), os.times()
    time.sleep(1.0)
    after = os.times()
    # the whole process (test thread asleep) burnt well under 50 ms
    assert (after.user + after.system) - (before[1].user + before[1].system) < 0.05


def test_works_in_a_forked_child(caller: Caller, backend: Any) -> None:
    """After fork, the child's calls get a fresh thread of their own."""
    assert call(caller, backend[1] + '/ok').ok
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        caller.after_fork()
        ok = call(caller, backend[1] + '/ok').ok
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_armed_call_starts_at_its_time_not_before(caller: Caller,
                                                  live_server: Any) -> None:
    """A call with not_before reaches the server at that instant, not earlier."""
    arrivals: list[float] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        arrivals.append(time.time())
        start_response('200 OK', [('Content-Length', '0')])
        return [b'']

    url = live_server(app).url
    results: queue.Queue[CallResult] = queue.Queue()
    start_at = [time.time() + delay for delay in (0.4, 0.2, 0.3)]
    caller.call_all([CallRequest(url, 5, results.put, (), not_before=at)
                     for at in start_at])
    caller.call(url, timeout=5, on_done=results.put)  # unarmed: at once
    outcomes = [results.get(timeout=10) for _ in range(4)]
    assert all(result.ok for result in outcomes)
    assert arrivals[0] < min(start_at)
    assert all(arrived >= at for arrived, at in zip(arrivals[1:],
                                                    sorted(start_at)))


def test_an_armed_call_waits_for_the_callers_clock(
        live_server: Any) -> None:
    """A call armed on a ManualClock starts when that clock gets to its
    time, however long that takes in real time, and its duration is
    measured on that clock."""
    start = datetime(2030, 1, 7, 12, 0, tzinfo=timezone.utc)
    clock = ManualClock(start)
    caller = Caller(clock=clock)
    arrivals: list[float] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        arrivals.append(clock.time())
        start_response('200 OK', [('Content-Length', '0')])
        return [b'']

    try:
        results: queue.Queue[CallResult] = queue.Queue()
        caller.call(live_server(app).url, timeout=5, on_done=results.put,
                    not_before=start.timestamp() + 60)
        clock.advance(59.99)
        with pytest.raises(queue.Empty):
            results.get(timeout=0.3)  # a real 0.3 s: still armed
        clock.advance(0.01)
        result = results.get(timeout=10)
        assert result.ok and arrivals == [start.timestamp() + 60]
        assert result.duration == 0.0  # the clock stood still meanwhile
    finally:
        caller.close()
