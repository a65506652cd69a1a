"""The clockwork: one thread drives every application id's scheduler."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from onecron import CronApp
from onecron.running.clockwork import Clockwork
from onecron.running.lock import HostLock, lock_path
from onecron.schedule.clock import ManualClock, utcnow

from .conftest import wait_for


class Owner:
    """A stand-in scheduler: records what the clockwork asks of it."""

    def __init__(self) -> None:
        self.busy = threading.RLock()
        self.stopped = False
        self.ran: list[str] = []
        self.errors: list[Exception] = []
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1

    def reschedule(self) -> bool:
        return False

    def crashed(self, error: Exception) -> None:
        self.errors.append(error)


def soon(seconds: float = 0.0) -> float:
    return time.time() + seconds


def test_steps_run_in_time_order_on_one_thread() -> None:
    """Steps of several owners run in order of their times, all on the
    one 'onecron-scheduler' thread."""
    clockwork = Clockwork(utcnow)
    owners = [Owner(), Owner()]
    threads: set[str] = set()

    def step(owner: Owner, label: str) -> None:
        threads.add(threading.current_thread().name)
        owner.ran.append(label)

    try:
        clockwork.enter(soon(0.2), 0, owners[0], step, (owners[0], 'late'))
        clockwork.enter(soon(0.05), 0, owners[1], step, (owners[1], 'b'))
        clockwork.enter(soon(0.1), 0, owners[0], step, (owners[0], 'a'))
        wait_for(lambda: len(owners[0].ran) == 2)
    finally:
        clockwork.stop()
    assert owners[0].ran == ['a', 'late'] and owners[1].ran == ['b']
    assert threads == {'onecron-scheduler'}
    assert owners[0].flushes >= 1  # each owner hands over after its steps


def test_a_failing_step_is_reported_and_the_rest_go_on() -> None:
    """A step that raises goes to its owner's crashed(); later steps of
    every owner still run."""
    clockwork = Clockwork(utcnow)
    broken, fine = Owner(), Owner()

    def explode() -> None:
        raise RuntimeError('tenant bug')

    try:
        clockwork.enter(soon(), 0, broken, explode)
        clockwork.enter(soon(0.05), 0, fine, fine.ran.append, ('after',))
        wait_for(lambda: fine.ran)
    finally:
        clockwork.stop()
    assert [str(error) for error in broken.errors] == ['tenant bug']


def test_a_cancelled_step_does_not_run() -> None:
    """Cancelling the ticket makes the step a no-op, even if queued."""
    clockwork = Clockwork(utcnow)
    owner = Owner()
    try:
        ticket = clockwork.enter(soon(0.1), 0, owner, owner.ran.append,
                                 ('cancelled',))
        clockwork.cancel(ticket)
        clockwork.enter(soon(0.2), 0, owner, owner.ran.append, ('kept',))
        wait_for(lambda: owner.ran)
    finally:
        clockwork.stop()
    assert owner.ran == ['kept']


def test_a_stopped_owner_runs_nothing() -> None:
    """Steps of an owner marked stopped are skipped."""
    clockwork = Clockwork(utcnow)
    owner, other = Owner(), Owner()
    try:
        clockwork.enter(soon(0.05), 0, owner, owner.ran.append, ('x',))
        owner.stopped = True
        clockwork.enter(soon(0.1), 0, other, other.ran.append, ('y',))
        wait_for(lambda: other.ran)
    finally:
        clockwork.stop()
    assert owner.ran == []


def test_stop_ends_the_thread_while_it_sleeps() -> None:
    """stop() ends a thread that waits for a step an hour away, and for
    one with nothing queued at all."""
    for queued in (True, False):
        clockwork = Clockwork(utcnow)
        owner = Owner()
        ticket = clockwork.enter(soon(3600), 0, owner, owner.ran.append,
                                 ('never',))
        if not queued:
            clockwork.cancel(ticket)
            clockwork.enter(soon(), 0, owner, owner.ran.append, ('now',))
            wait_for(lambda: owner.ran)  # noqa: B023 (waited for at once)
        assert clockwork.alive
        clockwork.stop(timeout=5)
        assert not clockwork.alive


def onecron_threads(before: frozenset[threading.Thread] = frozenset(),
                    ) -> list[str]:
    """The names of onecron's threads, but those in ``before`` (what
    other tests in this process left winding down)."""
    return [thread.name for thread in threading.enumerate()
            if thread.name.startswith('onecron') and thread not in before]


def test_many_application_ids_share_one_scheduler_thread(
        tmp_path: Path) -> None:
    """300 application ids started in one process: each active with its
    own lock and base URL, on one scheduler thread (at most 4 onecron
    threads in all); stop() ends them and frees every lock."""
    app = CronApp(secret='s', lock_dir=str(tmp_path))
    for minute in range(20):
        app.cronjob(f'{minute} 0 1 1 *', name=f'yearly-{minute}')(
            lambda request: None)
    url = 'http://127.0.0.1:9'  # nothing is due: never called
    ids = [f'tenant-{number}' for number in range(300)]
    before = frozenset(threading.enumerate())
    try:
        for tenant in ids:
            app.start(base_url=f'{url}/{tenant}', application_id=tenant)
        wait_for(lambda: all(app.schedulers[tenant].active
                             for tenant in ids), timeout=30)
        assert len(onecron_threads(before)) <= 4, onecron_threads(before)
        assert onecron_threads(before).count('onecron-scheduler') == 1
        assert {app.schedulers[t].lock.path for t in ids} == {
            lock_path(str(tmp_path), t) for t in ids}
        assert app.schedulers['tenant-7'].base_url == f'{url}/tenant-7'
        assert len(app.schedulers['tenant-7'].upcoming()) == 20
    finally:
        app.stop()
    assert 'onecron-scheduler' not in onecron_threads(before)
    for tenant in ids[:20]:
        lock = HostLock(lock_path(str(tmp_path), tenant))
        assert lock.acquire(), f'{tenant} still locked'
        lock.release()


# --- on a ManualClock ------------------------------------------------------

START = datetime(2030, 1, 7, 12, 0, tzinfo=timezone.utc)


def test_manual_clock_runs_steps_when_moved_not_before() -> None:
    """On a ManualClock a step runs when the clock gets to its time, and
    not a real second later nor earlier: advance() returns once it ran."""
    clock = ManualClock(START)
    clockwork = Clockwork(clock)
    owner = Owner()
    try:
        at = START.timestamp()
        clockwork.enter(at + 3600, 0, owner, owner.ran.append, ('hour',))
        clockwork.enter(at + 1, 0, owner, owner.ran.append, ('second',))
        clock.advance(0.5)
        assert owner.ran == []
        clock.advance(0.5)
        assert owner.ran == ['second']  # at once: no waiting for it
        clock.advance(3598)
        assert owner.ran == ['second']
        clock.advance(1)
        assert owner.ran == ['second', 'hour']
    finally:
        clockwork.stop()


def test_manual_clock_wakes_waiters_in_order_of_their_time() -> None:
    """Waits on a ManualClock end when it is moved past them, each at
    its time; a wait ended by its event says so."""
    clock = ManualClock(START)
    woke: list[str] = []

    def sleeper(name: str, seconds: float) -> None:
        clock.sleep(seconds)
        woke.append(name)

    threads = [threading.Thread(target=sleeper, args=(name, seconds))
               for name, seconds in (('late', 2.0), ('early', 1.0))]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(clock._sleeping) == 2)
    clock.advance(1, step=0.5)
    assert woke == ['early']
    clock.advance(timedelta(seconds=1))
    assert woke == ['early', 'late']
    event = clock.event()
    setter = threading.Timer(0.01, event.set)
    setter.start()
    assert event.wait(10) is True  # set, though the clock stood still
    assert not clock.event().wait(0)
    with pytest.raises(ValueError, match='forward'):
        clock.advance(-1)
    with pytest.raises(ValueError, match='aware'):
        ManualClock(datetime(2030, 1, 1))
    assert clock() == START + timedelta(seconds=2)
    assert clock.monotonic() == 2.0
