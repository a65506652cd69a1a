"""onecron.testing: run_job runs a job through its URL in-process, simulate
lists the fires of a window; and its pytest fixtures."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from onecron import CronApp, Schedule
from onecron.testing import JobResult, run_job, simulate

pytest_plugins = ['onecron.testing']

SECRET = 'a test secret of at least 32 chars'
UTC = timezone.utc


@pytest.fixture
def app(tmp_path: Path) -> Any:
    """A CronApp whose base URL is configured and which would start a
    scheduler on a request, as a real application's does."""
    made = CronApp(secret=SECRET, lock_dir=str(tmp_path),
                   base_url='http://127.0.0.1:9', autostart=False)
    yield made
    made.stop()


@pytest.fixture
def cronapp(app: CronApp) -> CronApp:
    """The app the onecron.testing fixtures use."""
    return app


# -- run_job ------------------------------------------------------------------

def test_run_job_ok(app: CronApp) -> None:
    """An ok job: 200, what it logged and returned, no error; no
    scheduler started though the app would start one on a request."""
    @app.cronjob(hour=3, name='purge')
    def purge(request: Any) -> str:
        logging.getLogger('site').warning('deleting %d rows', 3)
        return 'deleted 3 rows'

    before = set(threading.enumerate())  # other tests' threads may linger
    result = run_job(app, 'purge')
    assert isinstance(result, JobResult)
    assert result.status == 200
    assert 'WARNING site: deleting 3 rows' in result.output
    assert result.output.endswith('\ndeleted 3 rows')
    assert result.error is None and result.traceback is None
    assert app.schedulers == {}
    assert [t.name for t in set(threading.enumerate()) - before
            if 'onecron' in t.name.lower()] == []


def test_run_job_failing(app: CronApp) -> None:
    """A job that raises: 500 and 'ValueError: message', the traceback
    beside it, its token redacted."""
    @app.cronjob(hour=3, name='import')
    def import_rows(request: Any) -> None:
        print('never seen')
        raise ValueError(f'bad row 3 of {request.url}')

    result = run_job(app, 'import')
    assert result.status == 500
    assert result.error == ('ValueError: bad row 3 of '
                            'http://127.0.0.1:9/cronjobs/[token]')
    assert result.traceback is not None
    assert result.traceback.endswith(result.error + '\n')
    token = app.url_for('import').rsplit('/', 1)[1]
    assert token not in result.traceback


def test_run_job_unknown_name_raises_key_error(app: CronApp) -> None:
    """A name no job has: KeyError naming it."""
    with pytest.raises(KeyError, match='nope'):
        run_job(app, 'nope')


def test_run_job_of_a_job_still_running(app: CronApp) -> None:
    """A job whose lock another run holds: 409, empty output, no error."""
    inner: list[JobResult] = []

    @app.cronjob(hour=3, name='long')
    def long(request: Any) -> str:
        if not inner:
            inner.append(run_job(app, 'long'))
        return 'done'

    outer = run_job(app, 'long')
    assert outer.status == 200 and outer.output == 'done'
    assert inner == [JobResult(409, '', None)]


def test_run_job_multi_tenant(tmp_path: Path) -> None:
    """A multi-tenant app: run_job(application_id=...) runs the job for
    that tenant (the host its base URL names); without it ValueError."""
    ran: list[str] = []
    app = CronApp(secret=SECRET, lock_dir=str(tmp_path),
                  application_id=lambda request: request.host.split('.')[0],
                  base_url=lambda tenant: f'https://{tenant}.example.org')
    try:
        @app.cronjob(hour=3, name='backup')
        def backup(request: Any) -> str:
            ran.append(app.application_id_of(request) or '')
            return str(request.host)

        result = run_job(app, 'backup', application_id='acme')
        assert (result.status, result.output) == (200, 'acme.example.org')
        assert run_job(app, 'backup', application_id='globex').status == 200
        assert ran == ['acme', 'globex']
        with pytest.raises(ValueError, match='pass run_job'):
            run_job(app, 'backup')
    finally:
        app.stop()


def test_run_job_refuses_a_request_of_another_tenant(tmp_path: Path) -> None:
    """An application_id the request would not be: ValueError, not a
    404 that looks like the job's."""
    app = CronApp(secret=SECRET, lock_dir=str(tmp_path), enabled=False,
                  application_id=lambda request: 'other')
    app.cronjob(hour=3, name='backup')(lambda request: None)
    with pytest.raises(ValueError, match="is application id 'other', not "
                       "'acme'"):
        run_job(app, 'backup', application_id='acme')


def test_run_job_with_static_urls_off(tmp_path: Path) -> None:
    """static_urls=False: run_job runs through a URL made for the run."""
    app = CronApp(secret=SECRET, lock_dir=str(tmp_path), enabled=False,
                  occurrence_tokens=True, static_urls=False,
                  store=str(tmp_path / 'runs.db'), job_access='loopback')
    app.cronjob(hour=3, name='purge')(lambda request: 'purged')
    assert run_job(app, 'purge') == JobResult(200, 'purged', None)
    [run] = app.store.runs('default', 'purge')  # type: ignore[union-attr]
    assert run.trigger.value == 'manual'


# -- simulate -----------------------------------------------------------------

def test_simulate_matches_the_schedules_and_offsets(app: CronApp) -> None:
    """Each fire is the schedule's next time plus the job's jitter for the
    application id, ordered across jobs, within [start, end)."""
    app.cronjob('0 */6 * * *', name='six')(lambda r: None)
    app.cronjob(hour=8, minute=30, timezone='Europe/Zurich',
                name='morning')(lambda r: None)
    app.cronjob(every=timedelta(hours=5), name='five',
                jitter=False)(lambda r: None)
    app.cronjob(name='manual')(lambda r: None)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    end = datetime(2026, 12, 3, tzinfo=UTC)
    fires = simulate(app, start, end, application_id='acme')
    expected = []
    for name in ('six', 'morning', 'five'):
        job = app.jobs[name]
        assert job.schedule is not None
        offset = timedelta(seconds=job.offset_for('acme'))
        occurrence = job.schedule.next_after(start - timedelta(seconds=1))
        while occurrence + offset < end:
            if occurrence + offset >= start:
                expected.append((occurrence + offset, name))
            occurrence = job.schedule.next_after(occurrence)
    expected.sort()
    assert fires == expected
    assert [name for _, name in fires].count('morning') == 2
    assert [name for _, name in fires].count('six') == 8
    assert 'manual' not in {name for _, name in fires}
    assert all(start <= when < end for when, _ in fires)
    assert [when for when, _ in fires] == sorted(when for when, _ in fires)
    # the jitter differs per application id
    other = simulate(app, start, end)
    assert other != fires


def test_simulate_window_bounds() -> None:
    """A fire at start is in, a fire at end is out; naive bounds are
    refused."""
    app = CronApp(secret=SECRET, enabled=False, max_offset=0)
    app.cronjob('0 * * * *', name='hourly')(lambda r: None)
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    fires = simulate(app, start, start + timedelta(hours=3))
    assert [when for when, _ in fires] == [
        start + timedelta(hours=h) for h in range(3)]
    assert simulate(app, start, start) == []
    with pytest.raises(ValueError, match='aware start'):
        simulate(app, datetime(2026, 12, 1), start)


def test_simulate_in_the_schedules_zone_across_dst() -> None:
    """Fires are aware, in the job's zone, and follow its DST rules (a
    skipped 02:30 runs at 03:00)."""
    app = CronApp(secret=SECRET, enabled=False, max_offset=0)
    app.cronjob(hour=2, minute=30, timezone='Europe/Zurich',
                name='night')(lambda r: None)
    fires = simulate(app, datetime(2026, 3, 28, tzinfo=UTC),
                     datetime(2026, 3, 31, tzinfo=UTC))
    schedule = Schedule(hour=2, minute=30, timezone='Europe/Zurich')
    assert [when for when, _ in fires] == [
        datetime(2026, 3, 28, 2, 30, tzinfo=schedule.tz),
        datetime(2026, 3, 29, 3, 0, tzinfo=schedule.tz),
        datetime(2026, 3, 30, 2, 30, tzinfo=schedule.tz)]
    assert all(str(when.tzinfo) == 'Europe/Zurich' for when, _ in fires)


# -- the fixtures -------------------------------------------------------------

def test_run_cronjob_fixture(app: CronApp, run_cronjob: Any) -> None:
    """run_cronjob(name) is run_job on the cronapp fixture."""
    app.cronjob(hour=3, name='purge')(lambda request: 'purged')
    assert run_cronjob('purge') == JobResult(200, 'purged', None)


def test_cron_simulation_fixture(app: CronApp, cron_simulation: Any) -> None:
    """cron_simulation(start, end) is simulate on the cronapp fixture."""
    app.cronjob('0 0 * * *', name='midnight')(lambda request: None)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    fires = cron_simulation(start, start + timedelta(days=3))
    assert fires == simulate(app, start, start + timedelta(days=3))
    assert len(fires) == 3
