"""Flask, Django, Pyramid and Morepath: the examples, served for real.

Each example runs on a real server: its own routes still answer through
onecron, its job's signed URL runs the job with the framework's context,
and the scheduler fires the job. Flask's and Django's dev reloaders run a
watcher process and a serving one: only the serving one schedules.
"""

from __future__ import annotations

import importlib
import logging
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from onecron import CronApp, Outcome, Run, Trigger
from onecron.stores.sqlite import SqliteStore

from .conftest import LiveServer, wait_for

ROOT = Path(__file__).parent.parent
# the examples' own environment variables, and the frameworks' reloaders'
# markers, which must not leak in from a surrounding dev server
FOREIGN = ('ONECRON_SECRET', 'ONECRON_BASE_URL', 'ONECRON_STORE',
           'ONECRON_LOCK_DIR', 'EXAMPLE_DJANGO_DB', 'DJANGO_SETTINGS_MODULE',
           'RUN_MAIN', 'WERKZEUG_RUN_MAIN', 'WERKZEUG_SERVER_FD', 'FLASK_APP',
           'FLASK_DEBUG', 'FLASK_RUN_PORT')


def fetch(url: str, method: str = 'GET',
          timeout: float = 10.0) -> tuple[int, str]:
    """The status and body of a request to ``url``."""
    request = urllib.request.Request(url, method=method, data=(
        b'' if method == 'POST' else None))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


#: how a run ends that the scheduler really made (not one it recorded as
#: missed or skipped)
RAN = (Outcome.OK, Outcome.FAILED, Outcome.TIMED_OUT)


def scheduler_runs(store_path: Path, application_id: str) -> list[Run]:
    """The finished runs the scheduler made, oldest first."""
    if not store_path.exists():
        return []
    store = SqliteStore(store_path)
    try:
        runs = store.runs(application_id)
    finally:
        store.close()
    return sorted((run for run in runs if run.trigger is Trigger.SCHEDULER
                   and run.outcome in RAN), key=lambda run: run.id)


# -- Flask, Pyramid and Morepath in this process ---------------------------

@dataclass
class Example:
    """An example module served on a live server."""

    module: ModuleType
    #: the example's CronApp (inside Flask, in front of the others)
    cron: CronApp
    server: LiveServer
    store: Path
    greeting: str

    @property
    def application_id(self) -> str:
        assert isinstance(self.cron.application_id, str)
        return self.cron.application_id

    @property
    def job(self) -> str:
        return f'{self.module.__name__}.heartbeat'


@pytest.fixture(scope='module', params=[
    ('flask_app', 'Hello from Flask'),
    ('pyramid_app', 'Hello from Pyramid'),
    ('morepath_app', 'Hello from Morepath'),
], ids=['flask', 'pyramid', 'morepath'])
def example(request: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """An example, imported with its store and locks in a temp dir."""
    module_name, greeting = request.param
    name = f'example_app.{module_name}'
    # its CronApp reads the environment when the module is imported
    assert name not in sys.modules, f'{name} was imported before'
    directory = tmp_path_factory.mktemp(module_name)
    # the server first: the example's base URL is its address
    served: list[Any] = []
    server = LiveServer(lambda environ, start_response: served[0](
        environ, start_response))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for variable in FOREIGN:
                patch.delenv(variable, raising=False)
            patch.setenv('ONECRON_BASE_URL', server.url)
            patch.setenv('ONECRON_STORE', str(directory / 'runs.sqlite'))
            patch.setenv('ONECRON_LOCK_DIR', str(directory))
            module = importlib.import_module(name)
        served.append(module.app)
        cron = getattr(module, 'cron', module.app)
        if module_name == 'flask_app':  # the Flask app's own CronApp
            cron = cron.cronapp(module.app)
        assert isinstance(cron, CronApp)
        yield Example(module, cron, server, directory / 'runs.sqlite',
                      greeting)
        cron.stop()
    finally:
        server.close()


def test_framework_routes_answer_through_onecron(example: Example) -> None:
    """The framework's own route answers as before, onecron in front."""
    assert fetch(f'{example.server.url}/') == (200, f'{example.greeting}\n')
    status, _ = fetch(f'{example.server.url}/no/such/page')
    assert status == 404


def test_job_url_runs_the_job_with_the_framework_context(
        example: Example, caplog: pytest.LogCaptureFixture) -> None:
    """The job's signed URL runs it; it reads the framework's settings."""
    caplog.set_level(logging.INFO)  # what the examples' logging lets through
    url = example.cron.url_for(example.job, example.server.url)
    assert fetch(url, 'POST') == (200, f'{example.greeting}\n')
    store = SqliteStore(example.store)
    try:
        # the scheduler, started by this request, may have fired it too
        [run] = [run for run in store.runs(example.application_id,
                                           example.job)
                 if run.trigger is Trigger.URL]
    finally:
        store.close()
    assert run.outcome is Outcome.OK
    assert 'heartbeat: ' in run.output  # its log line, kept with the run


def test_scheduler_fires_the_example_job(example: Example) -> None:
    """The scheduler (started by the first request) fires the job."""
    example.cron.start()  # no-op: the first request started it
    runs = wait_for(lambda: scheduler_runs(example.store,
                                           example.application_id),
                    timeout=15)
    assert [run.outcome for run in runs] == [Outcome.OK] * len(runs)
    assert runs[0].output.endswith(example.greeting)


# -- Django, in a process of its own ---------------------------------------

@dataclass
class DjangoHost:
    """``tests.django_host`` running, and where its data lives."""

    process: subprocess.Popen[str]
    base_url: str
    job_url: str
    database: Path
    store: Path

    def visits(self) -> list[str]:
        with sqlite3.connect(self.database) as db:
            return [path for path, in db.execute(
                'SELECT path FROM django_app_visit ORDER BY id')]


def read_line(process: subprocess.Popen[str], timeout: float,
              errors: Path) -> str:
    """The process's next stdout line; fail with its stderr after timeout."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ''
    assert line, f'no output within {timeout}s:\n{errors.read_text()}'
    return line.strip()


def clean_environ(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in FOREIGN}
    return {**env, 'PYTHONUNBUFFERED': '1', **extra}


def stop_group(process: subprocess.Popen[Any]) -> None:
    """End the process's whole session: a reloader's child too."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(5)
            return
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope='module')
def django_host(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[DjangoHost]:
    directory = tmp_path_factory.mktemp('django')
    database, store = directory / 'db.sqlite', directory / 'runs.sqlite'
    errors = directory / 'host.err'
    with open(errors, 'w') as stderr:
        process = subprocess.Popen(
            [sys.executable, '-m', 'tests.django_host'], cwd=ROOT,
            env=clean_environ(EXAMPLE_DJANGO_DB=str(database),
                              ONECRON_STORE=str(store),
                              ONECRON_LOCK_DIR=str(directory)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            text=True, start_new_session=True)
    try:
        ready, base_url, job_url = read_line(process, 60, errors).split()
        assert ready == 'ready'
        yield DjangoHost(process, base_url, job_url, database, store)
    finally:
        stop_group(process)
        if process.stdin is not None:
            process.stdin.close()
        if process.stdout is not None:
            process.stdout.close()


def test_django_view_writes_through_the_orm(django_host: DjangoHost) -> None:
    """A Django view answers beside onecron; its ORM write is stored."""
    before = len(django_host.visits())
    status, body = fetch(f'{django_host.base_url}/')
    assert (status, body) == (200, f'Hello from Django, visit {before + 1}\n')
    assert django_host.visits() == ['/'] * (before + 1)


def test_django_job_url_deletes_through_the_orm(
        django_host: DjangoHost) -> None:
    """The job's URL runs it; the rows its ORM query deleted are gone."""
    with sqlite3.connect(django_host.database) as db:
        db.executemany(
            'INSERT INTO django_app_visit (path, at) VALUES (?, ?)',
            [('/old', '2000-01-01 00:00:00'),
             ('/older', '1999-12-31 23:59:59')])
    fresh = [path for path in django_host.visits() if path == '/']
    assert fetch(django_host.job_url, 'POST') == (200, 'deleted 2 visits\n')
    assert django_host.visits() == fresh


# the last Django test: from here on its scheduler deletes old rows itself
def test_django_scheduler_fires_the_orm_job(django_host: DjangoHost) -> None:
    """Started, the scheduler fires the ORM job every 2 seconds."""
    assert django_host.process.stdin is not None
    django_host.process.stdin.write('start\n')
    django_host.process.stdin.flush()
    runs = wait_for(lambda: scheduler_runs(django_host.store,
                                           'django-example'), timeout=15)
    assert runs[0].outcome is Outcome.OK
    assert runs[0].output.endswith('deleted 0 visits')


# -- the dev reloaders -----------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port: int = probe.getsockname()[1]
        return port


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except FileNotFoundError:
        return None
    return int(stat.rsplit(')', 1)[1].split()[1])


def threads_of(pid: int) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('Threads:'):
            return int(line.split()[1])
    raise AssertionError(f'no thread count for {pid}')


def check_one_scheduler(command: list[str], directory: Path,
                        application_id: str, requests: bool = True,
                        **env: str) -> None:
    """Run ``command`` (a reloader; ``{port}`` in it is replaced by a free
    port) and check that one process schedules.

    The watcher process and the serving child it starts both import the
    app. The serving child must hold the only scheduler, and each
    occurrence of the 2-second job must run once. The serving child starts
    it on its own (the base URL is configured); with ``requests`` the site
    is also asked for ``/`` all along, else never.
    """
    port = free_port()
    command = [part.replace('{port}', str(port)) for part in command]
    base_url = f'http://127.0.0.1:{port}'
    store = directory / 'runs.sqlite'
    output = directory / 'server.log'

    def poke() -> bool:
        if not requests:
            return True
        try:
            return fetch(f'{base_url}/', timeout=5)[0] == 200
        except (OSError, urllib.error.URLError):
            return False

    def three_runs() -> bool:
        poke()
        return len(scheduler_runs(store, application_id)) >= 3

    def the_scheduler(watcher: int) -> int | None:
        """The pid of the one live scheduler if it is the watcher's child."""
        poke()
        with SqliteStore(store) as schedulers:
            alive = [info.pid for info in schedulers.schedulers(
                application_id) if parent_of(info.pid) is not None]
        if len(alive) == 1 and parent_of(alive[0]) == watcher:
            return alive[0]
        return None

    with open(output, 'w') as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env=clean_environ(ONECRON_STORE=str(store),
                              ONECRON_LOCK_DIR=str(directory),
                              ONECRON_BASE_URL=base_url, **env))
    try:
        wait_for(poke, timeout=60, interval=0.2)  # the first request
        wait_for(three_runs, timeout=30 if requests else 60, interval=0.5)
        wait_for(lambda: the_scheduler(process.pid), timeout=15,
                 interval=0.5)
        # the watcher runs its main thread only: no scheduler stands by
        assert threads_of(process.pid) == 1
    except AssertionError as error:
        raise AssertionError(f'{error}\n{output.read_text()}') from None
    finally:
        stop_group(process)
    runs = scheduler_runs(store, application_id)
    occurrences = [run.scheduled for run in runs]
    assert len(occurrences) == len(set(occurrences)), 'an occurrence ran twice'
    failed = [(run.scheduled, run.outcome, run.http_status, run.error)
              for run in runs if run.outcome is not Outcome.OK]
    assert not failed, f'{failed}\n{output.read_text()}'
    if not requests:
        # the watcher imported the app too, and never said it started
        assert output.read_text().count(
            'scheduler autostarted in Werkzeug reloader worker pid') == 1, (
            output.read_text())


def test_flask_reloader_schedules_in_the_serving_process_only(
        tmp_path: Path) -> None:
    """flask run --debug: one scheduler, in the child; no duplicate run."""
    check_one_scheduler(
        [sys.executable, '-m', 'flask', '--app', 'example_app.flask_app',
         'run', '--debug', '--port', '{port}'], tmp_path, 'flask-example')


def test_flask_reloader_autostarts_without_a_request(
        tmp_path: Path) -> None:
    """flask run --debug with no request at all: the serving child alone
    starts its scheduler, once; the jobs run."""
    check_one_scheduler(
        [sys.executable, '-m', 'flask', '--app', 'example_app.flask_app',
         'run', '--debug', '--port', '{port}'], tmp_path, 'flask-example',
        requests=False)


def test_django_runserver_schedules_in_the_serving_process_only(
        tmp_path: Path) -> None:
    """manage.py runserver: one scheduler, in the child; no duplicate run."""
    database = tmp_path / 'db.sqlite'
    manage = [sys.executable, '-m', 'example_app.django_app.manage']
    subprocess.run([*manage, 'migrate', '-v0'], cwd=ROOT, check=True,
                   timeout=60, env=clean_environ(
                       EXAMPLE_DJANGO_DB=str(database)))
    check_one_scheduler([*manage, 'runserver', '127.0.0.1:{port}'],
                        tmp_path, 'django-example',
                        EXAMPLE_DJANGO_DB=str(database))
