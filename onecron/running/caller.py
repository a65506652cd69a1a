"""Calling job URLs over HTTP: pycurl's multi interface, driven by one thread.

The model called each job URL with a blocking pycurl request, one after the
other and without a timeout, so one hung job held up every later one. Here
all calls share one thread and one ``CurlMulti``: up to ``max_concurrent``
transfers run at once, each with connect and total timeouts, and a slow job
never delays another. The thread sleeps in :mod:`selectors` on libcurl's
sockets and a wake-up pipe, so it costs nothing while nothing is in flight.
This is the only module that imports :mod:`pycurl`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pycurl

from onecron.protocol.headers import REPORTED_HEADER
from onecron.protocol.hosts import origin
from onecron.schedule.clock import Clock, time_source

log = logging.getLogger(__name__)

#: the start of the header line of
#: :data:`~onecron.protocol.headers.REPORTED_HEADER`
_REPORTED = REPORTED_HEADER.lower().encode('ascii') + b':'

#: how much of a response body is kept for the log
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class CallResult:
    """What became of one call of a job URL."""

    url: str
    #: the HTTP status, 0 when no response arrived
    status: int
    #: seconds from the start of the transfer to its end
    duration: float
    #: libcurl's error text when no complete response arrived
    error: str | None = None
    #: where a redirect pointed (redirects are never followed)
    redirect: str | None = None
    #: whether the error was the total timeout
    timed_out: bool = False
    body: bytes = b''
    #: whether the answer says its failure was reported where it ran
    reported: bool = False

    @property
    def ok(self) -> bool:
        """A complete response with a 2xx status."""
        return self.error is None and 200 <= self.status < 300

    def describe(self) -> str:
        """A short account of the outcome for a log line."""
        if self.timed_out:
            return f'timed out after {self.duration:.1f}s'
        if self.error is not None:
            return f'call failed: {self.error}'
        if self.redirect is not None or 300 <= self.status < 400:
            # the scheme and host only: a Location that echoes the job
            # URL would put its token in the log, Sentry and the history
            where = origin(self.redirect) if self.redirect else 'nowhere'
            return f'HTTP {self.status} redirect to {where}'
        return f'HTTP {self.status} in {self.duration:.2f}s'


OnDone = Callable[[CallResult], None]

#: an armed call is woken by the selector this long before its start time,
#: then waits out the rest in the clock's sleep, which is finer than
#: epoll's millisecond timeouts
PRECISE_WAIT = 0.003


#: libcurl's clock, for its timer: libcurl counts its timeouts in real time
_libcurl_time = time.monotonic


class CallRequest(NamedTuple):
    """One call for :meth:`Caller.call_all`."""

    url: str
    #: total seconds allowed
    timeout: float
    #: gets the :class:`CallResult`, on the caller's thread
    on_done: OnDone
    headers: Sequence[str] = ()
    #: a timestamp on the caller's clock (see :meth:`SystemClock.time
    #: <onecron.schedule.clock.SystemClock.time>`): do not start before
    #: it (None: at once)
    not_before: float | None = None


class _Call:
    """A call on its way: its request, its handle, what it received."""

    __slots__ = ('request', 'curl', 'started', 'body', 'reported')

    def __init__(self, request: CallRequest) -> None:
        self.request = request
        self.curl: pycurl.Curl | None = None
        self.started = 0.0
        self.body = bytearray()
        self.reported = False

    def header(self, line: bytes) -> None:
        if line[:len(_REPORTED)].lower() == _REPORTED:
            self.reported = True

    def sink(self, chunk: bytes) -> None:
        room = MAX_BODY - len(self.body)
        if room > 0:
            self.body += chunk[:room]


class Caller:
    """Makes HTTP POST calls concurrently from one background thread.

    A call can be *armed* ahead of its time (``not_before``): its handle is
    built beforehand and the thread starts it at that instant, so a job due
    at 08:30:00 is requested within a fraction of a millisecond of it.

    :param max_concurrent: transfers in flight at once; more wait in order
        (keep it below the server's connection limit)
    :param connect_timeout: seconds allowed to connect
    :param user_agent: sent with every call
    :param clock: when armed calls start, and how long calls took (see
        :func:`~onecron.schedule.clock.time_source`; by default the real
        time). libcurl's own timeouts are real seconds whatever the clock.
    """

    def __init__(self, *, max_concurrent: int = 16,
                 connect_timeout: float = 10.0,
                 user_agent: str = 'onecron',
                 clock: Clock | None = None) -> None:
        if max_concurrent < 1:
            raise ValueError(
                f'max_concurrent must be at least 1, got {max_concurrent}')
        self.max_concurrent = max_concurrent
        self.connect_timeout = connect_timeout
        self.user_agent = user_agent
        #: the time source of armed calls and durations
        self.clock = time_source(clock)
        self.clock.subscribe(self._clock_moved)
        self._mutex = threading.Lock()
        #: calls whose time has come, in order
        self._pending: deque[_Call] = deque()
        #: calls waiting for their start time: (not_before, sequence, call)
        self._armed: list[tuple[float, int, _Call]] = []
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closing = False
        self._active: dict[pycurl.Curl, _Call] = {}
        self._wake_r = self._wake_w = -1

    # -- public ---------------------------------------------------------

    def call(self, url: str, *, timeout: float, on_done: OnDone,
             headers: Sequence[str] = (),
             not_before: float | None = None) -> None:
        """POST to ``url``; ``on_done`` gets the :class:`CallResult`.

        ``on_done`` runs on the caller's thread: keep it short.
        """
        self.call_all([CallRequest(url, timeout, on_done, headers,
                                   not_before)])

    def call_all(self, requests: Iterable[CallRequest]) -> None:
        """Hand over several calls at once (one wake-up for a burst)."""
        calls = [_Call(request) for request in requests]
        for call in calls:
            if call.request.not_before is not None:
                # built now, on the scheduler's thread, ahead of its time
                self._prepare(call)
        with self._mutex:
            self._ensure_thread()
            for call in calls:
                if call.request.not_before is None:
                    self._pending.append(call)
                else:
                    heapq.heappush(self._armed, (
                        call.request.not_before, next(self._sequence), call))
            self._wake()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; calls still in flight or waiting are dropped."""
        with self._mutex:
            thread = self._thread
            if thread is None or self._pid != os.getpid():
                return
            self._closing = True
            self._wake()
        thread.join(timeout)
        with self._mutex:
            self._thread = None
            self._closing = False

    def after_fork(self) -> None:
        """In a forked child: forget the parent's thread, queue and pipe.

        The next :meth:`call` starts a fresh thread with fresh handles.
        """
        self._mutex = threading.Lock()
        self._thread = None
        self._closing = False
        self._pending.clear()
        self._armed = []
        self._active = {}
        if self._wake_r >= 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
        self._wake_r = self._wake_w = -1

    @property
    def running(self) -> bool:
        """Whether this process has the caller's thread running."""
        return (self._thread is not None and self._pid == os.getpid()
                and self._thread.is_alive())

    @property
    def in_flight(self) -> int:
        """Calls started or waiting."""
        return len(self._pending) + len(self._armed) + len(self._active)

    def __repr__(self) -> str:
        return (f'<Caller max_concurrent={self.max_concurrent} '
                f'{"running" if self.running else "idle"}>')

    # -- the thread -----------------------------------------------------

    def _ensure_thread(self) -> None:
        # a thread started before a fork is not alive in the child: start
        # a fresh one (with fresh handles) in every process that calls
        if (self._thread is not None and self._pid == os.getpid()
                and self._thread.is_alive()):
            return
        self._pid = os.getpid()
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._deadline: float | None = None
        self._active = {}
        self._multi = multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._thread = threading.Thread(
            target=self._run, name='onecron-caller', daemon=True)
        self._thread.start()

    def _clock_moved(self) -> None:
        # a clock moved by hand: armed calls may be due (under the mutex:
        # the pipe is closed under it)
        with self._mutex:
            if self._pid == os.getpid():
                self._wake()

    def _wake(self) -> None:
        if self._wake_w < 0:
            return  # no thread yet
        try:
            os.write(self._wake_w, b'x')
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is pending anyway

    def _on_socket(self, what: int, fd: int, multi: object,
                   data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
            return
        events = 0
        if what in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            events |= selectors.EVENT_READ
        if what in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            events |= selectors.EVENT_WRITE
        try:
            self._selector.modify(fd, events)
        except KeyError:
            self._selector.register(fd, events)

    def _on_timer(self, timeout_ms: int) -> None:
        # libcurl's timer, on libcurl's clock: real milliseconds whatever
        # the caller's clock (a connect or total timeout is real time)
        self._deadline = (None if timeout_ms < 0
                          else _libcurl_time() + timeout_ms / 1000)

    def _run(self) -> None:
        try:
            while self._admit():
                self._wait_and_act()
                self._collect()
        except Exception:  # pragma: no cover - a bug, but never silent
            log.exception('the onecron caller thread crashed')
        finally:
            self._shutdown()

    def _admit(self) -> bool:
        """Start the calls whose time has come; False when closing."""
        with self._mutex:
            if self._closing:
                return False
            now = self.clock.time()
            while self._armed and self._armed[0][0] <= now:
                self._pending.append(heapq.heappop(self._armed)[2])
            while self._pending and len(self._active) < self.max_concurrent:
                call = self._pending.popleft()
                curl = call.curl or self._prepare(call)
                call.started = self.clock.monotonic()
                self._multi.add_handle(curl)
                self._active[curl] = call
            return True

    def _prepare(self, call: _Call) -> pycurl.Curl:
        request = call.request
        call.curl = curl = pycurl.Curl()
        curl.setopt(pycurl.URL, request.url)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        # the app calls itself: an environment proxy would be a detour
        curl.setopt(pycurl.NOPROXY, '*')
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS,
                    max(1, int(self.connect_timeout * 1000)))
        curl.setopt(pycurl.TIMEOUT_MS, max(1, int(request.timeout * 1000)))
        curl.setopt(pycurl.POST, 1)
        curl.setopt(pycurl.POSTFIELDS, b'')
        curl.setopt(pycurl.HTTPHEADER, [
            f'User-Agent: {self.user_agent}', 'Expect:', *request.headers])
        curl.setopt(pycurl.WRITEFUNCTION, call.sink)
        curl.setopt(pycurl.HEADERFUNCTION, call.header)
        return curl

    def _wait_and_act(self) -> None:
        timeout = None
        if self._deadline is not None:
            timeout = max(0.0, self._deadline - _libcurl_time())
        if self._armed:
            clock = self.clock
            until = self._armed[0][0] - clock.time()
            if until <= 0:
                return  # its time came meanwhile
            span = clock.span(until - PRECISE_WAIT)
            if span == 0:
                # the last moments before an armed call: sleep precisely
                # (the transfers in flight wait at most this long)
                clock.sleep(until)
                return
            if span is not None:  # else moving the clock wakes the pipe
                timeout = span if timeout is None else min(timeout, span)
        for key, mask in self._selector.select(timeout):
            if key.fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            action = 0
            if mask & selectors.EVENT_READ:
                action |= pycurl.CSELECT_IN
            if mask & selectors.EVENT_WRITE:
                action |= pycurl.CSELECT_OUT
            self._multi.socket_action(key.fd, action)
        if (self._deadline is not None
                and _libcurl_time() >= self._deadline):
            self._deadline = None
            self._multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)

    def _collect(self) -> None:
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._finish(curl, None, None)
            for curl, errno, message in failed:
                self._finish(curl, errno, message or f'curl error {errno}')
            if not queued:
                return

    def _finish(self, curl: pycurl.Curl, errno: int | None,
                message: str | None) -> None:
        self._multi.remove_handle(curl)
        with self._mutex:
            call = self._active.pop(curl)
        result = CallResult(
            url=call.request.url,
            status=int(curl.getinfo(pycurl.RESPONSE_CODE) or 0),
            duration=self.clock.monotonic() - call.started,
            error=message,
            redirect=curl.getinfo(pycurl.REDIRECT_URL) or None,
            timed_out=errno == pycurl.E_OPERATION_TIMEDOUT,
            body=bytes(call.body), reported=call.reported)
        curl.close()
        try:
            call.request.on_done(result)
        except Exception:
            log.exception('handling the result of a call to %s failed',
                          origin(call.request.url))

    def _shutdown(self) -> None:
        with self._mutex:
            dropped = (len(self._active) + len(self._pending)
                       + len(self._armed))
            for curl in self._active:
                self._multi.remove_handle(curl)
                curl.close()
            for _, _, call in self._armed:
                if call.curl is not None:
                    call.curl.close()
            self._active.clear()
            self._pending.clear()
            self._armed.clear()
        if dropped:
            log.info('caller stopped with %d call(s) unfinished', dropped)
        self._multi.close()
        self._selector.close()
        with self._mutex:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
