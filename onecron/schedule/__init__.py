"""The time core: when jobs fall due. Pure: no I/O, no threads, no clock.

:mod:`~onecron.schedule.cron` parses cron fields and expressions,
:mod:`~onecron.schedule.days` turns a day's fields into its times,
:mod:`~onecron.schedule.timeline` walks them in a time zone (DST included),
:mod:`~onecron.schedule.offsets` spreads jobs by their deterministic
jitter, :mod:`~onecron.schedule.words` says a schedule in English,
:mod:`~onecron.schedule.rules` holds :class:`Schedule`, which ties them
together, and :mod:`~onecron.schedule.clock` is the one source of the
current time that every other layer is handed.
"""

from onecron.errors import InvalidSchedule as InvalidSchedule
from onecron.schedule.rules import Schedule as Schedule

__all__ = ['InvalidSchedule', 'Schedule']
