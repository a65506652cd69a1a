"""The contract of every run store, run against each backend.

A backend joins by adding an entry to ``BACKENDS``: a function of the
test's ``pytest.FixtureRequest`` (to get the fixtures it needs) that returns
a way to open the same store again, as another process would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from onecron.stores import open_store
from onecron.stores.base import (
    CLAIM_DAYS,
    MAX_OUTPUT,
    Hold,
    JobSettings,
    Outcome,
    Run,
    RunKeyTaken,
    SchedulerInfo,
    Store,
    StoreError,
    Trigger,
    bounded,
    storable,
)
from onecron.stores.postgres import PostgresStore
from onecron.stores.sqlite import SqliteStore

from .postgresql import free_port

T0 = datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)
ZURICH = ZoneInfo('Europe/Zurich')
MARKER = '\n[… output truncated: '


def sqlite_backend(request: pytest.FixtureRequest) -> Callable[[], Store]:
    path = request.getfixturevalue('tmp_path') / 'onecron.sqlite'
    return lambda: SqliteStore(path)


def postgresql_backend(
        request: pytest.FixtureRequest) -> Callable[[], Store]:
    url = request.getfixturevalue('postgresql_url')
    return lambda: PostgresStore(url)


def pgbouncer_backend(request: pytest.FixtureRequest) -> Callable[[], Store]:
    url = request.getfixturevalue('pgbouncer_url')
    return lambda: PostgresStore(url)


BACKENDS = {'sqlite': sqlite_backend, 'postgresql': postgresql_backend,
            'pgbouncer': pgbouncer_backend}


@pytest.fixture(params=sorted(BACKENDS))
def reopen(request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """Opens the store under test anew; every instance is closed after."""
    factory = BACKENDS[request.param](request)
    opened: list[Store] = []

    def open_again() -> Store:
        opened.append(factory())
        return opened[-1]

    yield open_again
    for store in opened:
        store.close()


@pytest.fixture
def store(reopen: Callable[[], Store]) -> Store:
    """A fresh, empty store of the backend under test."""
    return reopen()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def add(store: Store, job: str = 'job', minutes: float = 0,
        app: str = 'app', outcome: Outcome | None = Outcome.OK) -> int:
    """A run of ``job`` started at ``minutes``; unfinished if no outcome."""
    if outcome is None:
        return store.start_run(app, job, trigger=Trigger.SCHEDULER,
                               started=at(minutes))
    return store.record_run(app, job, trigger=Trigger.SCHEDULER,
                            started=at(minutes), ended=at(minutes + 1),
                            outcome=outcome)


# --- writing runs ---------------------------------------------------------

def test_start_then_finish_keeps_every_field(store: Store) -> None:
    """A run written at start and completed at end reads back whole."""
    run_id = store.start_run('app', 'report', trigger=Trigger.SCHEDULER,
                             started=at(0.5), scheduled=at(0), key='k-1')
    store.finish_run(run_id, ended=at(2), outcome=Outcome.FAILED,
                     http_status=500, output='printed', error='Traceback')
    assert store.get_run(run_id) == Run(
        run_id, 'app', 'report', at(0), Trigger.SCHEDULER, at(0.5), at(2),
        Outcome.FAILED, 500, 'printed', 'Traceback', 'k-1')
    run = store.get_run(run_id)
    assert run is not None and run.duration == 90.0 and not run.running


def test_a_started_run_is_visible_as_running(store: Store) -> None:
    """Before it ends, a run has no end, outcome or duration, and runs."""
    run_id = store.start_run('app', 'job', trigger=Trigger.URL,
                             started=at(0))
    assert store.get_run(run_id) == Run(
        run_id, 'app', 'job', None, Trigger.URL, at(0), None, None, None,
        '', None, None)
    run = store.get_run(run_id)
    assert run is not None and run.running and run.duration is None


def test_a_known_key_returns_the_same_run_and_writes_nothing(
        store: Store) -> None:
    """record_run with a key its job has already gives that run's id and
    writes nothing."""
    first = store.start_run('app', 'job', trigger=Trigger.SCHEDULER,
                            started=at(0), key='app/job/08:30')
    recorded = store.record_run('app', 'job', trigger=Trigger.SCHEDULER,
                                started=at(6), ended=at(7),
                                outcome=Outcome.SKIPPED, key='app/job/08:30')
    again = store.record_run('app', 'job', trigger=Trigger.MANUAL,
                             started=at(8), ended=at(9),
                             outcome=Outcome.FAILED, key='app/job/08:30')
    assert first == recorded == again
    assert [run.id for run in store.runs('app')] == [first]
    run = store.get_run(first)
    assert run is not None and run.trigger is Trigger.SCHEDULER
    assert run.running


def test_runs_without_key_are_all_kept(store: Store) -> None:
    """No key means no deduplication: identical calls give new runs."""
    ids = {add(store, outcome=None) for _ in range(3)}
    assert len(ids) == 3


def test_finish_by_key_completes_or_says_there_is_none(store: Store) -> None:
    """finish_run_by_key fills the keyed run; False for an unknown key."""
    run_id = store.start_run('app', 'job', trigger=Trigger.SCHEDULER,
                             started=at(0), key='k')
    assert store.finish_run_by_key('k', application_id='app', job='job',
                                   ended=at(1), outcome=Outcome.OK,
                                   http_status=200, output='done')
    assert not store.finish_run_by_key('nope', application_id='app',
                                       job='job', ended=at(1),
                                       outcome=Outcome.OK)
    run = store.get_run(run_id)
    assert run is not None
    assert (run.outcome, run.ended, run.http_status, run.output) == (
        Outcome.OK, at(1), 200, 'done')


def test_timed_out_sticks_when_the_job_ends_later(store: Store) -> None:
    """A run marked timed out stays so; the job's end fills the rest."""
    run_id = store.start_run('app', 'job', trigger=Trigger.SCHEDULER,
                             started=at(0), key='k')
    assert store.finish_run_by_key('k', application_id='app', job='job',
                                   ended=at(1), outcome=Outcome.TIMED_OUT,
                                   error='no answer within 60s')
    store.finish_run(run_id, ended=at(3), outcome=Outcome.OK,
                     http_status=200, output='late but done')
    run = store.get_run(run_id)
    assert run is not None
    assert (run.outcome, run.ended, run.http_status, run.output,
            run.error) == (Outcome.TIMED_OUT, at(3), 200, 'late but done',
                           'no answer within 60s')


def test_timed_out_after_the_end_keeps_the_real_end(store: Store) -> None:
    """A timeout reported after the job ended marks it, keeping its end."""
    run_id = store.start_run('app', 'job', trigger=Trigger.SCHEDULER,
                             started=at(0), key='k')
    store.finish_run(run_id, ended=at(2), outcome=Outcome.OK,
                     http_status=200, output='done')
    store.finish_run_by_key('k', application_id='app', job='job',
                            ended=at(3), outcome=Outcome.TIMED_OUT)
    run = store.get_run(run_id)
    assert run is not None
    assert (run.outcome, run.ended, run.http_status, run.output) == (
        Outcome.TIMED_OUT, at(2), 200, 'done')


def test_finishing_an_unknown_run_is_logged_and_ignored(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """finish_run of an id that does not exist writes nothing and warns."""
    with caplog.at_level(logging.WARNING, logger='onecron'):
        store.finish_run(12345, ended=at(1), outcome=Outcome.OK)
    assert 'no run 12345' in caplog.text
    assert store.get_run(12345) is None
    assert store.runs('app') == []


def test_record_run_writes_a_complete_run(store: Store) -> None:
    """record_run stores a finished run in one call."""
    run_id = store.record_run('app', 'job', trigger=Trigger.SCHEDULER,
                              started=at(0), ended=at(0),
                              outcome=Outcome.MISSED, scheduled=at(-1),
                              output='held')
    assert store.get_run(run_id) == Run(
        run_id, 'app', 'job', at(-1), Trigger.SCHEDULER, at(0), at(0),
        Outcome.MISSED, None, 'held', None, None)


def test_enum_values_are_accepted_as_strings(store: Store) -> None:
    """Outcome and trigger may be given by value and come back as enums."""
    run_id = store.record_run('app', 'job', trigger='chain',  # type: ignore
                              started=at(0), ended=at(1),
                              outcome='timed out')  # type: ignore
    run = store.get_run(run_id)
    assert run is not None
    assert run.trigger is Trigger.CHAIN and run.outcome is Outcome.TIMED_OUT


# --- run keys: one run per key, application id and job ---------------------

def test_the_same_key_on_two_jobs_starts_two_runs(store: Store) -> None:
    """A key is unique per job: job A's key starts a run of job B too."""
    first = store.start_run('app', 'a', trigger=Trigger.URL, started=at(0),
                            key='k')
    second = store.start_run('app', 'b', trigger=Trigger.URL, started=at(1),
                             key='k')
    assert first != second
    assert [(run.job, run.key) for run in store.runs('app')] == [
        ('b', 'k'), ('a', 'k')]


def test_a_second_start_of_a_key_is_refused_and_writes_nothing(
        store: Store) -> None:
    """Starting a job's run again with the key of a run that started
    raises RunKeyTaken, running or ended, and leaves that run as it is."""
    run_id = store.start_run('app', 'job', trigger=Trigger.SCHEDULER,
                             started=at(0), scheduled=at(0), key='key-7f3a')
    with pytest.raises(RunKeyTaken) as taken:
        store.start_run('app', 'job', trigger=Trigger.URL, started=at(1),
                        key='key-7f3a')
    assert (taken.value.application_id, taken.value.job,
            taken.value.run_id) == ('app', 'job', run_id)
    assert 'key-7f3a' not in str(taken.value)
    store.finish_run(run_id, ended=at(2), outcome=Outcome.OK,
                     http_status=200, output='first')
    with pytest.raises(RunKeyTaken):
        store.start_run('app', 'job', trigger=Trigger.URL, started=at(3),
                        key='key-7f3a')
    assert store.runs('app') == [Run(
        run_id, 'app', 'job', at(0), Trigger.SCHEDULER, at(0), at(2),
        Outcome.OK, 200, 'first', None, 'key-7f3a')]


def test_a_key_of_one_tenant_never_touches_anothers_run(
        store: Store) -> None:
    """Tenant x's calls with tenant y's key start, finish and record x's
    own runs; y's run stays as it was."""
    theirs = store.start_run('y', 'job', trigger=Trigger.SCHEDULER,
                             started=at(0), key='k')
    ours = store.start_run('x', 'job', trigger=Trigger.URL, started=at(1),
                           key='k')
    assert ours != theirs
    assert store.finish_run_by_key('k', application_id='x', job='job',
                                   ended=at(2), outcome=Outcome.TIMED_OUT,
                                   error='forged')
    assert not store.finish_run_by_key('k', application_id='z', job='job',
                                       ended=at(2), outcome=Outcome.FAILED)
    assert store.record_run('x', 'job', trigger=Trigger.URL, started=at(3),
                            ended=at(3), outcome=Outcome.SKIPPED,
                            key='k') == ours
    assert store.get_run(theirs) == Run(
        theirs, 'y', 'job', None, Trigger.SCHEDULER, at(0), None, None,
        None, '', None, 'k')
    run = store.get_run(ours)
    assert run is not None and run.outcome is Outcome.TIMED_OUT


def test_the_first_start_takes_over_a_run_only_recorded(
        store: Store) -> None:
    """A run recorded under a key before it began (the scheduler timed
    the call out while it queued) is the run its first start starts: it
    keeps timed out and gets the output; a second start is refused."""
    recorded = store.record_run('app', 'job', trigger=Trigger.SCHEDULER,
                                started=at(0), ended=at(1),
                                outcome=Outcome.TIMED_OUT, scheduled=at(0),
                                error='no answer within 60s', key='k')
    assert store.start_run('app', 'job', trigger=Trigger.SCHEDULER,
                           started=at(2), scheduled=at(0), key='k') == recorded
    store.finish_run(recorded, ended=at(3), outcome=Outcome.OK,
                     http_status=200, output='late but done')
    with pytest.raises(RunKeyTaken):
        store.start_run('app', 'job', trigger=Trigger.SCHEDULER,
                        started=at(4), key='k')
    run = store.get_run(recorded)
    assert run is not None
    assert (run.outcome, run.output, run.error) == (
        Outcome.TIMED_OUT, 'late but done', 'no answer within 60s')
    assert [r.id for r in store.runs('app')] == [recorded]


def test_racing_starts_of_one_key_start_one_run(
        reopen: Callable[[], Store]) -> None:
    """Eight stores (as eight processes) start the same key at once: one
    run starts, the seven others are refused."""
    stores = [reopen() for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    results: list[int | str] = []

    def start(store: Store) -> None:
        barrier.wait(10)
        try:
            results.append(store.start_run(
                'app', 'job', trigger=Trigger.URL, started=at(0), key='k'))
        except RunKeyTaken:
            results.append('taken')

    threads = [threading.Thread(target=start, args=(store,))
               for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    [started] = [result for result in results if result != 'taken']
    assert results.count('taken') == 7
    assert [run.id for run in stores[0].runs('app')] == [started]


def test_claims_see_only_their_own_jobs_runs(store: Store) -> None:
    """A claim stays unstarted while only another job, or another
    application id, has run with its key."""
    store.claim('app', 'job', at(0), key='k', now=at(0))
    store.start_run('app', 'other', trigger=Trigger.URL, started=at(1),
                    key='k')
    store.start_run('tenant', 'job', trigger=Trigger.URL, started=at(1),
                    key='k')
    assert store.unstarted_claims('app', 'job', at(0), at(1),
                                  claimed_before=at(2)) == {'k': at(0)}


# --- times and texts ------------------------------------------------------

def test_aware_times_come_back_equal_in_utc(store: Store) -> None:
    """Times in any zone are stored as UTC and read back as equal instants."""
    started = datetime(2024, 7, 1, 10, 30, 0, 123456, tzinfo=ZURICH)
    ended = started + timedelta(microseconds=1)
    run_id = store.record_run('app', 'job', trigger=Trigger.URL,
                              started=started, ended=ended,
                              outcome=Outcome.OK, scheduled=started)
    run = store.get_run(run_id)
    assert run is not None
    assert (run.started, run.ended, run.scheduled) == (started, ended,
                                                       started)
    assert run.started.utcoffset() == timedelta(0)
    assert run.started.hour == 8 and run.duration == 0.000001


def test_the_second_of_a_repeated_hour_is_stored_as_such(
        store: Store) -> None:
    """02:30 with fold=1 on the autumn change is stored as 01:30 UTC."""
    # PEP 495: a fold=1 time never equals another zone's, so compare in UTC
    repeated = datetime(2024, 10, 27, 2, 30, tzinfo=ZURICH, fold=1)
    run_id = add(store, outcome=None)
    store.finish_run(run_id, ended=repeated, outcome=Outcome.OK)
    run = store.get_run(run_id)
    assert run is not None
    assert run.ended == datetime(2024, 10, 27, 1, 30, tzinfo=timezone.utc)


def test_naive_times_are_refused(store: Store) -> None:
    """A naive datetime is a ValueError, and nothing is written."""
    with pytest.raises(ValueError, match='naive'):
        store.start_run('app', 'job', trigger=Trigger.URL,
                        started=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match='naive'):
        store.set_hold('app', True, now=datetime(2024, 1, 1))
    assert store.runs('app') == []


def test_long_output_and_error_are_cut_with_a_marker(store: Store) -> None:
    """Output and error over MAX_OUTPUT keep their head and say how much
    was dropped."""
    run_id = add(store, outcome=None)
    store.finish_run(run_id, ended=at(1), outcome=Outcome.FAILED,
                     output='o' * (MAX_OUTPUT + 10),
                     error='e' * (MAX_OUTPUT * 2))
    run = store.get_run(run_id)
    assert run is not None and run.error is not None
    assert run.output == ('o' * MAX_OUTPUT
                          + f'{MARKER}10 characters dropped]')
    assert run.error == ('e' * MAX_OUTPUT
                         + f'{MARKER}{MAX_OUTPUT} characters dropped]')
    recorded = store.record_run('app', 'job', trigger=Trigger.URL,
                                started=at(0), ended=at(1),
                                outcome=Outcome.OK, output='r' * 10**6)
    run = store.get_run(recorded)
    assert run is not None and len(run.output) < MAX_OUTPUT + 100


def test_output_at_the_limit_is_kept_whole(store: Store) -> None:
    """Exactly MAX_OUTPUT characters (not bytes) are stored unchanged."""
    text = 'ü' * MAX_OUTPUT
    run_id = store.record_run('app', 'job', trigger=Trigger.URL,
                              started=at(0), ended=at(1), outcome=Outcome.OK,
                              output=text, error=text)
    run = store.get_run(run_id)
    assert run is not None and run.output == run.error == text


def test_undecodable_output_is_stored_escaped(store: Store) -> None:
    """Output with lone surrogates (undecodable bytes) is stored escaped."""
    output = b'bad \xff byte'.decode('utf-8', 'surrogateescape')
    run_id = store.record_run('app', 'job', trigger=Trigger.URL,
                              started=at(0), ended=at(1), outcome=Outcome.OK,
                              output=output)
    run = store.get_run(run_id)
    assert run is not None and run.output == 'bad \\udcff byte'
    assert bounded('plain') == 'plain'


def test_nul_and_surrogates_read_back_escaped_on_every_backend(
        store: Store) -> None:
    """NUL (which PostgreSQL text refuses) and lone surrogates in output,
    error and key are stored as the same escapes by every backend; the
    key still finds its run."""
    text = 'a\x00b' + b'\xff'.decode('utf-8', 'surrogateescape')
    stored = 'a\\x00b\\udcff'
    started = store.start_run('app', 'job', trigger=Trigger.URL,
                              started=at(0), key=text)
    store.finish_run(started, ended=at(1), outcome=Outcome.FAILED,
                     output=text, error=text)
    recorded = store.record_run('app', 'other', trigger=Trigger.URL,
                                started=at(0), ended=at(1),
                                outcome=Outcome.FAILED, output=text,
                                error='\x00', key=text)
    assert store.finish_run_by_key(text, application_id='app', job='other',
                                   ended=at(2), outcome=Outcome.TIMED_OUT)
    with pytest.raises(RunKeyTaken):
        store.start_run('app', 'job', trigger=Trigger.URL, started=at(3),
                        key=text)
    runs = [store.get_run(started), store.get_run(recorded)]
    assert [(run.output, run.error, run.key) for run in runs
            if run is not None] == [(stored, stored, stored),
                                    (stored, '\\x00', stored)]
    assert storable('plain') == 'plain' == bounded('plain')


# --- reading runs ---------------------------------------------------------

def test_runs_page_newest_first(store: Store) -> None:
    """runs() returns newest first, by job or all, paged with before_id."""
    ids = [add(store, job=f'job{i % 2}', minutes=i) for i in range(7)]
    add(store, app='other')
    newest_first = ids[::-1]
    page = store.runs('app', limit=3)
    assert [run.id for run in page] == newest_first[:3]
    page = store.runs('app', limit=3, before_id=page[-1].id)
    assert [run.id for run in page] == newest_first[3:6]
    assert [run.id for run in store.runs('app', before_id=page[-1].id)] == \
        newest_first[6:]
    assert [run.id for run in store.runs('app', 'job1')] == \
        [ids[5], ids[3], ids[1]]
    assert store.runs('app', limit=0) == []
    with pytest.raises(ValueError):
        store.runs('app', limit=-1)


def test_last_runs_has_the_newest_run_per_job_of_one_id(store: Store) -> None:
    """last_runs maps each job of the id to its newest run, finished or not."""
    add(store, 'a', 0)
    newest_a = add(store, 'a', 1, outcome=None)
    newest_b = add(store, 'b', 0, outcome=Outcome.FAILED)
    add(store, 'a', 2, app='other')
    last = store.last_runs('app')
    assert {job: run.id for job, run in last.items()} == {
        'a': newest_a, 'b': newest_b}
    assert last['b'].outcome is Outcome.FAILED
    assert set(store.last_runs('other')) == {'a'}
    assert store.last_runs('nobody') == {}


def test_get_run_of_an_unknown_id_is_none(store: Store) -> None:
    """get_run() answers None for an id that does not exist."""
    assert store.get_run(1) is None


# --- retention ------------------------------------------------------------

def test_prune_keeps_the_last_runs_of_each_job(store: Store) -> None:
    """keep_runs=N keeps the newest N finished runs per id and job."""
    kept = {}
    for app in ('app', 'other'):
        for job in ('a', 'b'):
            ids = [add(store, job, minute, app) for minute in range(5)]
            kept[app, job] = ids[-2:][::-1]
    assert store.prune(now=at(10), keep_runs=2) == 12
    for (app, job), ids in kept.items():
        assert [run.id for run in store.runs(app, job)] == ids


def test_prune_keeps_unfinished_runs_when_counting(store: Store) -> None:
    """An unfinished run survives keep_runs, and counts among the N."""
    stuck = add(store, minutes=0, outcome=None)
    finished = [add(store, minutes=minute) for minute in range(1, 4)]
    assert store.prune(now=at(10), keep_runs=1) == 2
    assert [run.id for run in store.runs('app')] == [finished[-1], stuck]
    assert store.prune(now=at(10), keep_runs=0) == 1
    assert [run.id for run in store.runs('app')] == [stuck]


def test_prune_by_days_drops_old_runs_finished_or_not(store: Store) -> None:
    """keep_days drops every run started before now minus N days."""
    day = 24 * 60
    add(store, minutes=-3 * day)
    add(store, minutes=-3 * day, outcome=None)
    young = [add(store, minutes=-day), add(store, minutes=-day, outcome=None)]
    assert store.prune(now=at(0), keep_days=2) == 2
    assert sorted(run.id for run in store.runs('app')) == young


def test_prune_with_both_limits_applies_each(store: Store) -> None:
    """With keep_runs and keep_days, a run goes if either limit drops it,
    but a young unfinished run stays."""
    day = 24 * 60
    old = add(store, minutes=-3 * day)
    young = [add(store, minutes=-minute) for minute in (3, 2, 1)]
    young_stuck = add(store, minutes=-0.5, outcome=None)
    assert store.prune(now=at(0), keep_runs=2, keep_days=2) == 3
    assert store.get_run(old) is None
    assert [run.id for run in store.runs('app')] == [young_stuck, young[-1]]


def test_prune_without_limits_deletes_nothing(store: Store) -> None:
    """prune() with no limit deletes nothing; negative limits are refused."""
    add(store)
    assert store.prune(now=at(100)) == 0
    assert len(store.runs('app')) == 1
    with pytest.raises(ValueError):
        store.prune(now=at(0), keep_runs=-1)
    with pytest.raises(ValueError):
        store.prune(now=at(0), keep_days=-1)


def test_prune_never_reuses_an_id(store: Store) -> None:
    """After the newest runs are pruned, new runs still get higher ids."""
    last = add(store, minutes=0)
    store.prune(now=at(100 * 24 * 60), keep_days=1)
    assert add(store) > last


# --- switches, holds, schedulers -------------------------------------------

def test_settings_persist_for_every_instance(
        store: Store, reopen: Callable[[], Store]) -> None:
    """Enabled flags and schedule overrides are seen by a new instance."""
    assert store.job_settings('app') == {}
    store.set_enabled('app', 'a', False)
    store.set_schedule('app', 'b', '0 9 * * MON', 'Europe/Zurich')
    store.set_enabled('other', 'a', False)
    assert reopen().job_settings('app') == {
        'a': JobSettings(enabled=False),
        'b': JobSettings(True, '0 9 * * MON', 'Europe/Zurich')}
    store.set_enabled('app', 'a', True)
    store.set_schedule('app', 'b', None)
    assert reopen().job_settings('app') == {'a': JobSettings(),
                                            'b': JobSettings()}


def test_enabling_keeps_the_schedule_and_back(store: Store) -> None:
    """set_enabled and set_schedule each change only their own setting."""
    store.set_schedule('app', 'a', '@hourly')
    store.set_enabled('app', 'a', False)
    store.set_schedule('app', 'a', '@daily')
    assert store.job_settings('app')['a'] == JobSettings(False, '@daily')


def test_resetting_a_schedule_takes_no_time_zone(store: Store) -> None:
    """set_schedule(None, timezone) is a ValueError: a reset is whole."""
    with pytest.raises(ValueError, match='Europe/Zurich'):
        store.set_schedule('app', 'a', None, 'Europe/Zurich')


def test_hold_persists_and_remembers_since_when(
        store: Store, reopen: Callable[[], Store]) -> None:
    """A hold is seen by a new instance; since changes only with the state,
    and set_hold returns the state before."""
    assert store.hold('app') == Hold(False, None)
    assert store.set_hold('app', False, now=at(0)) == Hold(False, None)
    assert store.set_hold('app', True, now=at(1).astimezone(ZURICH)) == \
        Hold(False, None)
    assert store.set_hold('app', True, now=at(2)) == Hold(True, at(1))
    assert reopen().hold('app') == Hold(True, at(1))
    assert store.hold('other') == Hold(False, None)
    assert store.set_hold('app', False, now=at(3)) == Hold(True, at(1))
    assert reopen().hold('app') == Hold(False, at(3))


def test_heartbeat_inserts_then_updates(
        store: Store, reopen: Callable[[], Store]) -> None:
    """heartbeat() upserts by id, host and pid; schedulers() lists them."""
    first = SchedulerInfo('app', 'web1', 100, at(0), at(0))
    store.heartbeat(first)
    store.heartbeat(SchedulerInfo('other', 'web1', 100, at(0), at(0)))
    beat = SchedulerInfo('app', 'web1', 100, at(0), at(1).astimezone(ZURICH))
    store.heartbeat(beat)
    second = SchedulerInfo('app', 'web2', 7, at(1), at(1))
    store.heartbeat(second)
    assert reopen().schedulers('app') == [
        SchedulerInfo('app', 'web1', 100, at(0), at(1)), second]
    assert len(store.schedulers()) == 3
    store.forget_scheduler('app', 'web1', 100)
    assert store.schedulers('app') == [second]


# --- the store itself -------------------------------------------------------

def test_version_and_repr(store: Store) -> None:
    """A new store is at schema version 4 and its repr names its class."""
    assert store.version() == 5
    assert repr(store).startswith(f'<{type(store).__name__} ')


# --- open_store -------------------------------------------------------------

def test_open_store_passes_none_and_stores_through(tmp_path: Path) -> None:
    """None means no store; a Store is used as it is."""
    assert open_store(None) is None
    with SqliteStore(tmp_path / 'x.sqlite') as store:
        assert open_store(store) is store


@pytest.mark.parametrize('form', ['path', 'pathlike', 'absolute url',
                                  'relative url'])
def test_open_store_opens_sqlite_from_a_path_or_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    """A path, sqlite:////absolute or sqlite:///relative opens SQLite."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'runs.sqlite'
    targets: dict[str, str | Path] = {
        'path': str(path), 'pathlike': path,
        'absolute url': f'sqlite:///{path}',
        'relative url': 'sqlite:///runs.sqlite'}
    target = targets[form]
    store = open_store(target)
    assert isinstance(store, SqliteStore)
    assert store.path == str(path)
    store.close()


@pytest.mark.parametrize('scheme', ['postgresql', 'postgres',
                                    'postgresql+psycopg'])
def test_open_store_opens_postgresql_from_a_url(postgresql_url: str,
                                               scheme: str) -> None:
    """postgresql://, postgres:// and SQLAlchemy's postgresql+driver://
    open the PostgreSQL store."""
    url = postgresql_url.replace('postgresql://', f'{scheme}://')
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.version() == 5
    store.close()


def test_open_store_postgresql_fails_at_once_without_the_password() -> None:
    """A PostgreSQL URL nobody answers opens (the server may come later);
    its first call is a StoreError naming the URL but not its password."""
    url = f'postgresql://onecron:s3cret@127.0.0.1:{free_port()}/onecron'
    store = open_store(url)
    assert store is not None
    with pytest.raises(StoreError, match='PostgreSQL') as error:
        store.runs('app')
    assert 's3cret' not in str(error.value)
    assert error.value.location == url.replace('s3cret', '***')


@pytest.mark.parametrize('target', [
    'mysql://user:s3cret@db/onecron', 'sqlite://', 'sqlite:///', '', ' ',
    ':memory:', 'sqlite:///:memory:', 42])
def test_open_store_refuses_anything_else(target: object) -> None:
    """Other schemes, empty paths, :memory: and non-strings: ValueError."""
    with pytest.raises(ValueError) as error:
        open_store(target)  # type: ignore[arg-type]
    assert 's3cret' not in str(error.value)
    if target == 'mysql://user:s3cret@db/onecron':
        assert 'mysql://user:***@db/onecron' in str(error.value)


# --- claims -------------------------------------------------------------


def test_a_claim_is_won_once(store: Store) -> None:
    """The first key claims an occurrence; any other key loses it."""
    assert store.claim('app', 'job', T0, key='a', now=at(0))
    assert not store.claim('app', 'job', T0, key='b', now=at(0))
    assert not store.claim('app', 'job', T0, key='c', now=at(1))


def test_the_same_key_keeps_its_claim(store: Store) -> None:
    """A retried call with the claiming key still holds the claim."""
    assert store.claim('app', 'job', T0, key='a', now=at(0))
    assert store.claim('app', 'job', T0, key='a', now=at(1))


def test_claims_are_per_application_job_and_occurrence(store: Store) -> None:
    """Another id, job or occurrence is another claim."""
    assert store.claim('app', 'job', T0, key='a', now=at(0))
    assert store.claim('other', 'job', T0, key='b', now=at(0))
    assert store.claim('app', 'other', T0, key='c', now=at(0))
    assert store.claim('app', 'job', at(1), key='d', now=at(0))


def test_claims_compare_instants_not_zones(store: Store) -> None:
    """The same instant written in another zone is the same claim."""
    assert store.claim('app', 'job', T0, key='a', now=at(0))
    assert not store.claim('app', 'job', T0.astimezone(ZURICH), key='b',
                           now=at(0))


def test_claimed_lists_the_claims_of_a_window(store: Store) -> None:
    """claimed() gives the occurrences claimed between two instants."""
    for minute in (0, 1, 2, 5):
        store.claim('app', 'job', at(minute), key=f'k{minute}', now=at(9))
    store.claim('app', 'other', at(1), key='x', now=at(9))
    assert store.claimed('app', 'job', at(1), at(5)) == {at(1), at(2), at(5)}
    assert store.claimed('app', 'job', at(6), at(9)) == set()


def test_one_claim_wins_among_racing_stores(
        reopen: Callable[[], Store]) -> None:
    """Stores opened apart (as by other processes) agree on one winner."""
    stores = [reopen() for _ in range(3)]
    won = [store.claim('app', 'job', T0, key=str(number), now=T0)
           for number, store in enumerate(stores)]
    assert won == [True, False, False]


def test_prune_drops_old_claims_only(store: Store) -> None:
    """Claims older than CLAIM_DAYS go, newer stay, without any limit."""
    now = T0 + timedelta(days=CLAIM_DAYS, minutes=1)
    store.claim('app', 'job', T0, key='old', now=T0)
    store.claim('app', 'job', at(2), key='new', now=T0)
    store.prune(now=now)
    assert store.claimed('app', 'job', T0, now) == {at(2)}


# --- leases -------------------------------------------------------------


def test_a_free_lease_is_taken(store: Store) -> None:
    """Nobody holds it: the first holder takes it; there was none before."""
    assert store.take_lease('app', holder='h1', node='n1', ttl=30,
                            now=T0) == (True, None)
    lease = store.lease('app')
    assert lease is not None
    assert (lease.holder, lease.node, lease.acquired, lease.renewed,
            lease.expires) == ('h1', 'n1', T0, T0, T0 + timedelta(seconds=30))


def test_a_held_lease_is_refused_to_another_node(store: Store) -> None:
    """While it runs, another node's holder cannot take it."""
    store.take_lease('app', holder='h1', node='n1', ttl=30, now=T0)
    taken, before = store.take_lease('app', holder='h2', node='n2', ttl=30,
                                     now=T0 + timedelta(seconds=10))
    assert not taken
    assert before is not None and before.holder == 'h1'


def test_a_renewal_keeps_acquired_and_moves_expiry(store: Store) -> None:
    """The holder renews: acquired stays, renewed and expires move."""
    store.take_lease('app', holder='h1', node='n1', ttl=30, now=T0)
    later = T0 + timedelta(seconds=10)
    assert store.take_lease('app', holder='h1', node='n1', ttl=30,
                            now=later)[0]
    lease = store.lease('app')
    assert lease is not None
    assert (lease.acquired, lease.renewed, lease.expires) == (
        T0, later, later + timedelta(seconds=30))


def test_an_expired_lease_is_taken_over(store: Store) -> None:
    """Once it expires, another node takes it and learns the old one."""
    # real time passes: a store may measure expiry by its server's clock
    start = datetime.now(timezone.utc)
    store.take_lease('app', holder='h1', node='n1', ttl=0.1, now=start)
    time.sleep(0.2)
    taken, before = store.take_lease('app', holder='h2', node='n2', ttl=30,
                                     now=datetime.now(timezone.utc))
    assert taken
    assert before is not None and before.renewed == start
    assert store.lease('app').holder == 'h2'  # type: ignore[union-attr]


def test_the_same_node_takes_over_at_once(store: Store) -> None:
    """A holder on the old holder's node takes the lease before expiry."""
    store.take_lease('app', holder='h1', node='n1', ttl=30, now=T0)
    assert store.take_lease('app', holder='h2', node='n1', ttl=30,
                            now=T0 + timedelta(seconds=1))[0]


def test_a_released_lease_is_free_and_keeps_renewed(store: Store) -> None:
    """Release ends the lease now; renewed still says until when it ran."""
    store.take_lease('app', holder='h1', node='n1', ttl=30, now=T0)
    store.release_lease('app', 'h1')
    store.release_lease('app', 'somebody else')  # not theirs: no-op
    taken, before = store.take_lease('app', holder='h2', node='n2', ttl=30,
                                     now=T0 + timedelta(seconds=1))
    assert taken
    assert before is not None and before.renewed == T0


def test_leases_are_per_application_id(store: Store) -> None:
    """Each application id has a lease of its own."""
    assert store.take_lease('a', holder='h1', node='n1', ttl=30, now=T0)[0]
    assert store.take_lease('b', holder='h2', node='n2', ttl=30, now=T0)[0]
    assert store.lease('c') is None


def test_a_lease_needs_a_positive_ttl(store: Store) -> None:
    """ttl 0 is refused, naming the value."""
    with pytest.raises(ValueError, match='ttl must be positive, got 0'):
        store.take_lease('app', holder='h', node='n', ttl=0, now=T0)


# --- many application ids at once ----------------------------------------


def test_batched_reads_match_the_single_ones(store: Store) -> None:
    """job_settings_of and holds_of give what job_settings and hold give,
    for many ids in one call."""
    store.set_enabled('a', 'job', False)
    store.set_schedule('b', 'job', '*/5 * * * *', 'Europe/Zurich')
    store.set_hold('b', True, now=T0)
    ids = ['a', 'b', 'c']
    settings = store.job_settings_of(ids)
    assert {app: settings.get(app, {}) for app in ids} == {
        app: store.job_settings(app) for app in ids}
    holds = store.holds_of(ids)
    assert {app: holds.get(app, Hold(False, None)) for app in ids} == {
        app: store.hold(app) for app in ids}


def test_renew_leases_renews_its_own_and_takes_free_ones(
        store: Store) -> None:
    """renew_leases: leases held are renewed, free ones taken, another
    node's live lease left alone."""
    store.take_lease('mine', holder='h1', node='n1', ttl=30, now=T0)
    store.take_lease('theirs', holder='h2', node='n2', ttl=30, now=T0)
    later = T0 + timedelta(seconds=10)
    assert store.renew_leases(['mine', 'theirs', 'free'], holder='h1',
                              node='n1', ttl=30, now=later) == {
        'mine', 'free'}
    lease = store.lease('mine')
    assert lease is not None and lease.renewed == later
    assert store.lease('theirs').holder == 'h2'  # type: ignore[union-attr]


def test_heartbeats_write_many_schedulers(store: Store) -> None:
    """heartbeats() inserts and updates several schedulers at once."""
    infos = [SchedulerInfo(f'app-{n}', 'host', 1, T0, at(n))
             for n in range(3)]
    store.heartbeats(infos)
    store.heartbeats([SchedulerInfo('app-0', 'host', 1, T0, at(9))])
    assert [info.heartbeat for info in store.schedulers()] == [
        at(9), at(1), at(2)]


def test_unstarted_claims_are_those_without_a_run(store: Store) -> None:
    """A claim whose key never started a run, made before the limit, is
    unstarted; one with a run, or too recent, is not."""
    store.claim('app', 'job', at(0), key='lost', now=at(0))
    store.claim('app', 'job', at(1), key='ran', now=at(1))
    store.start_run('app', 'job', trigger=Trigger.SCHEDULER, started=at(1),
                    scheduled=at(1), key='ran')
    store.claim('app', 'job', at(2), key='recent', now=at(5))
    assert store.unstarted_claims('app', 'job', at(0), at(2),
                                  claimed_before=at(3)) == {'lost': at(0)}
