"""A lock directory or file that is wrong, seen from the scheduler, the job
endpoint and ``onecron run``: reported, never silently fatal, and the
jobs run again once it is fixed."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.running.lock import HostLock, lock_path

from .conftest import Failures, wait_for

EVERY_SECOND = '* * * * * *'
#: the checkout under test, put first on a command's PYTHONPATH
ROOT = Path(__file__).parent.parent


class Runs:
    """Counts a job's runs."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Request) -> str:
        self.count += 1
        return 'ran'


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[HostLock]:
    """Every attempt to take a host lock, in order."""
    seen: list[HostLock] = []
    acquire = HostLock.acquire

    def counted(self: HostLock) -> bool:
        seen.append(self)
        return acquire(self)

    monkeypatch.setattr(HostLock, 'acquire', counted)
    return seen


@pytest.fixture
def failures() -> Failures:
    return Failures()


def test_a_missing_lock_dir_is_created_and_jobs_run(
        tmp_path: Path, live_server: Any, apps: list[CronApp]) -> None:
    """lock_dir that does not exist yet: created 0700 (parents too), and
    the scheduler runs the jobs (it used to fail once and stop)."""
    lock_dir = tmp_path / 'not' / 'yet' / 'there'
    app = CronApp(secret='s', lock_dir=str(lock_dir))
    apps.append(app)
    runs = Runs()
    app.cronjob(EVERY_SECOND, name='tick', jitter=False, overlap='skip')(runs)
    app.start(base_url=live_server(app).url)
    wait_for(lambda: runs.count >= 2, timeout=6)
    assert app.schedulers['default'].active
    for made in (tmp_path / 'not', tmp_path / 'not' / 'yet', lock_dir):
        assert made.stat().st_mode & 0o777 == 0o700


def test_a_lock_problem_is_reported_once_and_retried(
        shared: Path, live_server: Any, apps: list[CronApp],
        failures: Failures, attempts: list[HostLock],
        sentry_events: list[dict[str, Any]], caplog: Any) -> None:
    """A default lock dir that is wrong: each distinct problem is
    reported once (log and Sentry) naming the directory, the scheduler
    keeps trying, and runs the jobs once it is fixed, saying so."""
    private = shared / f'onecron-{os.geteuid()}'
    private.mkdir()
    private.chmod(0o777)
    app = CronApp(secret='s', reporter=failures)
    apps.append(app)
    runs = Runs()
    app.cronjob(EVERY_SECOND, name='tick', jitter=False)(runs)
    caplog.set_level(logging.INFO, logger='onecron')
    app.start(base_url=live_server(app).url)

    wait_for(lambda: failures.messages, timeout=5)
    seen = len(attempts)
    wait_for(lambda: len(attempts) >= seen + 2, timeout=5)
    assert len(failures.messages) == 1
    assert repr(str(private)) in failures.messages[0]
    assert 'can be written by other users' in failures.messages[0]
    assert 'no job runs' in failures.messages[0]

    private.rmdir()  # another problem: said once more
    (shared / 'elsewhere').mkdir(mode=0o700)
    private.symlink_to(shared / 'elsewhere')
    wait_for(lambda: len(failures.messages) == 2, timeout=5)
    seen = len(attempts)
    wait_for(lambda: len(attempts) >= seen + 2, timeout=5)
    assert len(failures.messages) == 2
    assert 'is a symbolic link' in failures.messages[1]
    assert os.listdir(shared / 'elsewhere') == []
    assert runs.count == 0

    private.unlink()  # fixed: the scheduler goes on by itself
    wait_for(lambda: runs.count >= 1, timeout=5)
    assert len(failures.messages) == 2
    assert (private.stat().st_mode & 0o777) == 0o700
    assert any('the host lock works again' in record.getMessage()
               and record.levelno == logging.INFO
               for record in caplog.records)
    errors = [record for record in caplog.records
              if record.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all(record.exc_info is None for record in errors)
    said = [event['message'] for event in sentry_events
            if 'host lock' in (event.get('message') or '')]
    assert len(said) == 2 and str(private) in said[0]


def test_a_job_lock_error_answers_503(
        tmp_path: Path, live_server: Any, apps: list[CronApp],
        failures: Failures) -> None:
    """A job whose lock file cannot be opened gets a plain 503: no
    exception escapes the app, the failure is reported naming the file,
    nothing runs and no run is written down; fixed, it runs again."""
    app = CronApp(secret='s', lock_dir=str(tmp_path), enabled=False,
                  store=str(tmp_path / 'runs.sqlite'), reporter=failures)
    apps.append(app)
    runs = Runs()
    app.cronjob(name='job', overlap='wait')(runs)
    server = live_server(app)
    url = app.url_for('job', server.url)
    bad = Path(lock_path(str(tmp_path), 'default\x00job\x00job'))
    bad.mkdir()
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(
            urllib.request.Request(url, method='POST'), timeout=10)
    answer = raised.value
    assert answer.code == 503
    assert answer.headers['Content-Type'].startswith('text/plain')
    assert answer.read().decode() == (
        'Service Unavailable: the job lock cannot be taken (see the log)\n')
    assert runs.count == 0
    assert len(failures.messages) == 1
    assert repr(str(bad)) in failures.messages[0]
    assert 'is a directory' in failures.messages[0]
    assert app.store is not None and app.store.runs('default') == []

    bad.rmdir()
    with urllib.request.urlopen(urllib.request.Request(url, method='POST'),
                                timeout=10) as response:
        assert response.status == 200
    assert runs.count == 1


APP = '''
from onecron import CronApp

app = CronApp(None, secret='a lock dir test secret of 32+ chars', lock_dir={lock_dir!r})

@app.cronjob(name='job')
def job(request):
    open({ran!r}, 'w').close()
    return 'ran'
'''


def run_command(tmp_path: Path, shared: Path,
                lock_dir: str | None) -> subprocess.CompletedProcess[str]:
    """``onecron run`` of an app on ``lock_dir`` (None: the default, in
    ``shared`` as the temp directory), as a user would run it."""
    module = 'lockdirapp'
    (tmp_path / f'{module}.py').write_text(textwrap.dedent(APP.format(
        lock_dir=lock_dir, ran=str(tmp_path / 'job.ran'))))
    env = {name: value for name, value in os.environ.items()
           if name != 'XDG_RUNTIME_DIR'}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
               TMPDIR=str(shared))
    return subprocess.run(
        [sys.executable, '-m', 'onecron.cli', 'run', f'{module}:app', 'job'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_onecron_run_says_what_is_wrong_with_the_lock_dir(
        tmp_path: Path, shared: Path) -> None:
    """``onecron run`` with a lock dir that is wrong (open to others, or
    impossible to create): one line naming it on stderr, exit 1, no
    traceback, the job not run; fixed, it runs."""
    private = shared / f'onecron-{os.geteuid()}'
    private.mkdir()
    private.chmod(0o777)
    result = run_command(tmp_path, shared, None)
    assert (result.returncode, result.stdout) == (1, '')
    assert result.stderr.splitlines() == [
        f"onecron: error: job 'job' (default) cannot run: the lock "
        f"directory {str(private)!r} can be written by other users (mode "
        f"0777, must be 0700): remove it, or set CronApp(lock_dir=...) to "
        f"a directory of your own"]
    assert not (tmp_path / 'job.ran').exists()

    (tmp_path / 'a-file').write_text('')
    result = run_command(tmp_path, shared, str(tmp_path / 'a-file' / 'locks'))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"onecron: error: job 'job' (default) cannot run: the lock "
        f"directory {str(tmp_path / 'a-file' / 'locks')!r} cannot be "
        f"created: Not a directory"]
    assert not (tmp_path / 'job.ran').exists()

    shutil.rmtree(private)
    result = run_command(tmp_path, shared, None)
    assert (result.returncode, result.stdout) == (0, 'ran\n')
    assert (tmp_path / 'job.ran').exists()
