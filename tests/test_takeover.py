"""Taking over: claims, the lease and missed runs, with a real SQLite store,
real servers and real processes.

Two CronApps with their own lock directories are two hosts (nodes) sharing
one store. The PostgreSQL version of these, across several hosts, is in
``test_multihost.py``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from webob import Request

from onecron import CronApp
from onecron.stores.base import Outcome, Run, Trigger
from onecron.stores.history import MissedRange, missed_range
from onecron.stores.sqlite import SqliteStore

from .conftest import wait_for
from .host import Hosts
from .virtual import manual_clock, run_for, run_until

EVERY_SECOND = '* * * * * *'


class Ticks:
    """A per-second job that notes which app ran which occurrence."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, datetime]] = []

    def job_for(self, label: str) -> Any:
        def tick(request: Request) -> None:
            self.seen.append((label, datetime.fromisoformat(
                request.headers['X-Onecron-Occurrence'])))
        return tick

    def by(self, label: str) -> list[datetime]:
        return [occurrence for who, occurrence in self.seen if who == label]

    @property
    def occurrences(self) -> list[datetime]:
        return [occurrence for _, occurrence in self.seen]


@pytest.fixture
def node(tmp_path: Path, live_server: Any) -> Iterator[Any]:
    """Makes started CronApps on nodes of their own, sharing one store."""
    apps: list[CronApp] = []
    store = str(tmp_path / 'runs.sqlite')

    def make(label: str, ticks: Ticks, start: bool = True,
             **options: Any) -> CronApp:
        lock_dir = tmp_path / label
        lock_dir.mkdir(exist_ok=True)
        options.setdefault('store', store)
        app = CronApp(secret='s', lock_dir=str(lock_dir), **options)
        app.cronjob(EVERY_SECOND, name='tick', jitter=False)(
            ticks.job_for(label))
        apps.append(app)
        if start:
            app.start(base_url=live_server(app).url)
        return app

    yield make
    for app in apps:
        app.stop()


def active(app: CronApp) -> bool:
    scheduler = app.schedulers.get('default')
    return scheduler is not None and scheduler.active


def runs(app: CronApp) -> list[Run]:
    assert app.store is not None
    app.history.read(lambda store: None, None)
    return app.store.runs('default', 'tick', limit=1000)


def by_occurrence(app: CronApp) -> dict[datetime, list[Run]]:
    """The runs by their occurrence (a missed record stands for a range,
    not for one: see :func:`the_missed_range`)."""
    table: dict[datetime, list[Run]] = {}
    for run in runs(app):
        if run.outcome is Outcome.MISSED and run.scheduled is None:
            continue
        assert run.scheduled is not None
        table.setdefault(run.scheduled, []).append(run)
    return table


# --- one active scheduler across nodes ------------------------------------


def test_one_node_fires_while_the_other_stands_by(node: Any) -> None:
    """Of two nodes sharing a store, one holds the lease and fires; the
    other stands by, and no occurrence runs twice."""
    ticks, clock = Ticks(), manual_clock()
    first = node('a', ticks, lease_time=3, clock=clock)
    run_until(clock, lambda: active(first), first)
    second = node('b', ticks, lease_time=3, clock=clock)
    run_for(clock, 10, first, second)  # three lease times
    assert len(ticks.by('a')) >= 9
    assert not active(second)
    assert ticks.by('b') == []
    assert len(ticks.occurrences) == len(set(ticks.occurrences))


def test_a_clean_stop_hands_over_at_once(node: Any) -> None:
    """Stopping the active node releases its lease: the standby takes
    over within a retry, and every occurrence runs once or is missed."""
    ticks, clock = Ticks(), manual_clock()
    first = node('a', ticks, lease_time=12, misfire='all', clock=clock)
    run_until(clock, lambda: len(ticks.by('a')) >= 2, first)
    second = node('b', ticks, lease_time=12, misfire='all', clock=clock)
    run_for(clock, 0.5, first, second)
    assert not active(second)
    stopped = clock.monotonic()
    first.stop()
    run_until(clock, lambda: active(second), second)
    took = clock.monotonic() - stopped
    # a standby retries every 2 s: it did not wait for the lease (10 s)
    assert took <= 2, 'it waited for the lease to expire'
    run_until(clock, lambda: len(ticks.by('b')) >= 3, second)
    occurrences = sorted(ticks.occurrences)
    assert len(occurrences) == len(set(occurrences))
    # misfire='all' replays the gap: none lost
    steps = {b - a for a, b in zip(occurrences, occurrences[1:])}
    assert steps == {timedelta(seconds=1)}


def test_claimed_occurrences_do_not_run(node: Any,
                                        tmp_path: Path) -> None:
    """An occurrence already claimed in the store (by another host, a
    retried external call) does not run again."""
    ticks, clock = Ticks(), manual_clock()
    store = SqliteStore(tmp_path / 'runs.sqlite')
    now = clock()
    taken = {now + timedelta(seconds=second) for second in range(2, 5)}
    for occurrence in taken:
        assert store.claim('default', 'tick', occurrence, key='elsewhere',
                           now=now)
    app = node('a', ticks, clock=clock)
    run_until(clock, lambda: any(occurrence > max(taken)
                                 for occurrence in ticks.by('a')), app)
    assert not taken & set(ticks.by('a'))
    assert ticks.by('a'), 'the others ran'
    store.close()


# --- restarts: missed runs --------------------------------------------------


def restart_after_a_gap(node: Any, ticks: Ticks, gap: float,
                        **options: Any) -> tuple[CronApp, datetime]:
    """Run, stop for ``gap`` seconds, start again on the same node (on
    the virtual clock ``options['clock']``)."""
    clock = options['clock']
    first = node('a', ticks, **options)
    run_until(clock, lambda: len(ticks.by('a')) >= 2, first)
    first.stop()
    stopped = clock()
    clock.advance(gap)
    return node('a', ticks, **options), stopped


def the_missed_range(app: CronApp) -> MissedRange:
    """The one missed record of the restart: every occurrence of the gap
    in it, and only those."""
    [record] = [run for run in runs(app) if run.outcome is Outcome.MISSED]
    missed = missed_range(record)
    assert missed is not None and record.duration is not None
    assert missed.count == (missed.last - missed.first).total_seconds() + 1
    assert record.scheduled is None  # a range: see missed_range
    return missed


def test_a_restart_within_grace_runs_the_missed_occurrence_once(
        node: Any) -> None:
    """misfire='once': the newest occurrence missed while stopped runs
    once at start; one record stands for the whole gap."""
    ticks, clock = Ticks(), manual_clock()
    second, stopped = restart_after_a_gap(node, ticks, 3.5, grace=30,
                                          clock=clock)
    run_until(clock, lambda: len(ticks.by('a')) >= 6, second)
    missed = wait_for(lambda: the_missed_range(second))
    assert missed.count == 3
    assert 'the newest ran now' in [
        run.output for run in runs(second)
        if run.outcome is Outcome.MISSED][0]
    table = by_occurrence(second)
    assert all(scheduled not in table for scheduled in table
               if missed.first <= scheduled < missed.last)
    [run] = [run for run in table[missed.last]
             if run.outcome is not Outcome.MISSED]
    assert run.outcome is Outcome.OK and run.trigger is Trigger.SCHEDULER
    assert ticks.occurrences.count(missed.last) == 1


def test_a_restart_past_grace_records_missed_only(node: Any) -> None:
    """Past grace, the gap is one missed record and none of it runs."""
    ticks, clock = Ticks(), manual_clock()
    second, stopped = restart_after_a_gap(node, ticks, 3.5, grace=1,
                                          clock=clock)
    first_new = run_until(clock, lambda: [
        occurrence for occurrence in ticks.by('a') if occurrence > stopped],
        second)
    missed = the_missed_range(second)
    assert missed.count == 3
    # nothing ran between the stop and the new start's first regular run
    ran = sorted(occurrence for occurrence in ticks.occurrences
                 if occurrence > stopped)
    assert ran[0] == min(first_new) and ran[0] >= missed.last
    assert not [o for o in ran if missed.first <= o < missed.last]


def test_skip_records_every_missed_occurrence(node: Any) -> None:
    """misfire='skip': even within grace nothing is caught up."""
    ticks, clock = Ticks(), manual_clock()
    second, stopped = restart_after_a_gap(node, ticks, 2.5, grace=30,
                                          misfire='skip', clock=clock)
    run_until(clock, lambda: any(o > stopped for o in ticks.by('a')),
              second)
    missed = the_missed_range(second)
    assert missed.count == 2
    assert min(o for o in ticks.occurrences if o > stopped) > missed.last


def test_all_replays_every_missed_occurrence(node: Any) -> None:
    """misfire='all': each missed occurrence runs once; none is lost."""
    ticks, clock = Ticks(), manual_clock()
    second, _ = restart_after_a_gap(node, ticks, 2.5, misfire='all',
                                    clock=clock)
    run_until(clock, lambda: len(ticks.by('a')) >= 8, second)
    occurrences = sorted(ticks.occurrences)
    assert len(occurrences) == len(set(occurrences))
    steps = {b - a for a, b in zip(occurrences, occurrences[1:])}
    assert steps == {timedelta(seconds=1)}


class SlowTicks(Ticks):
    """Ticks whose every run takes half a second."""

    def job_for(self, label: str) -> Any:
        tick = super().job_for(label)

        def slow_tick(request: Request) -> None:
            time.sleep(0.5)
            tick(request)
        return slow_tick


def test_fires_wait_behind_the_replays_of_their_job(node: Any) -> None:
    """Replays of a slow job still run when its next occurrences fall due:
    those wait in line behind them instead of meeting a running job (409,
    skipped, lost), so each occurrence runs once and none is lost."""
    ticks, clock = SlowTicks(), manual_clock()
    second, _ = restart_after_a_gap(node, ticks, 2.5, misfire='all',
                                    clock=clock)
    # the replays run one after another in real time, while the clock
    # moves on only once the calls are done: fires fall due behind them
    run_until(clock, lambda: len(ticks.by('a')) >= 10, second)
    occurrences = sorted(ticks.occurrences)
    assert len(occurrences) == len(set(occurrences))
    steps = {b - a for a, b in zip(occurrences, occurrences[1:])}
    assert steps == {timedelta(seconds=1)}


# --- a shared store that fails ---------------------------------------------


class FlakySharedStore(SqliteStore):
    """An SQLite store that says hosts share it, and that cannot be
    reached while ``down`` is set, as a database server gone away."""

    coordinates = True
    down = False

    def _connection(self, shared: bool = False) -> sqlite3.Connection:
        if self.down:
            raise sqlite3.OperationalError('the database went away')
        return super()._connection(shared)


def test_no_run_without_a_claim_on_a_shared_store(
        node: Any, tmp_path: Path, caplog: Any) -> None:
    """A store shared by hosts that cannot be reached: nothing runs, the
    outage is reported once; when it is back, jobs run again."""
    ticks, clock = Ticks(), manual_clock()
    store = FlakySharedStore(tmp_path / 'shared.sqlite')
    first = node('a', ticks, store=store, clock=clock)
    run_until(clock, lambda: ticks.by('a'), first)
    with caplog.at_level(logging.ERROR, logger='onecron'):
        store.down = True
        count = len(ticks.seen)
        run_for(clock, 3, first)  # three fires, none claimed
    assert len(ticks.seen) == count, 'ran without a claim'
    outages = [record for record in caplog.records
               if 'run store failed' in record.getMessage()]
    assert len(outages) == 1
    store.down = False
    run_until(clock, lambda: len(ticks.seen) > count + 1, first)
    assert active(first)


# --- real processes ---------------------------------------------------------


def test_a_killed_host_is_replaced_after_its_lease(tmp_path: Path) -> None:
    """kill -9 of the active host: another host takes over within the
    lease time, and no occurrence runs twice."""
    hosts = Hosts(tmp_path, tmp_path / 'runs.log')
    options = ('--store', str(tmp_path / 'runs.sqlite'), '--lease-time',
               '3', '--misfire', 'all')
    try:
        first = hosts.start(tmp_path / 'host-a', *options)
        wait_for(lambda: hosts.runs(), timeout=15)
        second = hosts.start(tmp_path / 'host-b', *options)
        # it stands by while the first fires on (real processes: as many
        # fires as it takes, not a fixed sleep)
        ready = len(hosts.runs())
        wait_for(lambda: len(hosts.runs()) >= ready + 2)
        assert {pid for pid, _ in hosts.runs()} == {first.pid}
        hosts.kill(first)
        killed = time.monotonic()
        wait_for(lambda: second.pid in {pid for pid, _ in hosts.runs()},
                 timeout=15)
        assert time.monotonic() - killed < 3 + 2.5
        count = len(hosts.runs())
        wait_for(lambda: len(hosts.runs()) >= count + 2)
    finally:
        hosts.kill_all()
    occurrences = sorted(datetime.fromisoformat(occurrence)
                         for _, occurrence in hosts.runs())
    assert len(occurrences) == len(set(occurrences)), 'ran twice'
    # misfire='all' loses none; only a run the kill cut short before the
    # job wrote its line is missing, and the store shows it as unfinished
    with SqliteStore(str(tmp_path / 'runs.sqlite')) as store:
        cut_short = {run.scheduled
                     for run in store.runs('default', 'tick', limit=1000)
                     if run.outcome is None}
    every = {occurrences[0] + timedelta(seconds=n) for n in range(
        int((occurrences[-1] - occurrences[0]).total_seconds()) + 1)}
    lost = every - set(occurrences)
    assert lost <= cut_short, f'misfire=all lost {sorted(lost)}'
    assert len(lost) <= 1, 'one kill cuts one run short at most'


def test_a_stopped_host_restarted_within_grace_catches_up(
        tmp_path: Path) -> None:
    """All processes stopped across due times and started again: within
    grace the newest missed occurrence runs once, the older are recorded
    missed; past grace (the second restart) they are only recorded."""
    hosts = Hosts(tmp_path, tmp_path / 'runs.log')
    path = tmp_path / 'runs.sqlite'
    lock_dir = tmp_path / 'host'
    pids = []
    try:
        for grace in ('30', '30', '0.001'):
            process = hosts.start(lock_dir, '--store', str(path),
                                  '--grace', grace)
            pids.append(process.pid)
            wait_for(lambda: len([1 for pid, _ in hosts.runs()
                                  if pid == process.pid]) >= 2,  # noqa: B023
                     timeout=15)  # waited for at once
            hosts.stop(process)
            time.sleep(3)
    finally:
        hosts.kill_all()
    with SqliteStore(path) as store:
        stored = store.runs('default', 'tick', limit=1000)
    outcome: dict[datetime, Outcome | None] = {}
    for run in stored:
        missed = missed_range(run)
        if missed is not None:  # one record for a range of seconds
            for second in range(missed.count):
                outcome.setdefault(missed.first + timedelta(
                    seconds=second), Outcome.MISSED)
            continue
        assert run.scheduled is not None
        assert outcome.get(run.scheduled) in (None, Outcome.MISSED), (
            'two runs of one occurrence')
        outcome[run.scheduled] = run.outcome
    ran = {datetime.fromisoformat(o): pid for pid, o in hosts.runs()}
    assert len(ran) == len(hosts.runs()), 'an occurrence ran twice'

    def first_run_of(pid: int) -> datetime:
        return min(o for o, who in ran.items() if who == pid)

    def last_run_of(pid: int) -> datetime:
        return max(o for o, who in ran.items() if who == pid)

    for before, after in ((pids[0], pids[1]), (pids[1], pids[2])):
        gap = [o for o in outcome if last_run_of(before) < o
               < first_run_of(after)]
        assert len(gap) >= 2 and all(
            outcome[o] is Outcome.MISSED for o in gap), gap
    # the second process caught up one run, the third none
    logs = [(tmp_path / f'host-{number}.err').read_text()
            for number in range(3)]
    assert "misfire='once': the newest ran now" in logs[1]
    assert 'none ran' in logs[2]
    assert outcome[first_run_of(pids[1])] is Outcome.OK


def test_a_new_active_scheduler_is_listed_at_once(node: Any) -> None:
    """A scheduler that becomes active shows in the store's schedulers
    at once, not only at the housekeeper's next renewal."""
    import os
    first = node('a', Ticks())
    wait_for(lambda: active(first))
    assert first.store is not None
    listed = wait_for(lambda: first.store.schedulers('default'), timeout=1)
    assert [info.pid for info in listed] == [os.getpid()]
