"""The time source: aware UTC now, monotonic time, waiting. The only module
that imports sedate.

Everything that needs the time takes a ``clock`` keyword: a callable giving
an aware datetime (:data:`Clock`), so tests and embedders can substitute
their own. The running parts (the scheduler's thread, the caller, lease
renewal) also measure intervals and wait; they take all of it from one
:class:`SystemClock` (see :func:`time_source`):

* a plain callable only says what time it is: intervals and waits stay
  on the real clocks (as a callable frozen in the past always did);
* a :class:`SystemClock` is the real time (the default, :data:`system`);
* a :class:`ManualClock` stands still until :meth:`ManualClock.advance`
  moves it, and then wakes whatever waits on it: tests run hours of
  schedule, leases and take-overs in milliseconds, without sleeping.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol

import sedate

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, aware, in UTC.

    In the stdlib's UTC, not pytz's: every run's start and end pass here,
    and the stdlib's C code converts and formats them without calling
    back into pytz's Python methods.
    """
    return sedate.utcnow().replace(tzinfo=timezone.utc)


class Waker(Protocol):
    """What :meth:`SystemClock.event` gives: a :class:`threading.Event`
    whose :meth:`wait` counts its timeout on the clock."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SystemClock:
    """The real time: wall, monotonic, and waits of real seconds.

    It is a :data:`Clock` (calling it gives the aware UTC now), so it goes
    wherever a ``clock`` keyword does.

    :param now: what calling the clock gives (by default :func:`utcnow`):
        a plain callable given as a ``clock`` is wrapped so; intervals and
        waits stay real
    """

    def __init__(self, now: Clock = utcnow) -> None:
        self._now = now

    def __call__(self) -> datetime:
        """The current time, aware."""
        return self._now()

    def time(self) -> float:
        """Seconds since the epoch on the real wall clock (when armed calls
        start: :class:`~onecron.running.caller.Caller`)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds that only ever grow, to measure intervals with."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block ``seconds`` on this clock."""
        time.sleep(max(0.0, seconds))

    def event(self) -> Waker:
        """An event whose ``wait(timeout)`` waits ``timeout`` seconds on
        this clock at most."""
        return threading.Event()

    def span(self, seconds: float) -> float | None:
        """How long a thread blocked on I/O (a selector) waits for
        ``seconds`` of this clock to pass; None: until a callback given to
        :meth:`subscribe` wakes it (a clock that moves only by hand)."""
        return max(0.0, seconds)

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this clock is moved by hand (the
        real clock never is)."""

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Undo :meth:`subscribe`."""

    def __repr__(self) -> str:
        return f'<{type(self).__name__} {self().isoformat()}>'


#: the real time, as everything uses it by default
system = SystemClock()


def time_source(clock: Clock | None) -> SystemClock:
    """The :class:`SystemClock` behind a ``clock`` keyword: the clock
    itself, :data:`system` for None, or the real clock telling the time
    ``clock`` gives (a plain callable)."""
    if clock is None:
        return system
    if isinstance(clock, SystemClock):
        return clock
    return SystemClock(now=clock)


class ManualClock(SystemClock):
    """A clock that stands still until :meth:`advance` moves it: for tests
    (yours too) of what happens over time, without waiting for it.

    Pass it as a CronApp's ``clock``: its scheduler, caller, lease
    renewal and history all read it, and every wait on it (the scheduler
    sleeping until a job is due, a call armed for its second) ends when
    the clock gets there. :meth:`advance` returns once the threads it woke
    are asleep again (or after ``settle`` real seconds): what fell due has
    been fired, and calls handed over (their HTTP runs on as usual).

    A CronApp given its own ``caller`` hands it this clock only if the
    caller was made with it: ``Caller(clock=manual)``.

    :param start: the time it shows first (aware)
    :param settle: real seconds :meth:`advance` waits, at most, for the
        threads it woke to sleep again
    """

    def __init__(self, start: datetime, *, settle: float = 5.0) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f'ManualClock(start=...) must be aware, got '
                             f'{start!r}')
        super().__init__()
        self._wall = start.timestamp()
        self._ticks = 0.0
        self._settle = settle
        self._moved = threading.Condition()
        #: threads waiting on the clock: thread id -> (deadline, event)
        self._sleeping: dict[int, tuple[float | None, _ManualEvent]] = {}
        #: threads that ever waited on it (a scheduler's, a timer's)
        self._users: set[int] = set()
        #: the events made on it: one set and not yet waited for is work
        #: its thread has still to do
        self._events: weakref.WeakSet[_ManualEvent] = weakref.WeakSet()
        self._callbacks: list[Callable[[], None]] = []

    def __call__(self) -> datetime:
        with self._moved:
            return datetime.fromtimestamp(self._wall, timezone.utc)

    def time(self) -> float:
        with self._moved:
            return self._wall

    def monotonic(self) -> float:
        with self._moved:
            return self._ticks

    def sleep(self, seconds: float) -> None:
        """Block until the clock has moved on by ``seconds``."""
        self.event().wait(seconds)

    def event(self) -> Waker:
        event = _ManualEvent(self)
        with self._moved:
            self._events.add(event)
        return event

    def span(self, seconds: float) -> float | None:
        return None  # only advance() moves it, and wakes the subscribers

    def subscribe(self, callback: Callable[[], None]) -> None:
        with self._moved:
            self._callbacks.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        with self._moved:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def advance(self, seconds: float | timedelta = 0.0, *,
                step: float | timedelta | None = None) -> None:
        """Move the clock on by ``seconds`` (wall and monotonic), waking
        each waiter whose time came; return once they sleep again.

        Before it moves, the threads that wait on the clock finish what
        they were woken for (a job added, a scheduler started): each step
        starts from a settled state.

        ``step``: move in steps of at most this long, letting the woken
        threads settle after each (what falls due in between runs in
        order, at about its time, as it would for real).
        """
        total = _seconds(seconds)
        if total < 0:
            raise ValueError(f'a clock moves forward only, got {seconds!r}')
        stride = total if step is None else _seconds(step)
        if not stride > 0:
            stride = total
        moved = 0.0
        while True:
            delta = min(stride, total - moved)
            self._move(delta)
            moved += delta
            if moved >= total:
                return

    def jump(self, moment: datetime) -> None:
        """Move the wall clock to ``moment`` (forward or back, as the
        wall clock may jump); the monotonic time does not move."""
        self._wait_asleep()
        with self._moved:
            self._wall = moment.timestamp()
        self._wake()
        self._wait_asleep()

    def _move(self, seconds: float) -> None:
        self._wait_asleep()
        with self._moved:
            self._wall += seconds
            self._ticks += seconds
        self._wake()
        self._wait_asleep()

    def _wake(self) -> None:
        with self._moved:
            callbacks = list(self._callbacks)
            self._moved.notify_all()
        for callback in callbacks:
            callback()

    def _wait_asleep(self) -> None:
        """Wait until the threads that use the clock wait on it again, for
        a time still to come, or are gone (``settle`` real seconds at
        most)."""
        deadline = time.monotonic() + self._settle
        current = threading.get_ident()
        with self._moved:
            while True:
                alive = {thread.ident for thread in threading.enumerate()}
                self._users &= alive
                busy = any(ident != current and (
                    ident not in self._sleeping
                    or self._due(*self._sleeping[ident]))
                    for ident in self._users) or any(
                    # set before its thread ever waited (a scheduler's
                    # thread yet to start), or while it was busy
                    event._flag and event._waiter != current and (
                        event._waiter is None or event._waiter in alive)
                    for event in self._events)
                left = deadline - time.monotonic()
                if not busy or left <= 0:
                    return
                self._moved.wait(min(left, 0.01))

    def _due(self, deadline: float | None, event: _ManualEvent) -> bool:
        return event.is_set() or (deadline is not None
                                  and deadline <= self._ticks)

    def __repr__(self) -> str:
        return (f'<ManualClock {self().isoformat()} '
                f'{len(self._sleeping)} waiting>')


class _ManualEvent:
    """An event whose waits count on a :class:`ManualClock`."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._flag = False
        #: the thread that last waited on it
        self._waiter: int | None = None

    def set(self) -> None:
        with self._clock._moved:
            self._flag = True
            self._clock._moved.notify_all()

    def clear(self) -> None:
        with self._clock._moved:
            self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        clock = self._clock
        ident = threading.get_ident()
        with clock._moved:
            deadline = None if timeout is None else clock._ticks + timeout
            clock._sleeping[ident] = (deadline, self)
            clock._users.add(ident)
            self._waiter = ident
            clock._moved.notify_all()  # an advance may wait for this
            try:
                while not self._flag and (deadline is None
                                          or clock._ticks < deadline):
                    clock._moved.wait()
            finally:
                del clock._sleeping[ident]
                clock._moved.notify_all()
            return self._flag


def _seconds(amount: float | timedelta) -> float:
    return (amount.total_seconds() if isinstance(amount, timedelta)
            else float(amount))
