"""Shared fixtures: a real WSGI server on loopback, captured Sentry events,
a throwaway PostgreSQL server; and a clock tests move by hand."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from waitress import wasyncore
from waitress.server import create_server

from onecron import CronApp, Reporter
from onecron.schedule.clock import ManualClock

from .postgresql import Bouncer, Cluster, MissingServer

# A suite started in the background (`bash .ci/run &`, nohup) inherits
# SIGINT ignored, and so would every server and command the tests start
# and stop with Ctrl-C's signal: they would never stop. Take it back, so
# that the children start with Python's own handler.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Failures(Reporter):
    """A CronApp's reporter that notes the message of each failure it
    reports (as usual: to the log and Sentry)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def failure(self, job: str, application_id: str, message: str,
                exc: BaseException | None = None) -> None:
        self.messages.append(message)
        super().failure(job, application_id, message, exc)


class LiveServer:
    """A waitress server in a thread, on 127.0.0.1 and a free port."""

    def __init__(self, app: Callable[..., Any], **options: Any) -> None:
        self._server = create_server(app, host='127.0.0.1', port=0,
                                     threads=options.pop('threads', 8),
                                     **options)
        self.port = self._server.effective_port
        self.url = f'http://127.0.0.1:{self.port}'
        self._closing = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run()
        except OSError:
            if not self._closing:  # closing pulls the sockets from under it
                raise

    def close(self) -> None:
        # close the listener *and* every open keep-alive channel, or the
        # server's loop runs on for the connections a client still holds
        self._closing = True
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._server._map)
        self._thread.join(5)


@pytest.fixture
def apps() -> Iterator[list[CronApp]]:
    """CronApps a test makes, stopped after it."""
    made: list[CronApp] = []
    yield made
    for app in made:
        app.stop()


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A world-writable sticky directory, like /tmp, made the system temp
    directory (and no XDG_RUNTIME_DIR): where the default lock directory
    goes, among other users' entries."""
    directory = tmp_path / 'shared'
    directory.mkdir()
    directory.chmod(0o1777)
    monkeypatch.setattr(tempfile, 'tempdir', str(directory))
    monkeypatch.delenv('XDG_RUNTIME_DIR', raising=False)
    return directory


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Start WSGI apps on real servers; all are closed after the test."""
    servers: list[LiveServer] = []

    def start(app: Callable[..., Any], **options: Any) -> LiveServer:
        server = LiveServer(app, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


#: where the test clients "send" events: nothing listens there
SENTRY_DSN = 'http://public@127.0.0.1:9/1'


class SentryCapture(Transport):
    """A transport that keeps the events instead of sending them."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry_events() -> Iterator[list[dict[str, Any]]]:
    """Events sent to Sentry during the test (a real client, no network),
    with the default integrations on, the logging integration included, as
    most applications run it."""
    events: list[dict[str, Any]] = []
    sentry_sdk.init(dsn=SENTRY_DSN, transport=SentryCapture(events),
                    default_integrations=True)
    yield events
    sentry_sdk.init()  # back to a client that sends nothing


@pytest.fixture(scope='session')
def postgresql_server() -> Iterator[Cluster]:
    """A PostgreSQL cluster of its own for the session; fails (never
    skips) when the server binaries are missing."""
    try:
        cluster = Cluster()
    except MissingServer as error:
        pytest.fail(str(error), pytrace=False)
    yield cluster
    cluster.remove()


@pytest.fixture
def postgresql_url(postgresql_server: Cluster) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = postgresql_server.create_database()
    yield postgresql_server.url(name)
    postgresql_server.start_if_stopped()
    postgresql_server.drop_database(name)


@pytest.fixture(scope='session')
def pgbouncer_server(postgresql_server: Cluster) -> Iterator[Bouncer]:
    """PgBouncer in transaction pooling mode in front of the session's
    cluster; fails (never skips) when pgbouncer is missing."""
    try:
        bouncer = Bouncer(postgresql_server)
    except MissingServer as error:
        pytest.fail(str(error), pytrace=False)
    yield bouncer
    bouncer.remove()


@pytest.fixture
def pgbouncer_url(pgbouncer_server: Bouncer, postgresql_server: Cluster,
                  postgresql_url: str) -> str:
    """The URL of the test's new, empty database, through PgBouncer, once
    its pool has the server sessions it hands out in turn."""
    name = postgresql_url.rsplit('/', 1)[1]
    url = pgbouncer_server.url(name)
    with contextlib.ExitStack() as stack:
        # clients in transactions at once: each holds a server session,
        # which stays in the pool once they are done
        for _ in range(pgbouncer_server.sessions):
            db = stack.enter_context(psycopg.connect(
                url, autocommit=True, prepare_threshold=None))
            stack.enter_context(db.transaction())
            db.execute('SELECT 1')
    assert len(postgresql_server.sessions(name)) >= pgbouncer_server.sessions
    return url


def wait_for(condition: Callable[[], Any], timeout: float = 10.0,
             interval: float = 0.02) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f'condition not met within {timeout}s')


# --- virtual time ------------------------------------------------------------

@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test moves it."""
    from .virtual import manual_clock  # it imports this module's helpers
    return manual_clock()


@pytest.fixture
def timed(tmp_path: Path, clock: ManualClock) -> Iterator[CronApp]:
    """An app on the virtual ``clock``."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), clock=clock)
    yield app
    app.stop()
