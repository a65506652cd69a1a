"""The ``onecron`` command, run as a real process on a real application."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import croniter
import pytest
import yaml
from webob import Request

import onecron
from onecron import Schedule, __version__
from onecron.cli import load, main
from onecron.running.lock import JobLocks

from .conftest import LiveServer, wait_for

# the directory holding the onecron package this test imported
SOURCE = str(Path(onecron.__file__).resolve().parent.parent)

APP = '''
import time
from datetime import timedelta
from onecron import CronApp
from onecron.stores.sqlite import SqliteStore
from onecron.stores.base import StoreError

HERE = {here!r}

app = CronApp(None, secret='cli secret of 32 characters or more',
              store=HERE + '/runs.sqlite',
              lock_dir=HERE)

@app.cronjob(hour=8, minute=30, timezone='Europe/Zurich', name='report')
def report(request):
    with open(HERE + '/report.ran', 'a') as file:
        file.write(request.host + '\\n')
    return 'report sent'

@app.cronjob('*/15 * * * MON-FRI', name='feed')
def feed(request):
    return 'fed'

@app.cronjob('*/5 * * * * *', name='ticker')
def ticker(request):
    pass

@app.cronjob('0 9 L * *', timezone='Europe/Zurich', name='month_end')
def month_end(request):
    pass

@app.cronjob(every=timedelta(hours=1), name='hourly')
def hourly(request):
    pass

@app.cronjob('0 3 * * *', name='boom')
def boom(request):
    raise RuntimeError('the job broke')

@app.cronjob('0 4 * * *', name='slow')
def slow(request):
    open(HERE + '/slow.started', 'w').close()
    time.sleep(60)

@app.cronjob(name='rebuild')
def rebuild(request):
    return 'rebuilt'

NOT_AN_APP = 42

bare = CronApp(None, secret='no store but a long secret of 32+ chars')

@bare.cronjob(minute=0, name='tick')
def tick(request):
    pass

class BrokenStore(SqliteStore):
    def _broken(self, *args, **kwargs):
        raise StoreError(f'SQLite store {{self.path}}: disk I/O error')
    runs = last_runs = running = job_settings = hold = schedulers = _broken

broken_store = CronApp(None, secret='broken store with a 32+ char secret',
                       store=BrokenStore(HERE + '/b.db'))

@broken_store.cronjob(minute=0, name='tick')
def tick2(request):
    pass
'''


@dataclass
class Project:
    """A directory holding an application module, and a way to run the
    command there."""

    path: Path
    module: str

    def run(self, *args: str, timeout: float = 60,
            umask: int = -1) -> subprocess.CompletedProcess[str]:
        """``python -m onecron.cli ARGS`` in the directory, as a user would
        run ``onecron``; ``{app}`` in ARGS is the module's ``app``."""
        return subprocess.run(
            [sys.executable, '-m', 'onecron.cli',
             *(arg.format(m=self.module) for arg in args)],
            cwd=self.path, capture_output=True, text=True, timeout=timeout,
            env=self.env(), umask=umask)

    def env(self) -> dict[str, str]:
        # the onecron under test, not whichever one is installed
        return {**os.environ, 'PYTHONPATH': os.pathsep.join(
            (str(self.path), SOURCE))}

    def app(self, attribute: str = 'app') -> str:
        return f'{self.module}:{attribute}'


@pytest.fixture
def project(tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The application module in tmp_path, under a name no other test uses
    (in-process tests import it)."""
    module = f'cliapp_{uuid.uuid4().hex[:8]}'
    (tmp_path / f'{module}.py').write_text(APP.format(here=str(tmp_path)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', list(sys.path))
    yield Project(tmp_path, module)
    loaded = sys.modules.pop(module, None)
    for name in ('app', 'bare', 'broken_store'):
        cron = getattr(loaded, name, None)
        if cron is not None:
            cron.stop()


def one_error_line(stderr: str) -> str:
    """The only line of ``stderr``, checked to be an error without a
    traceback."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith('onecron: error: ')
    assert 'Traceback' not in stderr
    return lines[0]


# -- the script ---------------------------------------------------------------

def test_the_console_script_is_installed() -> None:
    """pip install puts an ``onecron`` script next to the interpreter."""
    script = shutil.which('onecron', path=os.path.dirname(sys.executable))
    assert script is not None
    result = subprocess.run([script, '--version'], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == f'onecron {__version__}'


def test_the_console_script_runs_from_the_current_directory(
        project: Project) -> None:
    """Like gunicorn, onecron finds APP's module in the current directory
    without PYTHONPATH."""
    script = shutil.which('onecron', path=os.path.dirname(sys.executable))
    assert script is not None
    env = {key: value for key, value in os.environ.items()
           if key != 'PYTHONPATH'}
    result = subprocess.run([script, 'list', project.app()],
                            cwd=project.path, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert 'report' in result.stdout


# -- list ---------------------------------------------------------------------

def test_list_shows_schedules_in_words_and_next_runs(project: Project) -> None:
    """list gives each job's schedule as written, its zone, its next run
    and the schedule in words; manual jobs say so."""
    result = project.run('list', project.app())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines['JOB'].split() == ['JOB', 'SCHEDULE', 'ZONE', 'NEXT', 'RUN',
                                    'DESCRIPTION']
    report = lines['report']
    assert '30 8 * * *' in report and 'Europe/Zurich' in report
    assert 'at 08:30 every day, Europe/Zurich' in report
    match = re.search(r'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d)', report)
    assert match is not None
    moment = datetime.fromisoformat(match[1])
    assert (moment.hour, moment.minute) == (8, 30)
    assert moment > datetime.now(timezone.utc)
    assert 'every 15 minutes' in lines['feed']
    assert 'manual only' in lines['rebuild']


def test_list_next_shows_several_runs(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """``--next 3`` lists three runs of each scheduled job, a day apart for
    a daily one."""
    assert main(['list', project.app(), '--next', '3']) == 0
    out = capsys.readouterr().out
    block = out[out.index('\nreport'):].splitlines()[1:4]
    moments = [datetime.fromisoformat(re.search(
        r'\d{4}-\S+ \S+', line)[0]) for line in block]  # type: ignore[index]
    assert [b - a for a, b in zip(moments, moments[1:])] == [
        moments[1] - moments[0]] * 2
    assert (moments[1] - moments[0]).days in (0, 1)


# -- run ----------------------------------------------------------------------

def test_run_runs_the_job_and_prints_its_answer(project: Project) -> None:
    """run calls the job through its URL in-process: it really runs, its
    answer is printed, the exit status is 0 and the run is recorded."""
    result = project.run('run', project.app(), 'report')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'report sent'
    assert (project.path / 'report.ran').read_text() == 'localhost\n'
    history = project.run('history', project.app(), 'report')
    assert history.returncode == 0, history.stderr
    rows = history.stdout.splitlines()
    assert rows[0].split() == ['STARTED', 'JOB', 'TRIGGER', 'OUTCOME',
                               'DURATION', 'SCHEDULED']
    assert rows[1].split()[2:5] == ['report', 'manual', 'ok']


def test_run_uses_the_base_url_host(project: Project) -> None:
    """``--base-url`` decides the host the job's request comes to."""
    result = project.run('run', project.app(), 'report',
                         '--base-url', 'https://tenant.example.org')
    assert result.returncode == 0, result.stderr
    assert (project.path / 'report.ran').read_text() == (
        'tenant.example.org\n')


def test_run_exits_1_when_the_job_fails(project: Project) -> None:
    """A job that raises makes run exit 1 saying it failed, with no
    traceback unless asked for."""
    result = project.run('run', project.app(), 'boom')
    assert result.returncode == 1
    assert result.stdout == ''
    assert 'Traceback' not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "onecron: error: job 'boom' failed: HTTP 500 Internal Server Error")
    verbose = project.run('--traceback', 'run', project.app(), 'boom')
    assert 'RuntimeError: the job broke' in verbose.stderr


def test_run_exits_1_when_the_job_is_already_running(
        project: Project) -> None:
    """A job still running on this host is not run again: 409, exit 1."""
    locks = JobLocks(str(project.path))
    assert locks.acquire('default', 'report', blocking=False)
    try:
        result = project.run('run', project.app(), 'report')
    finally:
        locks.release('default', 'report')
    assert result.returncode == 1
    assert 'already running' in one_error_line(result.stderr)
    assert not (project.path / 'report.ran').exists()


def test_run_starts_no_scheduler(project: Project) -> None:
    """Running a job does not start a scheduler in the command's process."""
    assert project.run('run', project.app(), 'report').returncode == 0
    status = project.run('status', project.app(), '--json')
    assert json.loads(status.stdout)['applications'][0]['scheduler'] is None


def test_ctrl_c_exits_130_quietly(project: Project) -> None:
    """Ctrl-C during a run ends the command with 130 and no traceback."""
    process = subprocess.Popen(
        [sys.executable, '-m', 'onecron.cli', 'run', project.app(), 'slow'],
        cwd=project.path, env=project.env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (project.path / 'slow.started').exists())
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert 'Traceback' not in err and out == ''


# -- url ----------------------------------------------------------------------

def test_url_prints_a_url_that_runs_the_job(project: Project) -> None:
    """The printed URL is the job's: a GET on it runs the job (200)."""
    result = project.run('url', project.app(), 'report', '--base-url',
                         'https://example.org/')
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith('https://example.org/cronjobs/')
    app = load(project.app())
    app.stop()  # no scheduler in the test process
    response = Request.blank(url).get_response(app)
    assert response.status_code == 200
    assert response.text.strip() == 'report sent'


def test_url_occurrence_nearest(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """``--occurrence nearest`` gives the URL that claims its occurrence."""
    assert main(['url', project.app(), 'report', '--base-url',
                 'https://example.org', '--occurrence', 'nearest']) == 0
    url = capsys.readouterr().out.strip()
    assert url == load(project.app()).url_for(
        'report', 'https://example.org', occurrence='nearest')
    assert url.endswith('?occurrence=nearest')


# -- export -------------------------------------------------------------------

def token_of(url: str) -> str:
    """The signed token of a job URL."""
    return url.rsplit('/', 1)[1].split('?')[0]


def tokens(project: Project) -> list[str]:
    """The tokens of every job of the project's app."""
    app = load(project.app())
    return [token_of(app.url_for(name, 'http://x')) for name in app.jobs]


def cronjobs_and_secret(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The CronJobs of an export by job name, and its one Secret."""
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    (secret,) = [doc for doc in documents if doc['kind'] == 'Secret']
    return {doc['metadata']['annotations']['onecron/job']: doc
            for doc in documents if doc['kind'] == 'CronJob'}, secret


def container_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    pod = cronjob['spec']['jobTemplate']['spec']['template']['spec']
    (container,) = pod['containers']
    return container  # type: ignore[no-any-return]


def test_export_kubernetes_gives_cronjobs(project: Project) -> None:
    """One batch/v1 CronJob per translatable job: schedule, zone, Forbid,
    deadline, history limits and a curl that fails on non-2xx, its URL
    (with occurrence=nearest) in a Secret and not in the CronJob; the
    others are named in comments and warnings."""
    result = project.run('export', 'kubernetes', project.app(),
                         '--base-url', 'http://web.default.svc:8080',
                         '--starting-deadline', '120')
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr
    assert "left out job 'ticker'" in result.stderr
    assert "left out job 'month_end'" in result.stderr
    assert '# skipped rebuild: manual only' in result.stdout
    assert '# skipped month_end: ' in result.stdout
    by_job, secret = cronjobs_and_secret(result.stdout)
    assert sorted(by_job) == ['boom', 'feed', 'hourly', 'report', 'slow']
    assert secret['metadata']['name'] == (
        f"onecron-{project.module.replace('_', '-')}-app")
    app = load(project.app())
    secret_tokens = tokens(project)
    for name, doc in by_job.items():
        assert doc['apiVersion'] == 'batch/v1'
        assert doc['kind'] == 'CronJob'
        assert re.fullmatch(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?',
                            doc['metadata']['name'])
        spec = doc['spec']
        assert spec['concurrencyPolicy'] == 'Forbid'
        assert spec['startingDeadlineSeconds'] == 120
        assert spec['successfulJobsHistoryLimit'] == 3
        assert spec['failedJobsHistoryLimit'] == 3
        pod = spec['jobTemplate']['spec']['template']['spec']
        assert pod['restartPolicy'] == 'Never'
        container = container_of(doc)
        assert container['image'] == 'curlimages/curl:8.10.1'
        shell, flag, script = container['command']
        assert (shell, flag) == ('sh', '-c')
        assert '--fail-with-body' in script
        assert '--max-time 3600 ' in script
        assert 'args' not in container
        assert not any(token in yaml.safe_dump(doc)
                       for token in secret_tokens)
        (variable,) = container['env']
        reference = variable['valueFrom']['secretKeyRef']
        assert reference['name'] == secret['metadata']['name']
        assert secret['stringData'][reference['key']] == app.url_for(
            name, 'http://web.default.svc:8080', occurrence='nearest')
    assert by_job['report']['spec']['schedule'] == '30 8 * * *'
    assert by_job['report']['spec']['timeZone'] == 'Europe/Zurich'
    assert by_job['feed']['spec']['schedule'] == '*/15 * * * 1-5'
    assert by_job['hourly']['spec']['schedule'] == '0 * * * *'
    assert by_job['hourly']['spec']['timeZone'] == 'UTC'


def test_export_strict_fails_on_an_untranslatable_schedule(
        project: Project) -> None:
    """``--strict`` turns a left-out job into an error naming it."""
    result = project.run('export', 'crontab', project.app(), '--base-url',
                         'http://x.org', '--strict', '--output', 'out')
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "job 'month_end'" in line or "job 'ticker'" in line


def unit_file(text: str) -> dict[str, list[tuple[str, str]]]:
    """An ini-style unit file as sections of (key, value) pairs."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        if line.startswith('['):
            current = sections.setdefault(line.strip('[]'), [])
        else:
            key, _, value = line.partition('=')
            current.append((key, value))
    return sections


def config_url(path: Path) -> str:
    """The URL in a curl config file, checked to be private to its owner."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (line,) = [line for line in path.read_text().splitlines()
               if not line.startswith('#')]
    match = re.fullmatch(r'url = "([^"\\]*)"', line)
    assert match is not None, line
    return match[1]


def test_export_systemd_writes_units(project: Project) -> None:
    """systemd gives a oneshot curl service and a timer per job, and the
    curl config file holding its URL, written to --output with private
    modes; ExecStart= names the file, not the URL; systemd-analyze accepts
    the units."""
    out = project.path / 'units'
    result = project.run('export', 'systemd', project.app(), '--base-url',
                         'http://127.0.0.1:8080', '--output', str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(Path(line).name for line in result.stdout.splitlines())
    assert written == sorted(f'onecron-{job}.{kind}' for job in (
        'boom', 'feed', 'hourly', 'month_end', 'report', 'slow', 'ticker')
        for kind in ('service', 'timer', 'curlrc'))
    app = load(project.app())
    secret_tokens = tokens(project)
    calendars = {}
    for job in ('report', 'ticker', 'month_end', 'hourly', 'feed'):
        service = unit_file((out / f'onecron-{job}.service').read_text())
        assert ('Type', 'oneshot') in service['Service']
        (exec_start,) = [value for key, value in service['Service']
                         if key == 'ExecStart']
        assert not any(token in exec_start for token in secret_tokens)
        config = out / f'onecron-{job}.curlrc'
        assert exec_start == (
            f'/usr/bin/curl -fsS -X POST --max-time 3600 -K {config}')
        assert config_url(config) == app.url_for(job,
                                                 'http://127.0.0.1:8080')
        timer = unit_file((out / f'onecron-{job}.timer').read_text())
        calendars[job] = [value for key, value in timer['Timer']
                          if key == 'OnCalendar']
        assert ('Persistent', 'true') in timer['Timer']
        assert ('Unit', f'onecron-{job}.service') in timer['Timer']
        for kind in ('service', 'timer'):
            mode = stat.S_IMODE((out / f'onecron-{job}.{kind}').stat()
                                .st_mode)
            assert mode == 0o600
    assert calendars == {
        'report': ['*-*-* 08:30:00 Europe/Zurich'],
        'ticker': ['*-*-* *:*:00/5 UTC'],
        'month_end': ['*-*~01 09:00:00 Europe/Zurich'],
        'hourly': ['*-*-* *:00:00 UTC'],
        'feed': ['Mon..Fri *-*-* *:00/15:00 UTC'],
    }
    if shutil.which('systemd-analyze') is None:
        return  # the rest needs systemd's own checker
    verify = subprocess.run(
        ['systemd-analyze', 'verify', '--man=no',
         *sorted(str(path) for path in out.iterdir()
                 if path.suffix in ('.service', '.timer'))],
        capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr


def test_export_systemd_to_stdout_names_each_file(project: Project) -> None:
    """With --config-dir the units follow one another on stdout under
    ``# file:``, and the URLs go only into the config files there."""
    config_dir = project.path / 'conf'
    result = project.run('export', 'systemd', project.app(), '--base-url',
                         'http://127.0.0.1:8080', '--config-dir', 'conf')
    assert result.returncode == 0, result.stderr
    assert '# file: onecron-report.timer\n' in result.stdout
    assert '# skipped rebuild: manual only' in result.stdout
    assert f' -K {config_dir}/onecron-report.curlrc\n' in result.stdout
    assert not any(token in result.stdout for token in tokens(project))
    assert config_url(config_dir / 'onecron-report.curlrc') == load(
        project.app()).url_for('report', 'http://127.0.0.1:8080')
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert [path.name for path in project.path.iterdir() if path.is_dir()
            and path.name != '__pycache__'] == ['conf']


@pytest.mark.parametrize('target', ['crontab', 'systemd'])
def test_export_without_a_place_for_the_urls_is_refused(
        project: Project, target: str) -> None:
    """crontab and systemd without --output or --config-dir print nothing:
    one line says to pass --output DIR, exit 2 (no URLs on stdout to end
    up on a command line)."""
    result = project.run('export', target, project.app(), '--base-url',
                         'http://127.0.0.1:8080')
    assert result.returncode == 2
    assert result.stdout == ''
    assert 'pass --output DIR' in one_error_line(result.stderr)


def test_export_crontab_lines_fire_like_the_jobs(project: Project) -> None:
    """Each crontab line has five valid fields that fire when the job does
    (in its CRON_TZ) and a curl that fails on non-2xx and reads the job's
    URL from its config file in --config-dir."""
    result = project.run('export', 'crontab', project.app(), '--base-url',
                         'https://example.org', '--config-dir', 'conf')
    assert result.returncode == 0, result.stderr
    app = load(project.app())
    secret_tokens = tokens(project)
    zone = None
    seen = []
    for line in result.stdout.splitlines():
        if not line or line.startswith('#'):
            continue
        if line.startswith('CRON_TZ='):
            zone = line.partition('=')[2]
            continue
        fields, command = line.split()[:5], ' '.join(line.split()[5:])
        expression = ' '.join(fields)
        assert croniter.croniter.is_valid(expression)
        assert not any(token in command for token in secret_tokens)
        config = re.fullmatch(r"curl -fsS -X POST --max-time \d+ "
                              r"-K '([^']+)' >/dev/null", command)
        assert config is not None, command
        url = config_url(Path(config[1]))
        job = next(name for name in app.jobs
                   if app.url_for(name, 'https://example.org') == url)
        seen.append(job)
        assert zone is not None
        own = app.jobs[job].schedule
        assert own is not None
        translated = Schedule(expression, timezone=zone)
        start = datetime(2024, 3, 1, tzinfo=timezone.utc)
        a, b = start, start
        for _ in range(20):
            a, b = own.next_after(a), translated.next_after(b)
            assert a == b
    assert sorted(seen) == ['boom', 'feed', 'hourly', 'report', 'slow']


def recording_curl(directory: Path) -> tuple[dict[str, str], Path]:
    """An environment whose curl records its arguments, then runs the real
    curl; the record's path."""
    real = shutil.which('curl')
    assert real is not None, 'curl is needed'
    record = directory / 'argv'
    (directory / 'bin').mkdir()
    script = directory / 'bin' / 'curl'
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" >> {shlex.quote(str(record))}'
        f'\nexec {shlex.quote(real)} "$@"\n')
    script.chmod(0o700)
    return {'PATH': f'{script.parent}:{os.environ["PATH"]}',
            'HOME': str(directory)}, record


def exported_hourly(project: Project, target: str, base_url: str,
                    out: Path) -> tuple[list[str], dict[str, str]]:
    """The hourly job's command line as exported to ``target``, and what
    it needs in its environment."""
    result = project.run('export', target, project.app(), '--base-url',
                         base_url, '--output', str(out))
    assert result.returncode == 0, result.stderr
    if target == 'crontab':
        (line,) = [line for line in
                   (out / 'onecron.crontab').read_text().splitlines()
                   if line.startswith('0 * * * * ')]
        command = line.split(' ', 5)[5]
        assert '%' not in command  # cron would make it a newline
        return ['sh', '-c', command], {}
    if target == 'systemd':
        service = unit_file((out / 'onecron-hourly.service').read_text())
        (exec_start,) = [value for key, value in service['Service']
                         if key == 'ExecStart']
        assert exec_start.startswith('/usr/bin/curl ')
        # the local curl, found on PATH
        return shlex.split(exec_start.replace('/usr/bin/curl', 'curl', 1)), {}
    by_job, secret = cronjobs_and_secret(
        (out / 'onecron-cronjobs.yaml').read_text())
    container = container_of(by_job['hourly'])
    (variable,) = container['env']
    key = variable['valueFrom']['secretKeyRef']['key']
    # the image's sh and curl are the local ones
    return container['command'], {variable['name']:
                                  secret['stringData'][key]}


@pytest.mark.parametrize('target', ['crontab', 'systemd', 'kubernetes'])
def test_exported_commands_run_the_job(
        project: Project, live_server: Callable[..., LiveServer],
        target: str) -> None:
    """The exported command, run as cron, systemd or the container would
    with the real curl, runs the job on a live server, and no process
    gets its URL among its arguments (Kubernetes: a second call of the
    occurrence gets 409 and runs nothing)."""
    app = load(project.app())
    app.stop()  # no scheduler in the test process
    assert app.store is not None
    server = live_server(app)
    scratch = project.path / 'curl'
    scratch.mkdir()
    env, record = recording_curl(scratch)
    argv, variables = exported_hourly(project, target, server.url,
                                      project.path / 'out')
    secret_tokens = tokens(project)
    assert not any(token in word for word in argv for token in secret_tokens)
    result = subprocess.run(argv, env={**env, **variables},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (run,) = app.store.runs('default', 'hourly')
    assert (run.trigger.value, run.outcome and run.outcome.value) == (
        'url', 'ok')
    recorded = record.read_text()
    assert recorded.count('/bin/curl\n') == 1
    assert not any(token in recorded for token in secret_tokens)
    if target == 'kubernetes':
        again = subprocess.run(argv, env={**env, **variables},
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 22  # curl --fail-with-body on the 409
        assert '409' in again.stderr
        assert len(app.store.runs('default', 'hourly')) == 1


@pytest.mark.parametrize('target', ['crontab', 'systemd', 'kubernetes'])
def test_export_files_are_private_whatever_the_umask(
        project: Project, target: str) -> None:
    """With umask 0, a missing --output directory is made 0700 (parents
    too) and every file 0600; in a directory that was there, an old file
    is replaced and a symbolic link replaced, not written through."""
    def export(out: Path) -> list[Path]:
        result = project.run('export', target, project.app(), '--base-url',
                             'http://127.0.0.1:8080', '--output', str(out),
                             umask=0)
        assert result.returncode == 0, result.stderr
        written = [Path(line) for line in result.stdout.splitlines()]
        assert written and all(path.parent == out for path in written)
        for path in written:
            assert stat.S_ISREG(path.lstat().st_mode), path
            assert stat.S_IMODE(path.lstat().st_mode) == 0o600, path
        assert sorted(out.iterdir()) == sorted(written)  # no leftovers
        return written

    new = project.path / 'new'
    names = [path.name for path in export(new / 'x' / 'y')]
    for directory in (new, new / 'x', new / 'x' / 'y'):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    kept = project.path / 'kept'
    kept.mkdir()
    kept.chmod(0o755)
    outside = project.path / 'outside'
    outside.write_text('keep me')
    (kept / names[0]).symlink_to(outside)
    if len(names) > 1:
        (kept / names[-1]).write_text('old')
        (kept / names[-1]).chmod(0o644)
    export(kept)
    assert outside.read_text() == 'keep me'
    assert stat.S_IMODE(kept.stat().st_mode) == 0o755  # not made: left be


def test_export_refuses_a_directory_every_user_may_write(
        project: Project) -> None:
    """A directory every user may write to is refused, one line naming it:
    another user could swap the files in it."""
    shared = project.path / 'shared'
    shared.mkdir()
    shared.chmod(0o777)
    result = project.run('export', 'crontab', project.app(), '--base-url',
                         'http://127.0.0.1:8080', '--output', str(shared))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f'onecron: error: {shared} is writable by every user: pick a '
        f'directory of your own for files that hold job URLs')
    assert list(shared.iterdir()) == []


def test_export_shows_no_token_in_messages(project: Project) -> None:
    """The log lines, warnings and errors of every export, and what
    crontab and systemd print, hold no job token."""
    runs = [
        ('kubernetes', '--output', 'k'),
        ('kubernetes', '--strict', '--output', 'k'),
        ('crontab', '--config-dir', 'c'),
        ('crontab', '--strict', '--output', 'c'),
        ('systemd', '--config-dir', 'c'),
        ('systemd', '--output', 's'),
        ('systemd',),
        ('crontab', '--base-url', 'http://x/"quoted', '--output', 'q'),
    ]
    secret_tokens = tokens(project)
    for target, *rest in runs:
        result = project.run('-v', 'export', target, project.app(),
                             '--base-url', 'http://127.0.0.1:8080', *rest)
        assert result.stderr
        shown = result.stderr + result.stdout  # the paths, for kubernetes
        assert not any(token in shown for token in secret_tokens), rest
    assert not (project.path / 'q').exists()


# -- history and status -------------------------------------------------------

def test_history_lists_the_newest_runs_first(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """history shows runs newest first, at most --limit of them."""
    project.run('run', project.app(), 'report')
    project.run('run', project.app(), 'boom')
    assert main(['history', project.app(), '--limit', '1']) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2
    assert rows[1].split()[2:5] == ['boom', 'manual', 'failed']
    assert main(['history', project.app()]) == 0
    jobs = [row.split()[2] for row in capsys.readouterr().out.splitlines()[1:]]
    assert jobs == ['boom', 'report']


def test_history_without_runs_says_so(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty history is a sentence, not an empty table."""
    assert main(['history', project.app(), 'feed']) == 0
    assert capsys.readouterr().out == (
        "no runs of feed in application 'default'\n")


def test_status_shows_each_job_after_a_run(project: Project) -> None:
    """status shows the application, its scheduler and each job's state,
    next and last run; --json has status.json's shape."""
    assert project.run('run', project.app(), 'report').returncode == 0
    result = project.run('status', project.app())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('application default\n')
    assert '  scheduler: none seen\n' in result.stdout
    report = next(line for line in result.stdout.splitlines()
                  if line.split()[:1] == ['report'])
    assert report.split()[1:3] == ['IDLE', 'yes']
    assert '(ok, ' in report
    as_json = json.loads(project.run('status', project.app(),
                                     '--json').stdout)
    (application,) = as_json['applications']
    jobs = {job['name']: job for job in application['jobs']}
    assert jobs['report']['last_run']['outcome'] == 'ok'
    assert jobs['report']['last_run']['trigger'] == 'manual'
    assert jobs['rebuild']['manual'] is True
    assert jobs['feed']['next_run'] is not None


# -- bad input ----------------------------------------------------------------

BAD_INPUT = [
    # (arguments, exit status, fragment of the message)
    (['list', 'no_such_module:app'], 1, "no module named 'no_such_module'"),
    (['list', '{m}'], 2, 'APP must be module:attribute'),
    (['list', '{m}:nothing'], 1, "has no attribute 'nothing'"),
    (['list', '{m}:NOT_AN_APP'], 1, 'is a int, not a onecron.CronApp'),
    (['run', '{m}:app', 'reprot'], 1, "did you mean 'report'?"),
    (['history', '{m}:app', 'nope'], 1, "no job named 'nope'"),
    (['history', '{m}:bare'], 1, 'keeps no history'),
    (['history', '{m}:broken_store'], 1, 'disk I/O error'),
    (['status', '{m}:broken_store'], 1, 'disk I/O error'),
    (['list', '{m}:broken_store'], 1, 'disk I/O error'),
    (['url', '{m}:app', 'report'], 2, 'no base URL'),
    (['url', '{m}:app', 'report', '--base-url', 'ftp://x'], 2,
     "must be an http(s) URL, got 'ftp://x'"),
    (['url', '{m}:app', 'rebuild', '--base-url', 'http://x',
      '--occurrence', 'nearest'], 1, "job 'rebuild' has no schedule"),
    (['export', 'helm', '{m}:app'], 2, "invalid choice: 'helm'"),
    (['export', 'crontab', '{m}:app', '--base-url', 'http://x'], 2,
     'pass --output DIR'),
    (['export', 'systemd', '{m}:app', '--base-url', 'http://x/"a',
      '--config-dir', 'conf'], 1,
     "the URL of job 'boom' holds a character no URL may"),
    (['run', '{m}:app'], 2, 'required: JOB'),
    (['launch'], 2, "invalid choice: 'launch'"),
    ([], 2, 'required: COMMAND'),
    (['list', '{m}:app', '--next', '0'], 2, "got '0'"),
]


@pytest.mark.parametrize('arguments, status, fragment', BAD_INPUT,
                         ids=[' '.join(row[0]) or 'nothing'
                              for row in BAD_INPUT])
def test_bad_input_is_one_line_on_stderr(
        project: Project, capsys: pytest.CaptureFixture[str],
        arguments: list[str], status: int, fragment: str) -> None:
    """Every bad input gives one line on stderr naming the bad value, no
    traceback and a non-zero exit (2 for a malformed command line)."""
    assert main([arg.format(m=project.module) for arg in arguments]) == status
    captured = capsys.readouterr()
    assert fragment in one_error_line(captured.err)
    assert captured.out == ''


@pytest.mark.parametrize('arguments, status, fragment', [
    (['list', 'no_such_module:app'], 1, "no module named 'no_such_module'"),
    (['run', '{m}:app', 'reprot'], 1, "did you mean 'report'?"),
    (['list', '{m}'], 2, 'APP must be module:attribute'),
])
def test_bad_input_in_a_real_process(project: Project, arguments: list[str],
                                     status: int, fragment: str) -> None:
    """The real process exits with the same status and one line."""
    result = project.run(*arguments)
    assert result.returncode == status
    assert fragment in one_error_line(result.stderr)


def test_an_import_error_of_the_app_is_one_line(project: Project) -> None:
    """A module that fails to import (a bad schedule) is one line naming
    the module and the error; --traceback shows where."""
    (project.path / 'badapp.py').write_text(textwrap.dedent('''
        from onecron import CronApp
        app = CronApp(None, secret='a secret of thirty-two characters')
        @app.cronjob(hour=25)
        def job(request):
            pass
    '''))
    result = project.run('list', 'badapp:app')
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "importing 'badapp' failed: InvalidSchedule: hour 25" in line
    verbose = project.run('--traceback', 'list', 'badapp:app')
    assert 'Traceback' in verbose.stderr and 'badapp.py' in verbose.stderr


def test_a_store_that_cannot_open_is_one_line(project: Project) -> None:
    """A store path that cannot be opened fails the import on one line."""
    (project.path / 'nostore.py').write_text(textwrap.dedent(f'''
        from onecron import CronApp
        app = CronApp(None, secret='a secret of thirty-two characters',
                      store={str(project.path)!r})
    '''))
    result = project.run('status', 'nostore:app')
    assert result.returncode == 1
    assert "importing 'nostore' failed: StoreError" in one_error_line(
        result.stderr)


FLASK_APP = '''
from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix
from onecron import CronApp

app = Flask(__name__)

@app.route('/')
def index():
    return current_app.name + request.path

cron = CronApp(app.wsgi_app, secret='the flask app secret, of 32+ chars',
               lock_dir={here!r})
app.wsgi_app = cron

@cron.cronjob(minute=0, name='tick')
def tick(request):
    pass

bare = Flask('bare')
bare.wsgi_app = CronApp(bare.wsgi_app,
                        secret='the bare app secret of 32+ chars',
                        lock_dir={here!r})

# as behind a reverse proxy: the CronApp inside werkzeug's middleware
behind_proxy = ProxyFix(CronApp(
    None, secret='the proxied app secret of 32+ chars', lock_dir={here!r}))
'''


@pytest.fixture
def flask_module(project: Project) -> Iterator[str]:
    """A real Flask application module in the project directory, whose
    CronApp is ``cron``, also ``app.wsgi_app``."""
    name = f'flaskapp_{uuid.uuid4().hex[:8]}'
    (project.path / f'{name}.py').write_text(
        FLASK_APP.format(here=str(project.path)))
    yield name
    loaded = sys.modules.pop(name, None)
    if loaded is not None:
        for cron in (loaded.cron, loaded.bare.wsgi_app,
                     loaded.behind_proxy.app):
            cron.stop()


def test_naming_the_flask_app_names_the_cron_app(
        flask_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Naming the Flask app instead of its CronApp says which it is and
    every name of each CronApp the module holds."""
    assert main(['history', f'{flask_module}:app']) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f'onecron: error: {flask_module}:app is a Flask, not a '
        f'onecron.CronApp; the CronApps are {flask_module}:cron (also '
        f'{flask_module}:app.wsgi_app), {flask_module}:bare.wsgi_app and '
        f'{flask_module}:behind_proxy.app')
    assert main(['list', f'{flask_module}:behind_proxy.app']) == 0
    assert capsys.readouterr().out == (
        f'{flask_module}:behind_proxy.app has no jobs\n')


def test_a_missing_attribute_names_the_cron_apps(
        flask_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A name the module lacks (Django's ``application`` as ``app``) is
    answered with the CronApps it does hold."""
    assert main(['list', f'{flask_module}:application']) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"onecron: error: module {flask_module!r} has "
                           f"no attribute 'application'; the CronApps are "
                           f"{flask_module}:cron (also ")


def test_a_module_without_a_cron_app_says_so(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """A module that holds no CronApp at all says so, in one line."""
    (project.path / 'plainwsgi.py').write_text(textwrap.dedent('''
        def app(environ, start_response):
            start_response('200 OK', [])
            return [b'hello']
    '''))
    assert main(['list', 'plainwsgi:app']) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == ("onecron: error: plainwsgi:app is a function, not a "
                    "onecron.CronApp; module 'plainwsgi' holds none: name "
                    "the CronApp that wraps your WSGI application")
    sys.modules.pop('plainwsgi', None)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help prints the commands and exits 0."""
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    for command in ('list', 'run', 'url', 'export', 'history', 'status'):
        assert command in out


def test_a_closed_pipe_ends_quietly(project: Project) -> None:
    """Output into a reader that stops early ends without a traceback."""
    # far more than a pipe holds, so writing fails once head has gone
    command = (f'{sys.executable} -m onecron.cli list {project.app()} '
               '--next 1000 | head -c 10; exit "${PIPESTATUS[0]}"')
    result = subprocess.run(['bash', '-c', command], cwd=project.path,
                            env=project.env(), capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == 'JOB       '
    assert result.stderr == ''


def test_history_shows_a_downtime_as_its_range(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """A missed record stands for a range of occurrences that never ran:
    history shows how many and from when to when, no start or
    duration."""
    from datetime import datetime, timezone

    from onecron.stores.base import Outcome, Trigger
    from onecron.stores.history import missed_summary
    from onecron.stores.sqlite import SqliteStore
    first = datetime(2026, 12, 3, 8, 0, 1, tzinfo=timezone.utc)
    last = datetime(2026, 12, 3, 8, 8, 59, tzinfo=timezone.utc)
    store = SqliteStore(str(project.path / 'runs.sqlite'))
    store.record_run('default', 'report', trigger=Trigger.SCHEDULER,
                     started=first, ended=last, outcome=Outcome.MISSED,
                     scheduled=last, key='k',
                     output=missed_summary(539, first, last,
                                           'while no scheduler ran'))
    store.close()
    assert main(['history', project.app(), 'report']) == 0
    [header, row] = capsys.readouterr().out.splitlines()
    assert row.split() == ['-', 'report', 'scheduler', 'missed', '539', '-',
                           '2026-12-03', '08:00:01+00:00', '..',
                           '2026-12-03', '08:08:59+00:00']


def test_run_command_serves_an_app_object_without_naming_it(
        tmp_path, capsys):
    """run_command runs the same commands for an app object, whose command
    line names no APP, with the same errors and exit codes."""
    from onecron import CronApp
    from onecron.cli import run_command

    def wsgi(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'']
    app = CronApp(wsgi, secret='x' * 32, store=None, autostart=False,
                  lock_dir=str(tmp_path / 'locks'))

    @app.cronjob(hour=3, minute=0, timezone='UTC')
    def nightly(request):
        return 'ran'

    assert run_command(app, ['list'], prog='flask onecron') == 0
    listed = capsys.readouterr().out
    assert 'nightly' in listed and '03:00' in listed
    assert run_command(app, ['run', 'nowhere'], prog='flask onecron') == 1
    assert 'nowhere' in capsys.readouterr().err
    assert run_command(app, ['bogus'], prog='flask onecron') == 2
    assert 'flask onecron' in capsys.readouterr().err
