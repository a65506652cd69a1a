"""Virtual time for tests: a ManualClock the test moves, in steps, each
once the calls it set off are done (real HTTP on a real server)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from onecron import CronApp
from onecron.schedule.clock import ManualClock

from .conftest import wait_for

#: where virtual time starts: on a whole second, so that steps that divide
#: a second land on the fire times (no call is left armed between steps)
START = datetime(2030, 1, 7, 12, 0, tzinfo=timezone.utc)
#: the length of one step: fires, lease retries and renewals fall due in
#: order, each at most this late
STEP = 0.25


def manual_clock() -> ManualClock:
    """A clock standing at :data:`START`."""
    return ManualClock(START)


def idle(*apps: CronApp) -> bool:
    """Whether no call of ``apps`` is in flight or waiting."""
    return all(app.caller.in_flight == 0 and all(
        app.pool_for(application_id).running == 0
        for application_id in app.schedulers) for app in apps)


def run_for(clock: ManualClock, seconds: float, *apps: CronApp) -> None:
    """Move ``clock`` on by ``seconds`` in steps; after each, wait (real,
    bounded) until the calls of ``apps`` it set off are done."""
    for _ in range(round(seconds / STEP)):
        clock.advance(STEP)
        wait_for(lambda: idle(*apps))


def run_until(clock: ManualClock, condition: Callable[[], Any],
              *apps: CronApp, limit: float = 60.0) -> Any:
    """Move ``clock`` on step by step until ``condition`` holds (at most
    ``limit`` virtual seconds); its value."""
    for _ in range(round(limit / STEP)):
        value = condition()
        if value:
            return value
        run_for(clock, STEP, *apps)
    value = condition()
    if value:
        return value
    raise AssertionError(f'condition not met within {limit} virtual s')
