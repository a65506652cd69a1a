"""Housekeeping: the store round trips of all application ids, in one go.

Every few seconds an active scheduler must read the operator's switches
and hold, renew its lease and beat its heart. Done per application id, a
process with a thousand tenants would talk to the store hundreds of times a
second while nothing is due. The :class:`Housekeeper` does it for all the
active schedulers of a CronApp at once, on the clockwork: two reads per
round, one renewal and one heartbeat write every third of a lease, and a
pass of retention now and then.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from onecron.reporting import Reporter
from onecron.running.clockwork import Clockwork, Ticket
from onecron.running.scheduler import lease_times
from onecron.schedule.clock import Clock, time_source
from onecron.stores.base import Hold, JobSettings, SchedulerInfo
from onecron.stores.history import History

if TYPE_CHECKING:
    from onecron.running.scheduler import Scheduler


#: seconds between rounds at most: switches and holds are read this often
POLL_INTERVAL = 2.0
#: seconds between retention passes over the store
PRUNE_INTERVAL = 600.0


class Housekeeper:
    """Keeps the active schedulers of one CronApp in touch with the store.

    :param lease_time: the CronApp's (see
        :func:`~onecron.running.scheduler.lease_times`)
    :param holder: this process's name in the leases
    :param node: the scope of this process's host locks
    """

    def __init__(self, clockwork: Clockwork, history: History, *,
                 clock: Clock, reporter: Reporter, lease_time: float,
                 holder: str, node: str, keep_runs: int | None,
                 keep_days: float | None) -> None:
        self.busy = threading.RLock()
        self.stopped = False
        self.holder = holder
        self._clockwork = clockwork
        self._history = history
        self._clock = time_source(clock)
        self._reporter = reporter
        _, self._ttl, self._renew_every = lease_times(lease_time)
        self._interval = min(POLL_INTERVAL, self._renew_every)
        self._node = node
        self._keep = (keep_runs, keep_days)
        self._schedulers: dict[str, Scheduler] = {}
        self._timer: Ticket | None = None
        self._renewed = -math.inf  # renewed in the first round
        # pruned soon after the start
        self._pruned = self._clock.monotonic() - PRUNE_INTERVAL

    def add(self, scheduler: Scheduler) -> None:
        """Look after ``scheduler`` (from its next round on)."""
        with self.busy:
            self._schedulers[scheduler.application_id] = scheduler
            if self._timer is None and not self.stopped:
                self._later()

    def stop(self) -> None:
        """No more rounds."""
        with self.busy:
            self.stopped = True
            self._clockwork.cancel(self._timer)
            self._timer = None
            self._schedulers.clear()

    # -- what the clockwork calls ------------------------------------------

    def flush(self) -> None:
        """Nothing to hand over: the schedulers flush their own calls."""

    def reschedule(self) -> bool:
        return False

    def crashed(self, error: Exception) -> None:
        self._reporter.failure('*', '*', 'housekeeping failed', error)

    # -- the rounds ----------------------------------------------------------

    def _later(self) -> None:
        self._timer = self._clockwork.enter(
            self._clock().timestamp() + self._interval, 1, self, self._round)

    def _round(self) -> None:
        try:
            # (not .active, which asks the lock and the thread: this runs
            # over every tenant every round)
            active = [scheduler for scheduler in self._schedulers.values()
                      if scheduler.active_since is not None
                      and not scheduler.stopped]
            if active:
                self._look_after(active)
        finally:
            self._later()

    def _look_after(self, active: list[Scheduler]) -> None:
        ids = [scheduler.application_id for scheduler in active]
        history = self._history
        now = self._clock()
        nothing: dict[str, dict[str, JobSettings]] | None = None
        settings = history.read(lambda store: store.job_settings_of(ids),
                                nothing)
        no_holds: dict[str, Hold] | None = None
        holds = history.read(lambda store: store.holds_of(ids), no_holds)
        renewing = (self._clock.monotonic() - self._renewed
                    >= self._renew_every)
        renewed: set[str] | None = None
        if renewing:
            renewed = history.read(lambda store: store.renew_leases(
                ids, holder=self.holder, node=self._node, ttl=self._ttl,
                now=now), None)
            if renewed is not None:
                self._renewed = self._clock.monotonic()
        beating = []
        for scheduler in active:
            app_id = scheduler.application_id
            with scheduler.busy:
                if scheduler.stopped or scheduler.active_since is None:
                    continue
                if renewing and not scheduler.lease_renewed(
                        None if renewed is None else app_id in renewed):
                    continue  # stepped down
                scheduler.refresh(
                    None if settings is None else settings.get(app_id, {}),
                    None if holds is None else holds.get(
                        app_id, Hold(False, None)).held, now)
                if renewing:
                    beating.append(SchedulerInfo(
                        app_id, scheduler.host, scheduler.pid,
                        scheduler.active_since, now))
        if renewing:  # a sign of life with each renewal is enough
            history.read(lambda store: store.heartbeats(beating), None)
        if self._clock.monotonic() - self._pruned > PRUNE_INTERVAL:
            self._pruned = self._clock.monotonic()
            keep_runs, keep_days = self._keep
            history.read(lambda store: store.prune(
                now=now, keep_runs=keep_runs, keep_days=keep_days), 0)

    def __repr__(self) -> str:
        return (f'<Housekeeper {len(self._schedulers)} scheduler(s) '
                f'every {self._interval:g}s>')
