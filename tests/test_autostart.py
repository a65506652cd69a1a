"""Autostart: which processes start scheduling without a request.

Only a process that serves the app starts: a process that merely imports
it (this test run, the ``onecron`` command) must never call the job URLs
of a configured, maybe production, base URL. A process that forks after
arming leaves the start to its children. The servers themselves are run
in ``test_servers.py`` and ``test_frameworks.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.cli import main
from onecron.running import autostart
from onecron.running.autostart import gunicorn_master, serving_process
from onecron.schedule.clock import ManualClock

from .host import ROOT
from .virtual import manual_clock

#: the delay the tests arm with (the default is a second)
DELAY = 0.05
#: long enough for an armed start to have fired (on the virtual clock)
FIRED = 1.0
BASE_URL = 'http://127.0.0.1:9'  # nothing listens there: never called


@pytest.fixture(autouse=True)
def armed_quickly(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A short delay; autostart allowed (the CLI tests of this run may
    have turned it off); no reloader markers from outside."""
    monkeypatch.setattr(autostart, 'DELAY', DELAY)
    monkeypatch.setattr(autostart, 'allowed', True)
    for name in ('WERKZEUG_RUN_MAIN', 'RUN_MAIN', 'SERVER_SOFTWARE'):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def clock() -> ManualClock:
    return manual_clock()


@pytest.fixture
def make_app(tmp_path: Path, clock: ManualClock) -> Iterator[Any]:
    """Build CronApps with an hourly job on ``tmp_path``, on the virtual
    ``clock``; stopped after."""
    apps: list[CronApp] = []

    def make(**options: Any) -> CronApp:
        options.setdefault('base_url', BASE_URL)
        options.setdefault('clock', clock)
        app = CronApp(secret='autostart', lock_dir=str(tmp_path),
                      **options)

        @app.cronjob(minute=0, name='hourly')
        def hourly(request: Request) -> None:
            pass

        apps.append(app)
        return app

    yield make
    for app in apps:
        app.stop(timeout=1.0)


def autostart_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate()
            if thread.name == 'onecron-autostart']


def test_importing_process_starts_nothing(make_app: Any,
                                          clock: ManualClock) -> None:
    """In a process that is no server (pytest), an app with its base URL
    configured starts no scheduler, nor even a timer, by default."""
    app = make_app()
    assert app.autostart == 'auto'
    assert serving_process() is None
    assert not app._autostart.armed
    clock.advance(FIRED)
    assert dict(app.schedulers) == {}
    assert autostart_threads() == []


def test_autostart_true_starts_after_the_delay(
        make_app: Any, clock: ManualClock,
        caplog: pytest.LogCaptureFixture) -> None:
    """autostart=True starts the scheduler after the delay (on the app's
    clock), not before, once, in any process, and says so at INFO."""
    caplog.set_level('INFO', logger='onecron.app')
    app = make_app(autostart=True)
    assert dict(app.schedulers) == {}
    assert app._autostart.armed
    clock.advance(DELAY * 0.9)
    assert dict(app.schedulers) == {}
    clock.advance(DELAY * 0.1)  # returns once the timer's thread is done
    assert list(app.schedulers) == ['default']
    assert not app._autostart.arm()  # never twice in a process
    clock.advance(FIRED)
    lines = [record.getMessage() for record in caplog.records
             if 'autostarted' in record.getMessage()]
    assert lines == [f'scheduler autostarted in custom server worker pid '
                     f'{__import__("os").getpid()}']


def test_stop_disarms(make_app: Any, clock: ManualClock) -> None:
    """app.stop() before the delay: the scheduler never starts."""
    app = make_app(autostart=True)
    app.stop()
    clock.advance(FIRED)
    assert dict(app.schedulers) == {}
    assert not app._autostart.arm()


@pytest.mark.parametrize('options', [
    {'base_url': None, 'allowed_hosts': ['example.org']},
    {'application_id': lambda request: 'tenant'},
    {'enabled': False},
    {'autostart': False},
], ids=['no-base-url', 'callable-id', 'disabled', 'off'])
def test_autostart_needs_a_fixed_id_and_base_url(
        make_app: Any, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
        options: dict[str, Any]) -> None:
    """Even in a serving process, no base URL, a callable id, enabled=False
    or autostart=False leave the start to the first request."""
    monkeypatch.setenv('WERKZEUG_RUN_MAIN', 'true')
    app = make_app(**options)
    clock.advance(FIRED)
    assert dict(app.schedulers) == {}


def test_serving_child_of_a_reloader_starts(
        make_app: Any, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The default starts in a recognised serving process."""
    monkeypatch.setenv('WERKZEUG_RUN_MAIN', 'true')
    app = make_app()
    assert app._autostart.armed
    clock.advance(DELAY)
    assert list(app.schedulers) == ['default']


def test_bad_autostart_values_are_refused(make_app: Any) -> None:
    """A value other than 'auto', True or False, and True where it cannot
    apply, raise at construction naming autostart."""
    with pytest.raises(ValueError, match="autostart must be 'auto'"):
        make_app(autostart='yes')
    with pytest.raises(ValueError, match="autostart must be 'auto'"):
        make_app(autostart=1)
    with pytest.raises(ValueError, match='autostart=True needs'):
        make_app(autostart=True, base_url=None)


def test_serving_process_recognises_servers_not_imports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reloaders' serving children and gunicorn are recognised; an
    imported waitress or gunicorn, or a leaked variable, is not."""
    import gunicorn.arbiter  # imported, not running
    import waitress.runner  # noqa: F401
    assert serving_process() is None
    monkeypatch.setenv('SERVER_SOFTWARE', 'gunicorn/27.0.1')
    assert serving_process() == 'gunicorn'
    # gunicorn's master, once it handles SIGTERM, forks the workers
    assert not gunicorn_master()
    arbiter = gunicorn.arbiter.Arbiter.__new__(gunicorn.arbiter.Arbiter)
    previous = signal.signal(signal.SIGTERM, arbiter.signal)
    try:
        assert gunicorn_master()
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.delenv('SERVER_SOFTWARE')
    monkeypatch.setenv('RUN_MAIN', 'true')
    import django.utils.autoreload  # noqa: F401
    assert serving_process() == 'Django runserver'
    monkeypatch.delenv('RUN_MAIN')
    monkeypatch.setenv('WERKZEUG_RUN_MAIN', 'true')
    assert serving_process() == 'Werkzeug reloader'
    monkeypatch.setenv('WERKZEUG_RUN_MAIN', '')
    monkeypatch.setattr(sys, 'argv', ['/usr/bin/waitress-serve'])
    assert serving_process() == 'waitress-serve'


FORKS = textwrap.dedent('''
    import os, sys
    from datetime import datetime, timezone
    from onecron import CronApp
    from onecron.running import autostart
    from onecron.schedule.clock import ManualClock
    clock = ManualClock(datetime(2030, 1, 7, tzinfo=timezone.utc))
    autostart.DELAY = 0.3
    app = CronApp(secret='s', lock_dir=sys.argv[1], autostart=True,
                  base_url='http://127.0.0.1:9', clock=clock)
    app.cronjob(minute=0, name='hourly')(lambda request: None)
    pid = os.fork()
    clock.advance(1.5)  # in each process: its timer fired, or not
    who = 'child' if pid == 0 else 'parent'
    os.write(1, f'{who} {len(app.schedulers)}\\n'.encode())  # one line
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
''')


def test_a_process_that_forks_leaves_the_start_to_its_child(
        tmp_path: Path) -> None:
    """Armed, then forked (gunicorn --preload): the parent starts nothing,
    the child starts its scheduler."""
    done = subprocess.run([sys.executable, '-c', FORKS, str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert sorted(done.stdout.split('\n')) == ['', 'child 1', 'parent 0'], (
        done.stdout + done.stderr)


def test_onecron_command_never_autostarts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`onecron list` imports an app that asks for autostart=True: it
    starts nothing, armed or later."""
    name = f'autostart_app_{uuid.uuid4().hex}'
    (tmp_path / f'{name}.py').write_text(textwrap.dedent(f'''
        from datetime import datetime, timezone
        from onecron import CronApp
        from onecron.schedule.clock import ManualClock
        clock = ManualClock(datetime(2030, 1, 7, tzinfo=timezone.utc))
        app = CronApp(secret='s', lock_dir={str(tmp_path)!r},
                      base_url={BASE_URL!r}, autostart=True, clock=clock)
        app.cronjob(minute=0, name='hourly')(lambda request: None)
    '''))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(['list', f'{name}:app']) == 0
        assert 'hourly' in capsys.readouterr().out
        app = sys.modules[name].app
        assert not app._autostart.armed
        sys.modules[name].clock.advance(FIRED)
        assert dict(app.schedulers) == {}
    finally:
        sys.modules.pop(name, None)
