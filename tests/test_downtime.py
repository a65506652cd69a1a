"""A downtime is one record: a restart after nine minutes of a per-second
job writes one log line and one ``missed`` record per job, whatever its
misfire policy, on the SQLite and the PostgreSQL store.

The clock is frozen where the old scheduler stopped nine minutes ago, so
the restarted scheduler catches up once and never fires a regular run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.running.misfire import MAX_MISSED
from onecron.stores.base import Outcome, Run, Store
from onecron.stores.history import MissedRange, missed_range
from onecron.web.status import render as html

from .conftest import Clock, wait_for
from .test_store import BACKENDS

#: when the old scheduler last fired (in the past: PostgreSQL measures
#: lease expiry by its own clock)
STOP = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)
#: the restart, nine minutes later
NOW = STOP + timedelta(minutes=9, seconds=0.5)
#: 08:00:01 to 08:09:00
GAP = 540
FIRST = STOP + timedelta(seconds=1)
LAST = STOP + timedelta(seconds=GAP)


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh store of each backend."""
    opened = BACKENDS[request.param](request)()
    yield opened
    opened.close()


def restart(store: Store, tmp_path: Path, live_server: Any,
            down: timedelta = NOW - STOP,
            **options: Any) -> tuple[CronApp, list[datetime]]:
    """Start a CronApp whose predecessor (on another node) stopped firing
    ``down`` before its frozen clock; its per-second job notes what ran."""
    store.take_lease('default', holder='gone:1:x', node='elsewhere', ttl=1,
                     now=STOP)
    time.sleep(1.1)  # PostgreSQL measures the ttl by its own clock
    ran: list[datetime] = []
    app = CronApp(secret='a-good-secret-for-the-test-' * 2,
                  lock_dir=str(tmp_path), store=store,
                  clock=Clock(STOP + down), **options)

    @app.cronjob('* * * * * *', name='tick', jitter=False)
    def tick(request: Request) -> None:
        ran.append(datetime.fromisoformat(
            request.headers['X-Onecron-Occurrence']))

    app.start(base_url=live_server(app).url)
    return app, ran


def missed_records(store: Store) -> list[Run]:
    return [run for run in store.runs('default', 'tick', limit=5000)
            if run.outcome is Outcome.MISSED]


def caught_up(app: CronApp, caplog: Any, store: Store,
              done: Callable[[], bool] = lambda: True) -> tuple[Run, str]:
    """The one missed record and the one log line about the range."""
    try:
        wait_for(lambda: missed_records(store) and done())
    finally:
        app.stop()
    [record] = missed_records(store)
    [line] = [r.getMessage() for r in caplog.records
              if 'missed' in r.getMessage() and 'tick' in r.getMessage()]
    return record, line


@pytest.mark.parametrize('misfire, ran, done', [
    ('once', [LAST], "misfire='once': the newest ran now"),
    ('skip', [], "misfire='skip': none ran"),
    ('all', [LAST - timedelta(seconds=n) for n in range(99, -1, -1)],
     "misfire='all': the newest 100 ran now, oldest first; the older 440 "
     'did not'),
])
def test_a_restart_after_nine_minutes_is_one_record(
        store: Store, tmp_path: Path, live_server: Any, caplog: Any,
        misfire: str, ran: list[datetime], done: str) -> None:
    """540 missed per-second occurrences: one log line and one record
    (how many, from, to, what the policy did); what it runs runs."""
    caplog.set_level(logging.INFO, logger='onecron')
    app, calls = restart(store, tmp_path, live_server, misfire=misfire,
                         grace=3600)
    record, line = caught_up(app, caplog, store, lambda: len([
        run for run in store.runs('default', 'tick', limit=5000)
        if run.outcome is Outcome.OK]) >= len(ran))
    summary = (f'missed 540 occurrences from {FIRST.isoformat()} to '
               f'{LAST.isoformat()} while no scheduler ran; {done}')
    assert line == f'job tick (default): {summary}'
    assert record.output == summary
    # a range, not one occurrence: the newest may have a run of its own
    assert record.scheduled is None
    assert missed_range(record) == MissedRange(540, FIRST, LAST)
    assert sorted(calls) == ran
    others = [run for run in store.runs('default', 'tick', limit=5000)
              if run.id != record.id]
    assert sorted(run.scheduled for run in others
                  if run.scheduled is not None) == ran
    assert {run.outcome for run in others} <= {Outcome.OK}


def test_past_grace_the_record_says_so(store: Store, tmp_path: Path,
                                       live_server: Any, caplog: Any) -> None:
    """misfire='once' past its grace: one record that says none ran."""
    caplog.set_level(logging.INFO, logger='onecron')
    app, calls = restart(store, tmp_path, live_server, grace=0.25)
    record, line = caught_up(app, caplog, store)
    assert record.output.endswith(
        "misfire='once': the newest was older than its grace of 0.25 s: "
        'none ran')
    assert line.endswith(record.output)
    assert calls == []


def test_a_day_of_a_per_second_job_is_bounded(
        store: Store, tmp_path: Path, live_server: Any, caplog: Any) -> None:
    """A day down: one record counting all 86,400, claims only for the
    newest MAX_MISSED, and it says how many were only counted."""
    caplog.set_level(logging.INFO, logger='onecron')
    app, calls = restart(store, tmp_path, live_server, misfire='skip',
                         down=timedelta(days=1, seconds=0.5))
    record, line = caught_up(app, caplog, store)
    last = STOP + timedelta(days=1)
    older = 86400 - MAX_MISSED
    assert missed_range(record) == MissedRange(86400, FIRST, last)
    assert (f'(the oldest {older} only counted: the newest {MAX_MISSED} '
            'were looked at)') in record.output
    assert len(store.claimed('default', 'tick', FIRST, last)) == MAX_MISSED
    assert calls == []


def test_the_history_page_shows_the_range_without_start_or_duration(
        store: Store, tmp_path: Path, live_server: Any, caplog: Any) -> None:
    """The history page shows a missed record as how many, from and to,
    with no start time and no duration."""
    caplog.set_level(logging.INFO, logger='onecron')
    app, calls = restart(store, tmp_path, live_server, misfire='skip')
    record, _ = caught_up(app, caplog, store)
    page = html.history('tick', 'default', [record], base='/cronjobs',
                        csrf='x', now=NOW)
    row = page[page.index(f'id="run-{record.id}"'):]
    row = row[:row.index('</tr>')]
    assert 'missed 540 occurrences, from <time' in row
    assert '08:00:01' in row and '08:09:00' in row
    assert 'data-label="Started"><span class="muted">–</span>' in row
    assert 'data-label="Duration"></td>' in row
    assert ' s</td>' not in row
