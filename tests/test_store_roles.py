"""The store's roles and its one place of validation, on every backend.

Each backend plays the five roles of :mod:`onecron.stores.roles`; every
public method of :class:`Store` belongs to one of them. The checks of the
arguments (aware times, bounds, a reset without a time zone) happen in
:class:`Store` before any backend method is reached, so a backend (ours
or a user's) never sees a naive time. And a run pruned while a keyed
write looks for it is no error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from onecron.stores import roles
from onecron.stores.base import (
    Hold,
    Outcome,
    Run,
    RunKeyTaken,
    SchedulerInfo,
    Store,
    Trigger,
)
from onecron.stores.roles import Claims, Heartbeats, Leases, RunLog, Switches
from onecron.stores.sqlite import SqliteStore

from . import test_store as contract

T0 = datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)
NAIVE = datetime(2024, 3, 1, 8, 30)
ZURICH = ZoneInfo('Europe/Zurich')

#: what a backend implements behind a checking public method
HOOKS = ('_start_run', '_insert_run', '_finish', '_runs', '_prune',
         '_claim', '_claimed', '_unstarted_claims', '_take_lease',
         '_renew_leases', '_set_schedule', '_set_hold', '_heartbeats')

#: calls that Store refuses, each with what its error says
REFUSED: dict[str, tuple[Callable[[Store], object], str]] = {
    'start_run': (lambda s: s.start_run(
        'app', 'job', trigger=Trigger.URL, started=NAIVE), 'naive'),
    'start_run scheduled': (lambda s: s.start_run(
        'app', 'job', trigger=Trigger.URL, started=T0, scheduled=NAIVE),
        'naive'),
    'finish_run': (lambda s: s.finish_run(
        1, ended=NAIVE, outcome=Outcome.OK), 'naive'),
    'finish_run_by_key': (lambda s: s.finish_run_by_key(
        'k', application_id='app', job='job', ended=NAIVE,
        outcome=Outcome.OK), 'naive'),
    'record_run': (lambda s: s.record_run(
        'app', 'job', trigger=Trigger.URL, started=T0, ended=NAIVE,
        outcome=Outcome.OK), 'naive'),
    'runs': (lambda s: s.runs('app', limit=-1), 'negative'),
    'prune': (lambda s: s.prune(now=NAIVE, keep_runs=1), 'naive'),
    'prune keep_runs': (lambda s: s.prune(now=T0, keep_runs=-1),
                        'negative'),
    'prune keep_days': (lambda s: s.prune(now=T0, keep_days=-1),
                        'negative'),
    'claim': (lambda s: s.claim('app', 'job', NAIVE, key='k', now=T0),
              'naive'),
    'claimed': (lambda s: s.claimed('app', 'job', T0, NAIVE), 'naive'),
    'unstarted_claims': (lambda s: s.unstarted_claims(
        'app', 'job', T0, T0, claimed_before=NAIVE), 'naive'),
    'take_lease': (lambda s: s.take_lease(
        'app', holder='h', node='n', ttl=10, now=NAIVE), 'naive'),
    'take_lease ttl': (lambda s: s.take_lease(
        'app', holder='h', node='n', ttl=0, now=T0), 'ttl'),
    'renew_leases': (lambda s: s.renew_leases(
        ['app'], holder='h', node='n', ttl=10, now=NAIVE), 'naive'),
    'renew_leases ttl': (lambda s: s.renew_leases(
        ['app'], holder='h', node='n', ttl=-1, now=T0), 'ttl'),
    'set_schedule': (lambda s: s.set_schedule(
        'app', 'job', None, 'Europe/Zurich'), 'time zone'),
    'set_hold': (lambda s: s.set_hold('app', True, now=NAIVE), 'naive'),
    'heartbeats': (lambda s: s.heartbeats([SchedulerInfo(
        'app', 'host', 1, T0, NAIVE)]), 'naive'),
    'heartbeat': (lambda s: s.heartbeat(SchedulerInfo(
        'app', 'host', 1, NAIVE, T0)), 'naive'),
}


def spy(store: Store, monkeypatch: pytest.MonkeyPatch,
        ) -> list[tuple[str, tuple[Any, ...]]]:
    """Record every call of the store's backend methods (and let it
    through)."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for name in HOOKS:
        method = getattr(store, name)

        def recorded(*args: Any, _name: str = name,
                     _method: Any = method) -> Any:
            calls.append((_name, args))
            return _method(*args)
        monkeypatch.setattr(store, name, recorded)
    return calls


def times_in(value: object) -> list[datetime]:
    """The datetimes in a hook's arguments, records and lists included."""
    if isinstance(value, datetime):
        return [value]
    if isinstance(value, (list, tuple, set)):
        return [found for item in value for found in times_in(item)]
    if isinstance(value, (Run, SchedulerInfo)):
        return times_in([getattr(value, field) for field in
                         value.__dataclass_fields__])
    return []


@pytest.fixture(params=sorted(contract.BACKENDS))
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh store of each backend of the contract suite."""
    with contract.BACKENDS[request.param](request)() as opened:
        yield opened


# --- roles -------------------------------------------------------------


@pytest.mark.parametrize('role', roles.ROLES, ids=lambda r: r.__name__)
def test_every_backend_plays_every_role(store: Store, role: type) -> None:
    """Each backend is an instance of each runtime-checkable role."""
    assert isinstance(store, role)


def test_the_roles_cover_the_store_once() -> None:
    """Every public method of Store is in exactly one role, and every
    method of a role is Store's, with the same signature."""
    public = {name for name, _ in inspect.getmembers(Store)
              if not name.startswith('_')} - {'version', 'close'}
    members = {role: {name for name in (*vars(role), *role.__annotations__)
                      if not name.startswith('_')}
               for role in roles.ROLES}
    assert sum(len(names) for names in members.values()) == len(
        set().union(*members.values()))
    assert set().union(*members.values()) == public
    for role, names in members.items():
        for name in names - {'coordinates'}:
            assert inspect.signature(getattr(role, name)) == (
                inspect.signature(getattr(Store, name))), (role, name)


def test_a_consumer_of_one_role_takes_a_fake_of_that_role() -> None:
    """A small fake with only the leases' methods is a Leases, not a
    RunLog nor a Store."""

    class FakeLeases:
        def take_lease(self, application_id: str, *, holder: str, node: str,
                       ttl: float, now: datetime) -> tuple[bool, None]:
            return True, None

        def renew_leases(self, application_ids: Any, *, holder: str,
                         node: str, ttl: float, now: datetime) -> set[str]:
            return set(application_ids)

        def release_lease(self, application_id: str, holder: str) -> None:
            pass

        def lease(self, application_id: str) -> None:
            return None

    def renew(leases: Leases) -> set[str]:
        return leases.renew_leases(['a'], holder='h', node='n', ttl=1, now=T0)

    fake = FakeLeases()
    assert isinstance(fake, Leases)
    assert not isinstance(fake, (RunLog, Claims, Switches, Heartbeats))
    assert renew(fake) == {'a'}


# --- validation, once, before the backend -------------------------------


@pytest.mark.parametrize('call', sorted(REFUSED))
def test_a_refused_call_never_reaches_the_backend(
        store: Store, monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    """A naive time, a negative bound or a reset with a time zone is a
    ValueError from Store: no backend method is called."""
    calls = spy(store, monkeypatch)
    method, message = REFUSED[call]
    with pytest.raises(ValueError, match=message):
        method(store)
    assert calls == []


def test_the_backend_gets_utc_times_and_bounded_texts(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Times in any zone reach the backend as UTC, texts bounded: every
    public method that takes one, on every backend."""
    calls = spy(store, monkeypatch)
    local = T0.astimezone(ZURICH)
    run_id = store.start_run('app', 'job', trigger=Trigger.URL,
                             started=local, scheduled=local, key='k')
    store.finish_run(run_id, ended=local, outcome=Outcome.OK,
                     output='x' * 100_000)
    store.finish_run_by_key('k', application_id='app', job='job',
                            ended=local, outcome=Outcome.FAILED)
    store.record_run('app', 'job', trigger=Trigger.URL, started=local,
                     ended=local, outcome=Outcome.MISSED, scheduled=local)
    store.runs('app', limit=5)
    store.prune(now=local, keep_days=1)
    store.claim('app', 'job', local, key='k', now=local)
    store.claimed('app', 'job', local, local)
    store.unstarted_claims('app', 'job', local, local, claimed_before=local)
    store.take_lease('app', holder='h', node='n', ttl=10, now=local)
    store.renew_leases(['app'], holder='h', node='n', ttl=10, now=local)
    store.set_schedule('app', 'job', '* * * * *', 'Europe/Zurich')
    store.set_hold('app', True, now=local)
    store.heartbeats([SchedulerInfo('app', 'host', 1, local, local)])
    reached = {name for name, _ in calls}
    assert reached == set(HOOKS)
    assert all(found.tzinfo is timezone.utc
               for _, args in calls for found in times_in(args))
    finish = next(args for name, args in calls if name == '_finish')
    assert len(finish[5]) < 100_000  # the output, cut
    assert store.hold('app') == Hold(True, T0)


def test_a_store_of_ones_own_gets_the_checks_for_free(
        tmp_path: Path) -> None:
    """A user's store implementing the backend methods is refused naive
    times and bad bounds by Store, before its own code runs."""
    seen: list[str] = []

    class Recording(SqliteStore):
        def _set_hold(self, application_id: str, held: bool,
                      now: datetime) -> Hold:
            seen.append('_set_hold')
            return super()._set_hold(application_id, held, now)

        def _runs(self, application_id: str, job: str | None, limit: int,
                  before_id: int | None) -> list[Run]:
            seen.append('_runs')
            return super()._runs(application_id, job, limit, before_id)

    with Recording(tmp_path / 'own.sqlite') as recording:
        for call in ('set_hold', 'runs'):
            with pytest.raises(ValueError):
                REFUSED[call][0](recording)
        assert seen == []
        assert recording.set_hold('app', True, now=T0) == Hold(False, None)
        assert recording.runs('app') == []
        assert seen == ['_set_hold', '_runs']


# --- a prune between a keyed write and its read-back ---------------------


def prune_at_begin(store: SqliteStore, other: SqliteStore,
                   ) -> list[int]:
    """Make ``other`` prune every run just before ``store``'s write
    connection opens its next transaction: after a keyed INSERT found the
    key taken, before the run with the key is read back. Returns the
    counts pruned (one entry once it happened)."""
    pruned: list[int] = []

    def trace(statement: str) -> None:
        if statement.startswith('BEGIN IMMEDIATE') and not pruned:
            pruned.append(other.prune(now=T0 + timedelta(days=30),
                                      keep_days=1))
    store._connection(shared=True).set_trace_callback(trace)
    return pruned


@pytest.mark.parametrize('start', [True, False], ids=['start', 'record'])
def test_a_run_pruned_while_its_key_is_looked_up_is_written_anew(
        tmp_path: Path, start: bool) -> None:
    """SQLite: a keyed run pruned between the INSERT that found its key
    taken and the read-back of that run: the new run is written (no
    TypeError, no other error), once, under its key."""
    path = tmp_path / 'race.sqlite'
    with SqliteStore(path) as writer, SqliteStore(path) as other:
        first = writer.record_run('app', 'job', trigger=Trigger.SCHEDULER,
                                 started=T0, ended=T0, outcome=Outcome.OK,
                                 key='k')
        pruned = prune_at_begin(writer, other)
        if start:
            run_id = writer.start_run('app', 'job', trigger=Trigger.URL,
                                     started=T0, key='k')
        else:
            run_id = writer.record_run(
                'app', 'job', trigger=Trigger.URL, started=T0, ended=T0,
                outcome=Outcome.SKIPPED, key='k')
        assert pruned == [1]
        assert run_id > first
        assert [(run.id, run.key) for run in other.runs('app')] == [
            (run_id, 'k')]
        if start:  # it started: a second start of its key is refused
            with pytest.raises(RunKeyTaken):
                other.start_run('app', 'job', trigger=Trigger.URL,
                                started=T0, key='k')

