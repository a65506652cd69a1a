"""The clockwork: the one thread that drives every application id's jobs.

A :class:`~onecron.CronApp` has one, whatever the number of application ids
(the model ran a thread per id: a thousand tenants, a thousand threads).
Each id's :class:`~onecron.running.scheduler.Scheduler` puts its timed steps
on the clockwork's one :mod:`sched` queue — take the lock, take the lease,
fire a job, read the store — and the thread sleeps until the soonest is due.
When nothing more is due right now, it lets each scheduler that fired hand its
calls over as one batch and compute its jobs' next runs.

A step that raises is reported and the others go on; a step runs with its
scheduler's ``busy`` lock held, so stopping a scheduler waits for its step.
"""

from __future__ import annotations

import logging
import os
import sched
import threading
from collections.abc import Callable
from typing import Any, Protocol

from onecron.schedule.clock import Clock, time_source

log = logging.getLogger(__name__)

#: the longest single sleep: after a wall-clock jump we notice within this
MAX_SLEEP = 60.0


class Driven(Protocol):
    """What the clockwork drives: a scheduler of one application id."""

    busy: threading.RLock

    @property
    def stopped(self) -> bool: ...

    def flush(self) -> None:
        """Hand over the calls gathered since the last flush."""

    def reschedule(self) -> bool:
        """Compute the fired jobs' next runs; whether there were any."""

    def crashed(self, error: Exception) -> None:
        """A step raised ``error``: report it."""


class Clockwork:
    """One thread, one queue, for all the schedulers of a CronApp.

    :param clock: gives the current aware datetime (the queue's time); the
        thread sleeps on its :func:`~onecron.schedule.clock.time_source`
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queue = sched.scheduler(self._timestamp, self._sleep)
        self._time = time_source(clock)
        self._wake = self._time.event()
        self._stopping = False
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: schedulers that ran a step since the last flush
        self._touched: dict[int, Driven] = {}
        # probes: the clock's timestamp of the thread's last tick (after a
        # step, before a wait), for {prefix}/livez; None before the first
        self.ticked: float | None = None

    def enter(self, when: float, priority: int, owner: Driven,
              step: Callable[..., object],
              arguments: tuple[Any, ...] = ()) -> Ticket:
        """Run ``step(*arguments)`` for ``owner`` at timestamp ``when``.

        Thread-safe; starts the thread if it is not running. The ticket
        cancels the step.
        """
        ticket = Ticket()
        self._queue.enterabs(when, priority, self._step,
                             (owner, step, arguments, ticket))
        self._ensure_thread()
        self._wake.set()
        return ticket

    @staticmethod
    def cancel(ticket: Ticket | None) -> None:
        """Make sure the step of ``ticket`` does not run.

        The step stays queued until its time and is skipped then: taking
        it out of :mod:`sched`'s list would cost time in proportion to the
        whole queue, and stopping a thousand tenants' jobs one by one
        would grow with the square of their number.
        """
        if ticket is not None:
            ticket.cancelled = True

    @property
    def alive(self) -> bool:
        """Whether the thread runs in this process."""
        return (self._thread is not None and self._pid == os.getpid()
                and self._thread.is_alive())

    @property
    def queued(self) -> int:
        """Steps waiting on the queue (cancelled ones until their time)."""
        return len(self._queue.queue)

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread once the step it runs (if any) is done."""
        with self._mutex:
            thread = self._thread
            self._stopping = True
        self._wake.set()
        if (thread is not None and thread is not threading.current_thread()
                and self._pid == os.getpid()):
            thread.join(timeout)
        with self._mutex:
            self._thread = None
            self._stopping = False
            # a fresh event for the next thread (a clock moved by hand
            # waits for a wake-up until the thread it was meant for took it)
            self._wake = self._time.event()
            # whatever is left belongs to stopped schedulers
            self._queue = sched.scheduler(self._timestamp, self._sleep)

    def __repr__(self) -> str:
        return (f'<Clockwork {"running" if self.alive else "idle"} '
                f'{self.queued} step(s) queued>')

    # -- the thread -----------------------------------------------------

    def _ensure_thread(self) -> None:
        if self.alive:
            return
        with self._mutex:
            if self.alive or self._stopping:
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, daemon=True, name='onecron-scheduler')
            self._thread.start()

    def _timestamp(self) -> float:
        return self._clock().timestamp()

    def _step(self, owner: Driven, step: Callable[..., object],
              arguments: tuple[Any, ...], ticket: Ticket) -> None:
        if ticket.cancelled:
            return
        with owner.busy:
            if owner.stopped or ticket.cancelled:
                return
            self._touched[id(owner)] = owner
            try:
                step(*arguments)
            except Exception as error:  # one tenant's bug stops no other
                owner.crashed(error)

    def _sleep(self, seconds: float) -> None:
        # sched calls this with 0 after each step, and with the time to the
        # next one once nothing more is due: the moment to hand over the
        # calls gathered so far (one batch for a burst), and only then to
        # compute the fired jobs' next runs. sched re-reads its queue after
        # every call, so returning early (after rescheduling, for a new
        # step, to stop) is always safe.
        self.ticked = self._timestamp()  # probes
        if self._stopping:
            raise _Stop
        if seconds <= 0:
            return
        if self._settle():
            return
        self._wake.wait(min(seconds, MAX_SLEEP))
        self._wake.clear()

    def _settle(self) -> bool:
        """Flush and reschedule what the last steps touched; whether any
        scheduler queued new steps."""
        touched, self._touched = self._touched, {}
        for owner in touched.values():
            with owner.busy:
                if not owner.stopped:
                    owner.flush()
        again = False
        for owner in touched.values():
            with owner.busy:
                if not owner.stopped:
                    again = owner.reschedule() or again
        return again

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._queue.run()
                if self._settle():
                    continue
                if self._stopping:  # its wake-up may have been cleared
                    break
                # nothing queued (every job ran once, or nothing started)
                self.ticked = self._timestamp()  # probes
                self._wake.wait(MAX_SLEEP)
                self._wake.clear()
        except _Stop:
            pass


class Ticket:
    """A queued step's handle: cancelling it makes the step a no-op."""

    __slots__ = ('cancelled',)

    def __init__(self) -> None:
        self.cancelled = False


class _Stop(Exception):
    """Raised between steps to leave :meth:`sched.scheduler.run`."""
