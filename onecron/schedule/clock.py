"""The default clock: aware UTC now. The only module that imports sedate.

Everything that needs the time takes a ``clock`` keyword (a callable giving
an aware datetime), so tests and embedders can substitute their own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import sedate

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, aware, in UTC.

    In the stdlib's UTC, not pytz's: every run's start and end pass here,
    and the stdlib's C code converts and formats them without calling
    back into pytz's Python methods.
    """
    return sedate.utcnow().replace(tzinfo=timezone.utc)
