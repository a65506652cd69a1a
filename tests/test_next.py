"""``onecron next APP JOB``: the next fire times, and which a DST change
moved or repeated."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from onecron.cli import main

APP = 'nextsite:app'


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable module ``nextsite`` with a CronApp and its jobs."""
    (tmp_path / 'nextsite.py').write_text(textwrap.dedent('''
        from datetime import timedelta

        from onecron import CronApp

        app = CronApp(secret='a test secret of at least 32 chars',
                      enabled=False)


        @app.cronjob(hour=2, minute=30, timezone='Europe/Zurich',
                     name='night', jitter=False)
        def night(request):
            pass


        @app.cronjob('30 * * * *', timezone='Europe/Zurich',
                     name='hourly', jitter=False)
        def hourly(request):
            pass


        @app.cronjob(hour=1, minute=30, timezone='America/New_York',
                     name='ny', jitter=False)
        def ny(request):
            pass


        @app.cronjob(hour=9, name='jittered')
        def jittered(request):
            pass


        @app.cronjob(name='manual')
        def manual(request):
            pass
        '''))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop('nextsite', None)


def lines(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(['next', APP, *argv]) == 0
    return capsys.readouterr().out.splitlines()


def test_skipped_time_in_march_is_moved(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Europe/Zurich 02:30 over the March change: the day without 02:30
    runs at 03:00, and its line says DST moved it."""
    out = lines(capsys, 'night', '--count', '3',
                '--after', '2026-03-28T00:00:00+01:00')
    assert out == [
        '2026-03-28 02:30:00+01:00',
        '2026-03-29 03:00:00+02:00  (DST: moved, 02:30 does not exist on '
        'this day, the clocks go forward from 02:00 to 03:00; runs once, '
        'right after the gap)',
        '2026-03-30 02:30:00+02:00']


def test_repeated_time_in_october_says_dst(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Europe/Zurich 02:30 in October, a time that happens twice: one
    run, at the first, and its line says so."""
    out = lines(capsys, 'night', '--count', '3',
                '--after', '2026-10-24T12:00:00+02:00')
    assert out == [
        '2026-10-25 02:30:00+02:00  (DST: repeated, 02:30 happens twice as '
        'the clocks go back; runs once, at the first)',
        '2026-10-26 02:30:00+01:00',
        '2026-10-27 02:30:00+01:00']


def test_doubled_runs_in_october_say_dst(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An hourly job at :30 runs twice at 02:30 in the October change:
    both lines say DST and which pass they are."""
    out = lines(capsys, 'hourly', '--count', '4',
                '--after', '2026-10-25T01:00:00+02:00')
    assert out == [
        '2026-10-25 01:30:00+02:00',
        '2026-10-25 02:30:00+02:00  (DST: repeated, 02:30 happens twice as '
        'the clocks go back; this is the first of its two runs)',
        '2026-10-25 02:30:00+01:00  (DST: repeated, 02:30 happens twice as '
        'the clocks go back; this is the second of its two runs)',
        '2026-10-25 03:30:00+01:00']


def test_new_york_01_30_in_november(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """01:30 is repeated in America/New_York: the line says DST."""
    out = lines(capsys, 'ny', '--count', '2', '--after', '2026-10-31T12:00')
    assert out == [
        '2026-11-01 01:30:00-04:00  (DST: repeated, 01:30 happens twice as '
        'the clocks go back; runs once, at the first)',
        '2026-11-02 01:30:00-05:00']


def test_count_default_and_naive_after_in_the_jobs_zone(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Five lines by default; --after without an offset is a time of the
    job's zone, and --after itself is not included."""
    out = lines(capsys, 'night', '--after', '2026-12-01T02:30')
    assert out == [f'2026-12-{day:02} 02:30:00+01:00' for day in range(2, 7)]


def test_jitter_is_included(site: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """The fire times are the scheduler's, offset included."""
    from onecron.cli import load
    job = load(APP).jobs['jittered']
    offset = job.offset_for('default')
    assert offset > 0
    out = lines(capsys, 'jittered', '--count', '1',
                '--after', '2026-12-01T00:00:00+00:00')
    after = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert out == [job.next_runtime(after).isoformat(' ', 'seconds')]


@pytest.mark.parametrize('argv, message', [
    (['night', '--after', 'yesterday'],
     "argument --after: must be an ISO 8601 time such as "
     "2026-10-24T12:00:00+02:00, got 'yesterday'"),
    (['night', '--after', '2026-13-01'],
     "argument --after: must be an ISO 8601 time"),
    (['night', '--count', '0'],
     "argument --count: must be a whole number from 1 to 10000, got '0'"),
    (['night', '--count', 'many'],
     "argument --count: must be a whole number from 1 to 10000"),
    ([], 'the following arguments are required: JOB'),
])
def test_bad_arguments_exit_2(site: Path,
                              capsys: pytest.CaptureFixture[str],
                              argv: list[str], message: str) -> None:
    """A bad --after or --count: one clear line, exit status 2."""
    assert main(['next', APP, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err.startswith('onecron: error: ')
    assert message in captured.err
    assert captured.err.count('\n') == 1


@pytest.mark.parametrize('job, message', [
    ('nope', "no job named 'nope'"),
    ('manual', "job 'manual' has no schedule"),
])
def test_unknown_or_manual_job_exit_1(site: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      job: str, message: str) -> None:
    """An unknown job or one without a schedule: one line, exit 1."""
    assert main(['next', APP, job]) == 1
    assert message in capsys.readouterr().err
