"""The time core: when jobs fall due. Pure but for the clock: no I/O.

:mod:`~onecron.schedule.cron` parses cron fields and expressions,
:mod:`~onecron.schedule.days` turns a day's fields into its times,
:mod:`~onecron.schedule.timeline` walks them in a time zone (DST included),
:mod:`~onecron.schedule.offsets` spreads jobs by their deterministic
jitter, :mod:`~onecron.schedule.words` says a schedule in English,
:mod:`~onecron.schedule.rules` holds :class:`Schedule`, which ties them
together, and :mod:`~onecron.schedule.clock` is the one source of the
current time (and of waiting) that every other layer is handed: the
system's, or a :class:`~onecron.schedule.clock.ManualClock` that tests
move by hand.
"""

from onecron.errors import InvalidSchedule as InvalidSchedule
from onecron.schedule.rules import Schedule as Schedule

__all__ = ['InvalidSchedule', 'Schedule']
