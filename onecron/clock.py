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
    """The current time, aware, in UTC."""
    return sedate.utcnow().astimezone(timezone.utc)
