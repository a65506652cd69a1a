"""A job's log records, kept with its run, and the application's logging
left as it was: ``basicConfig`` still works after a run, and warnings of
an application that never set up logging still reach stderr.

What touches the process's logging set-up runs in a fresh interpreter.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from onecron.running.output import MAX_LINES, captured

log = logging.getLogger('tests.output')

# a job that logs, run once through the job URL, in a fresh interpreter;
# its arguments: ok or fail, and the lock directory
RUN_A_JOB = textwrap.dedent('''
    import logging, sys
    from webob import Request
    from onecron import CronApp
    app = CronApp(secret='s', enabled=False, lock_dir=sys.argv[2])

    @app.cronjob(name='job')
    def job(request):
        logging.getLogger('the.job').warning('the job says hello')
        if sys.argv[1] == 'fail':
            raise RuntimeError('the job broke')

    response = Request.blank(app.url_for('job', 'http://127.0.0.1'),
                             method='POST').get_response(app)
    print('status', response.status_int, flush=True)
''')


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-c', code, *args], text=True,
                          capture_output=True, timeout=60, check=True)


@pytest.fixture
def factory() -> Iterator[None]:
    """Puts back the record factory a test replaced."""
    before = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(before)


def test_a_run_keeps_only_its_own_thread_s_records() -> None:
    """Another thread logging at the same time does not enter the run."""
    inside, outside = threading.Event(), threading.Event()

    def other_thread() -> None:
        inside.wait(10)
        log.warning('from another thread')
        outside.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with captured() as lines:
        log.warning('from the run, %d', 1)
        inside.set()
        assert outside.wait(10)
        log.warning('from the run, %d', 2)
    thread.join()
    assert [line.split(' ', 2)[2] for line in lines] == [
        'WARNING tests.output: from the run, 1',
        'WARNING tests.output: from the run, 2']


def test_a_run_keeps_at_most_max_lines_and_tracebacks() -> None:
    with captured() as lines:
        try:
            raise ValueError('boom')
        except ValueError:
            log.exception('it failed')
        for i in range(MAX_LINES + 5):
            log.warning('line %d', i)
    assert len(lines) == MAX_LINES
    assert 'it failed\nTraceback' in lines[0]
    assert 'ValueError: boom' in lines[0]
    assert lines[-1].endswith(f'line {MAX_LINES - 2}')
    with captured() as lines:  # nothing is kept outside a run
        pass
    log.warning('after the run')
    assert lines == []


def test_basic_config_after_a_run_still_configures_logging(
        tmp_path: Path) -> None:
    """An application that sets up logging after its first job run (a
    request can come first) still gets its handler and format."""
    result = run_python(RUN_A_JOB + textwrap.dedent('''
        logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                            format='CONFIGURED %(name)s: %(message)s')
        logging.getLogger('the.app').info('configured after the run')
    '''), 'ok', str(tmp_path))
    assert result.stdout.splitlines() == [
        'status 200', 'CONFIGURED the.app: configured after the run']


def test_warnings_reach_stderr_without_any_logging_set_up(
        tmp_path: Path) -> None:
    """Python's last-resort handler prints warnings and errors when
    nothing is configured: a job run must not silence it, or a failing
    job would leave no trace on the console."""
    result = run_python(RUN_A_JOB + textwrap.dedent('''
        logging.getLogger('the.app').warning('a warning after the run')
    '''), 'fail', str(tmp_path))
    assert result.stdout == 'status 500\n'
    assert 'the job says hello' in result.stderr
    assert 'RuntimeError: the job broke' in result.stderr
    assert 'a warning after the run' in result.stderr


@pytest.mark.usefixtures('factory')
def test_a_replaced_record_factory_is_wrapped_again() -> None:
    """A library that sets its own factory, dropping onecron's, does not
    stop the next run's capture; its factory still makes the records."""
    made: list[str] = []

    def theirs(*args: object, **kwargs: object) -> logging.LogRecord:
        record = logging.LogRecord(*args, **kwargs)  # type: ignore[arg-type]
        made.append(record.getMessage())
        return record

    with captured():
        pass  # onecron's factory is in place
    logging.setLogRecordFactory(theirs)
    with captured() as lines:
        log.warning('kept anyway')
    assert made == ['kept anyway']
    assert len(lines) == 1 and lines[0].endswith('kept anyway')


@pytest.mark.usefixtures('factory')
def test_a_factory_wrapping_onecron_s_keeps_each_record_once() -> None:
    """A library that wraps onecron's factory, and onecron wrapping that
    again: each record is still kept once."""
    with captured():
        pass
    ours = logging.getLogRecordFactory()

    def wrapping(*args: object, **kwargs: object) -> logging.LogRecord:
        return ours(*args, **kwargs)

    logging.setLogRecordFactory(wrapping)
    with captured() as lines:
        log.warning('once')
    assert len(lines) == 1 and lines[0].endswith('once')
